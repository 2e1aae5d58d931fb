package restore

import (
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreAIO dumps a task with an AIO context whose ring holds three
// completed events not reaped yet (its tail behind its head in "wrap"),
// and checks the restored task reaps them, at the context id it holds,
// and that the context takes new requests; in "child", a forked child's
// copy of the ring must map the restored parent's.
func TestRestoreAIO(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "aio")
	for _, mode := range []string{"plain", "wrap", "child"} {
		t.Run(mode, func(t *testing.T) {
			d := dumpWorkload(t, false, bin, mode)
			if rings := d.tree.Tasks[0].Mm.AIORings; len(rings) != 1 || rings[0].NrReq == 0 {
				t.Errorf("AIO contexts in the image: %+v, want one", rings)
			}
			if mode == "child" {
				child := d.tree.Tasks[1]
				copies := 0
				for _, v := range child.VMAs {
					if v.Kind == image.KindAIORing && v.FromParent {
						copies++
					}
				}
				if copies != 1 || len(child.Mm.AIORings) != 0 {
					t.Errorf("child: %d inherited ring copies, %d contexts; want 1, 0", copies, len(child.Mm.AIORings))
				}
			}
			code, out := restoreDumped(t, d)
			if code != 0 || !strings.Contains(out, "PASS") {
				t.Fatalf("restored workload: exit %d, output %q", code, out)
			}
		})
	}
}
