package restore

import (
	"errors"
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
	for _, mode := range []string{"keyed", "removed", "huge", "locked"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "huge" {
				testproc.HugePages(t, 1)
			}
			arg := mode
			if mode == "keyed" {
				arg = strconv.Itoa(0x4d430000 | unix.Getpid()&0xffff)
			}
			d := dumpWorkload(t, false, bin, arg)
			seg := sysvSegment(t, d.tree)
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

// TestRestoreSysVShmFailure fails restores of SysV trees once their tasks
// exist: the segment restore made again is gone with them, the one that
// was still there is left as it was.
func TestRestoreSysVShmFailure(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "sysvshm")
	testHookAfterCreate = func() error { return errors.New("injected failure") }
	defer func() { testHookAfterCreate = nil }()
	for _, mode := range []string{"keyed", "removed"} {
		t.Run(mode, func(t *testing.T) {
			arg := mode
			if mode == "keyed" {
				arg = strconv.Itoa(0x4d440000 | unix.Getpid()&0xffff)
			}
			d := dumpWorkload(t, false, bin, arg)
			seg := sysvSegment(t, d.tree)
			if !seg.Removed() {
				t.Cleanup(func() { unix.SysvShmCtl(int(seg.ID), unix.IPC_RMID, nil) })
			}
			if _, err := Run(Options{Dir: d.dir, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("restore: %v, want the injected failure", err)
			}
			waitGone(t, d.pids)
			var ds unix.SysvShmDesc
			_, err := unix.SysvShmCtl(int(seg.ID), unix.IPC_STAT, &ds)
			if seg.Removed() && err == nil {
				t.Errorf("segment %d made by the failed restore is still there (mode %#o)", seg.ID, ds.Perm.Mode)
			}
			if !seg.Removed() && err != nil {
				t.Errorf("segment %d, there before the restore, is gone: %v", seg.ID, err)
			}
		})
	}
}

// sysvSegment returns the SysV segment of a dumped tree.
func sysvSegment(t *testing.T, tree *image.Tree) *image.SysVSegment {
	t.Helper()
	for _, o := range tree.SharedObjects {
		if o.SysV != nil {
			return o.SysV
		}
	}
	t.Fatal("no SysV segment in the image")
	return nil
}
