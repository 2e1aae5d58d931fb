package restore

import (
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreInotify dumps inotify instances (a dup'd non-blocking one
// with a directory and a oneshot file watch, a gap in its descriptors;
// a blocking one) and checks the restored task reads exactly the events
// its own changes make, with the dumped descriptors. Inotify fds were
// refused before.
func TestRestoreInotify(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "inotify"))
	var wds [][]int32
	for _, fd := range d.tree.Tasks[0].FDs {
		if fd.Kind == image.FDInotify {
			var w []int32
			for _, iw := range fd.Inotify {
				w = append(w, iw.WD)
			}
			wds = append(wds, w)
		}
	}
	if len(wds) != 3 || len(wds[0]) != 2 || wds[0][1] != 3 {
		t.Errorf("inotify watches in the image: %v, want three fds, the first watching 1 and 3", wds)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
