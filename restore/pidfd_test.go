package restore

import (
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// TestRestorePidfd dumps a parent holding pidfds of a live child (two
// fds, one description) and of a zombie child, and checks the restored
// parent can wait for the zombie and signal and wait for the live child
// through them. Pidfds were refused before (Go 1.23+ keeps one per child
// it starts).
func TestRestorePidfd(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "pidfd"))
	var targets []int
	for _, fd := range d.tree.Tasks[0].FDs {
		if fd.Kind == image.FDPidfd {
			targets = append(targets, fd.PidfdPID)
		}
	}
	if len(targets) != 3 {
		t.Errorf("pidfds in the image: of %v, want three", targets)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
