package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// TestRestorePipes dumps a parent and child holding pipes (testdata/
// pipes.c): with unread bytes, a capacity of 1 MiB, an end whose other end
// is closed, a dup sharing one open file description and a second open
// with flags of its own, a pipe as the child's stdin. The dump leaves the
// tree running and takes nothing from the pipes: the original, let go,
// passes its checks. The restored tree passes them too: every byte back in
// its pipe, each description with its flags, the ends shared between the
// tasks, and no open of mmcr's left (EOF comes when the tasks close theirs).
// A regular file's description shared by the two tasks comes back shared:
// one offset. A FIFO comes back with its bytes, the child's read-write open
// of it too; another, with a reader and no writer, reads EOF again.
func TestRestorePipes(t *testing.T) {
	needRoot(t)
	shared := filepath.Join(t.TempDir(), "shared")
	fifo := filepath.Join(t.TempDir(), "fifo")
	d := dumpWorkload(t, true, buildC(t, "pipes"), shared, fifo)
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v (the dump took from or changed its pipes)", err)
	}
	waitGone(t, d.pids)

	if len(d.tree.Pipes) != 7 {
		t.Fatalf("%d pipes in the image, want 5 and two FIFOs", len(d.tree.Pipes))
	}
	fifos := 0
	for _, p := range d.tree.Pipes {
		if f := d.tree.FileByID(p.FileID); f != nil && f.Path == fifo && string(p.Data) == "fifo bytes" {
			fifos++
		}
	}
	if fifos != 1 {
		t.Errorf("the FIFO %s with its bytes is not in the image", fifo)
	}
	sizes := map[int]uint32{}
	for _, p := range d.tree.Pipes {
		sizes[len(p.Data)] = p.Size
	}
	if sizes[3000] != 16*4096 || sizes[200<<10] != 1<<20 || sizes[100] != 16*4096 {
		t.Errorf("pipes by bytes unread: capacities %v", sizes)
	}
	parent, child := d.tree.Tasks[0], d.tree.Tasks[1]
	opens := map[uint32][]int{} // the parent's pipe fds by open file description
	for _, fd := range parent.FDs {
		if fd.Kind == image.FDPipe {
			opens[fd.OpenID] = append(opens[fd.OpenID], fd.Num)
		}
	}
	dup := false
	for _, fds := range opens {
		dup = dup || len(fds) == 2 && fds[1] == 20
	}
	if !dup {
		t.Errorf("the parent's pipe fds by open file description: %v, want fd 20 sharing one", opens)
	}
	descs := map[uint32]map[uint32]bool{} // the child's descriptions per pipe
	for _, fd := range child.FDs {
		if fd.Num == 0 && fd.Kind != image.FDPipe {
			t.Errorf("the child's stdin is %s, want the tree's pipe", fd.Kind)
		}
		if fd.Kind == image.FDPipe {
			if descs[fd.PipeID] == nil {
				descs[fd.PipeID] = map[uint32]bool{}
			}
			descs[fd.PipeID][fd.OpenID] = true
		}
	}
	two := false
	for _, ds := range descs {
		two = two || len(ds) == 2
	}
	if !two {
		t.Errorf("the child's pipe descriptions %v: want two of one pipe", descs)
	}

	var fileOpen uint32
	for _, fd := range parent.FDs {
		if f := d.tree.FileByID(fd.FileID); fd.Kind == image.FDRegular && f != nil && f.Path == shared {
			fileOpen = fd.OpenID
		}
	}
	childShares := false
	for _, fd := range child.FDs {
		childShares = childShares || fd.Kind == image.FDRegular && fd.OpenID == fileOpen && fileOpen != 0
	}
	if !childShares {
		t.Errorf("the file's open file description (%d) is not the child's too", fileOpen)
	}
	if err := os.WriteFile(shared, []byte("start"), 0o600); err != nil { // as at dump
		t.Fatal(err)
	}

	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestorePipeTooLarge restores the pipes workload where a pipe of
// 1 MiB cannot be made (pipe-max-size lowered to 64 KiB; mmcr lacks
// CAP_SYS_RESOURCE to pass it): the restore fails in one line naming the
// pipe and its capacity, and leaves nothing running.
func TestRestorePipeTooLarge(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "pipes"))
	const knob = "/proc/sys/fs/pipe-max-size"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knob, []byte("65536"), 0); err != nil {
		t.Skipf("cannot lower %s: %v", knob, err)
	}
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	os.WriteFile(knob, old, 0)
	if err == nil {
		for _, pid := range d.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		waitGone(t, d.pids)
		t.Fatal("restore succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "pipe:[") || !strings.Contains(msg, "capacity of 1048576 bytes") || strings.Contains(msg, "\n") {
		t.Errorf("error %q should name the pipe and its capacity on one line", msg)
	}
	for _, pid := range d.pids {
		if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
			t.Errorf("pid %d exists after the failed restore", pid)
		}
	}
}
