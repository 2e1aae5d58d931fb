package restore

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// TestRestoreSysVShm dumps a parent and its child attached to a SysV
// segment and checks that the restored tasks are attached to the segment
// of the dumped id again, sharing it: one with a key, which outlives the
// dumped tasks and is attached as it is, and one removed at dump, which
// ends with them and is made again, then removed again, also of huge
// pages.
func TestRestoreSysVShm(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "sysvshm")
	for _, mode := range []string{"keyed", "removed", "huge"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "huge" {
				testproc.HugePages(t, 1)
			}
			arg := mode
			if mode == "keyed" {
				arg = strconv.Itoa(0x4d430000 | unix.Getpid()&0xffff)
			}
			d := dumpWorkload(t, false, bin, arg)
			var seg *image.SysVSegment
			for _, o := range d.tree.SharedObjects {
				if o.SysV != nil {
					seg = o.SysV
				}
			}
			if seg == nil {
				t.Fatal("no SysV segment in the image")
			}
			if !seg.Removed() {
				t.Cleanup(func() { unix.SysvShmCtl(int(seg.ID), unix.IPC_RMID, nil) })
			}
			if seg.Removed() != (mode != "keyed") {
				t.Errorf("segment %+v: removed %v", *seg, seg.Removed())
			}
			code, out := restoreDumped(t, d)
			if code != 0 || !strings.Contains(out, "PASS") {
				t.Fatalf("restored workload: exit %d, output %q", code, out)
			}
		})
	}
}
