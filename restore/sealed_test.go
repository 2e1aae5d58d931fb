package restore

import (
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRestoreSealed dumps a parent with two sealed mappings (mseal), one of
// them sealed after it forked its child, and checks that every restored
// task has exactly its own mappings sealed, with their data.
func TestRestoreSealed(t *testing.T) {
	needRoot(t)
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	// The probe page stays: a sealed mapping cannot be unmapped.
	if _, _, e := unix.Syscall(unix.SYS_MSEAL, uintptr(unsafe.Pointer(&m[0])), 4096, 0); e != 0 {
		t.Skipf("no mseal (Linux 6.10+): %v", e)
	}
	code, out := dumpRestore(t, buildC(t, "sealed"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
