package restore

import (
	"strings"
	"testing"
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
