package restore

import (
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreSignalfdTimerfd dumps a task with a signalfd (and a dup of
// it) that has a signal pending for it, and timerfds: periodic with
// expirations not read, one-shot, absolute and cancelled on a clock
// change, disarmed with a period. The restored task finds each as it was.
// Both kinds were refused before.
func TestRestoreSignalfdTimerfd(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "sigtimerfd"))
	kinds := map[image.FDKind]int{}
	for _, fd := range d.tree.Tasks[0].FDs {
		kinds[fd.Kind]++
	}
	if kinds[image.FDSignalfd] != 2 || kinds[image.FDTimerfd] != 4 {
		t.Errorf("fd kinds in the image: %v, want 2 signalfds and 4 timerfds", kinds)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
