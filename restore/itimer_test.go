package restore

import (
	"strings"
	"testing"
)

// TestRestoreItimerInFlight restores a task whose 1 ms ITIMER_REAL expired
// while it was frozen for the dump: dumped with 0 left and its SIGALRM
// pending, the timer must go on after restore, not stop for good.
func TestRestoreItimerInFlight(t *testing.T) {
	needRoot(t)
	code, out := dumpRestore(t, buildC(t, "itimer"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
