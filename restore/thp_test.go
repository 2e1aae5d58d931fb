package restore

import (
	"strings"
	"testing"
)

// TestRestoreTHPExceptAdvised dumps a parent whose huge pages are disabled
// but where advised (Linux 6.18) and its child that cleared what it
// inherited, and checks each restored task has its own setting.
func TestRestoreTHPExceptAdvised(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "thp", "PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18+)")
	d := dumpWorkload(t, false, bin)
	if mm := d.tree.Tasks[0].Mm; !mm.THPExceptAdvised || mm.THPDisabled {
		t.Errorf("parent's image: THPExceptAdvised %v THPDisabled %v, want true false", mm.THPExceptAdvised, mm.THPDisabled)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
