package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreDroppable dumps a task with a MAP_DROPPABLE mapping and
// checks that the restored task still has it droppable, with its data.
func TestRestoreDroppable(t *testing.T) {
	needRoot(t)
	if m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_DROPPABLE|unix.MAP_ANONYMOUS); err != nil {
		t.Skipf("no MAP_DROPPABLE (Linux 6.11+): %v", err)
	} else {
		unix.Munmap(m)
	}
	code, out := dumpRestore(t, buildC(t, "droppable"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
