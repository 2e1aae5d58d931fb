package image

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestMemPolicyRoundTrip: a thread's NUMA memory policy comes back, makes
// the ext file version 4, and a mode set_mempolicy would refuse is not
// written.
func TestMemPolicyRoundTrip(t *testing.T) {
	tree := sampleTree()
	want := &MemPolicy{Mode: 3 | 1<<15, Nodes: []uint64{0x5, 1}}
	tree.Tasks[0].Threads[1].MemPolicy = want
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"mempolicy"`) || !strings.Contains(string(ext), `"version": 4`) {
		t.Fatalf("%s lacks the policy or version 4 (%v)", ExtName, err)
	}
	_, got := openTree(t, dir)
	if g := got.Tasks[0].Threads[1].MemPolicy; !reflect.DeepEqual(g, want) || got.Tasks[0].Threads[0].MemPolicy != nil {
		t.Errorf("policies came back as %+v and %+v, want %+v and none", g, got.Tasks[0].Threads[0].MemPolicy, want)
	}
	for _, bad := range []*MemPolicy{{Mode: 0}, {Mode: 7}, {Mode: 2 | 1<<12}, {Mode: 2, Nodes: make([]uint64, MemPolicyNodeWords+1)}} {
		tree.Tasks[0].Threads[1].MemPolicy = bad
		if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "memory policy") {
			t.Errorf("policy %+v: commit %v, want a refusal", *bad, err)
		}
	}
}
