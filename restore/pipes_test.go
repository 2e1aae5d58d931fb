package restore

import (
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
func TestRestorePipes(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, true, buildC(t, "pipes"))
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v (the dump took from or changed its pipes)", err)
	}
	waitGone(t, d.pids)

	if len(d.tree.Pipes) != 5 {
		t.Fatalf("%d pipes in the image, want 5", len(d.tree.Pipes))
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
	shared := false
	for _, fds := range opens {
		shared = shared || len(fds) == 2 && fds[1] == 20
	}
	if !shared {
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

	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
