package restore

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/mmcr/mmcr/internal/testproc"
)

// TestRestoreHugetlb dumps a parent with private anonymous hugetlb memory
// (one 2 MiB page, one 4 KiB part of it zero) and a child sharing it
// copy-on-write, and checks each restored task has the data in a hugetlb
// mapping of 2 MiB pages again.
func TestRestoreHugetlb(t *testing.T) {
	needRoot(t)
	testproc.HugePages(t, 2)
	bin := buildC(t, "hugetlb")
	if err := exec.Command(bin, "probe").Run(); err != nil {
		t.Skipf("no 2 MiB huge page to map: %v", err)
	}
	d := dumpWorkload(t, false, bin)
	found := false
	for _, v := range d.tree.Tasks[0].VMAs {
		if v.HugePageSize() != 0 {
			found = true
			if v.HugePageSize() != 2<<20 {
				t.Errorf("vma %#x-%#x: huge page size %d, want 2 MiB", v.Start, v.End, v.HugePageSize())
			}
		}
	}
	if !found {
		t.Error("the parent's image has no hugetlb VMA")
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
