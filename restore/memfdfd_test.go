package restore

import (
	"strings"
	"testing"
)

// TestRestoreMemfdFD dumps a memfd no task maps shared (written with
// write(), its fd at an offset, sealed; mapped private only) and one cut
// below its shared mapping, and checks the restored task finds each with
// its length, data, offset and seal, and the page past the short one's
// end gone. A memfd held only by fds was refused before; the short one
// came back a whole page longer.
func TestRestoreMemfdFD(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "memfdfd"))
	lengths := map[string]uint64{}
	for _, o := range d.tree.SharedObjects {
		lengths[o.Name] = o.Length
	}
	if lengths["bytes"] != 10000 || lengths["short"] != 5000 {
		t.Errorf("memfd lengths in the image: %v, want bytes 10000 and short 5000", lengths)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
