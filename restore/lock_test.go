package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreLockOnFault dumps a task with a mapping locked on fault
// (mlock2 MLOCK_ONFAULT) of which it touched 2 pages of 64, and checks the
// restored task has it locked on fault still, with 2 pages locked, not 64.
func TestRestoreLockOnFault(t *testing.T) {
	needRoot(t)
	code, out := dumpRestore(t, buildC(t, "lockonfault"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreMlockFuture dumps a parent that locked its future mappings
// (mlockall MCL_FUTURE, and with MCL_ONFAULT) and its child, which does
// not inherit that, and checks that after restore a new mapping is locked
// the same way in the parent only, and that restore's own mappings were
// not locked.
func TestRestoreMlockFuture(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "mlockall")
	for _, tc := range []struct {
		mode string
		want uint32
	}{{"future", unix.MCL_FUTURE}, {"onfault", unix.MCL_FUTURE | unix.MCL_ONFAULT}} {
		t.Run(tc.mode, func(t *testing.T) {
			d := dumpWorkload(t, false, bin, tc.mode)
			if got := d.tree.Tasks[0].Mm.MlockFuture; got != tc.want {
				t.Errorf("parent's image: MlockFuture %#x, want %#x", got, tc.want)
			}
			if got := d.tree.Tasks[1].Mm.MlockFuture; got != 0 {
				t.Errorf("child's image: MlockFuture %#x, want 0", got)
			}
			code, out := restoreDumped(t, d)
			if code != 0 || !strings.Contains(out, "PASS") {
				t.Fatalf("restored workload: exit %d, output %q", code, out)
			}
		})
	}
}
