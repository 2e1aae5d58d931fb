package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreMemPolicy dumps a parent that interleaves its memory over
// node 0 and a child bound to it, and checks each restored task has its
// own NUMA memory policy again.
func TestRestoreMemPolicy(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "mempolicy", "NUMA memory policy")
	d := dumpWorkload(t, false, bin)
	for i, want := range []uint32{unix.MPOL_INTERLEAVE | unix.MPOL_F_STATIC_NODES, unix.MPOL_BIND} {
		p := d.tree.Tasks[i].Threads[0].MemPolicy
		if p == nil || p.Mode != want || len(p.Nodes) != 1 || p.Nodes[0] != 1 {
			t.Errorf("task %d's image: memory policy %+v, want mode %#x nodes [1]", d.tree.Tasks[i].PID, p, want)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
