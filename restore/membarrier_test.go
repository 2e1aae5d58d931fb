package restore

import (
	"strings"
	"testing"

	"github.com/mmcr/mmcr/internal/kernel"
)

// TestRestoreMembarrier dumps a parent and a child registered for
// different membarrier commands (the child inherited one, then the parent
// added one the child lacks) and checks each restored task has its own
// registrations: its barriers work, one it never registered for is still
// refused.
func TestRestoreMembarrier(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "membarrier", "membarrier registrations to read")
	d := dumpWorkload(t, false, bin)
	want := []uint32{
		kernel.MembarrierRegisterPrivateExpedited | kernel.MembarrierRegisterGlobalExpedited,
		kernel.MembarrierRegisterPrivateExpedited | kernel.MembarrierRegisterPrivateExpeditedRseq,
	}
	for i, w := range want {
		if got := d.tree.Tasks[i].Mm.Membarrier; got != w {
			t.Errorf("task %d's image: membarrier registrations %#x, want %#x", d.tree.Tasks[i].PID, got, w)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
