package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/kernel"
)

// TestRestoreGuardRegions dumps a parent and its forked child that have
// guard regions of their own in one inherited private mapping (the child
// removed one of its parent's and added another), and the parent one in a
// shared mapping the child inherits, and checks, in the restored tree,
// that each task faults on exactly its own guard pages and reads its data
// everywhere else.
func TestRestoreGuardRegions(t *testing.T) {
	needRoot(t)
	if !haveGuardRegions(unix.MAP_PRIVATE) {
		t.Skip("madvise(MADV_GUARD_INSTALL) needs Linux 6.13")
	}
	d := dumpWorkload(t, false, buildC(t, "guards"))
	if len(d.tree.Tasks) != 2 {
		t.Fatalf("%d tasks dumped, want 2", len(d.tree.Tasks))
	}
	// The child's fork may or may not have copied the shared mapping's
	// guard: at least its 3 private ones.
	parent := 3
	if haveGuardRegions(unix.MAP_SHARED) {
		parent++
	}
	for i, want := range []int{parent, 3} {
		tk := d.tree.Tasks[i]
		pages := 0
		for _, g := range tk.Guards {
			pages += int(g.End-g.Start) / 4096
		}
		if pages != want && !(i == 1 && pages == want+1) {
			t.Errorf("task %d: %d guard pages in the image (%x), want %d", tk.PID, pages, tk.Guards, want)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// haveGuardRegions says whether this kernel installs guard regions in an
// anonymous mapping of that type (MAP_PRIVATE: Linux 6.13+, MAP_SHARED:
// 6.15+).
func haveGuardRegions(typ int) bool {
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, typ|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer unix.Munmap(m)
	return unix.Madvise(m, kernel.MADV_GUARD_INSTALL) == nil
}
