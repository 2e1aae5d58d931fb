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

// TestVMAMemPolicyRoundTrip: a range's memory policy (mbind) comes back on
// its VMA only, makes the ext file version 7, and a bad one is refused at
// commit and, written by hand, at open.
func TestVMAMemPolicyRoundTrip(t *testing.T) {
	tree := sampleTree()
	v := tree.Tasks[0].VMAs[len(tree.Tasks[0].VMAs)-1]
	want := &MemPolicy{Mode: 2 | 1<<15, Nodes: []uint64{0x1}} // MPOL_BIND|MPOL_F_STATIC_NODES
	v.MemPolicy = want
	local := tree.Tasks[0].VMAs[0]
	local.MemPolicy = &MemPolicy{Mode: 4} // MPOL_LOCAL: no nodes
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"version": 7`) {
		t.Fatalf("%s is not version 7 (%v)", ExtName, err)
	}
	_, got := openTree(t, dir)
	vmas := got.Tasks[0].VMAs
	for i, gv := range vmas {
		var w *MemPolicy
		switch i {
		case 0:
			w = local.MemPolicy
		case len(vmas) - 1:
			w = want
		}
		if !reflect.DeepEqual(gv.MemPolicy, w) {
			t.Errorf("VMA %#x-%#x: policy %+v, want %+v", gv.Start, gv.End, gv.MemPolicy, w)
		}
	}
	v.MemPolicy = &MemPolicy{Mode: 9}
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "memory policy") {
		t.Errorf("mode 9: commit %v, want a refusal", err)
	}
	// The same, written into a good image's ext file: refused at open.
	bad := strings.Replace(string(ext), `"mode": 4`, `"mode": 9`, 1)
	if bad == string(ext) {
		t.Fatalf("no MPOL_LOCAL policy in %s", ext)
	}
	_, files := readFiles(t, dir)
	files[ExtName] = []byte(bad)
	if _, err := memReader(files).Tree(); err == nil || !strings.Contains(err.Error(), "memory policy mode 0x9") {
		t.Errorf("open with mode 9: %v, want a refusal", err)
	}
}

func TestMemPolicyString(t *testing.T) {
	for _, tc := range []struct {
		p    *MemPolicy
		want string
	}{
		{nil, ""},
		{&MemPolicy{Mode: 2 | 1<<15, Nodes: []uint64{0x5}}, "bind=static:0,2"},
		{&MemPolicy{Mode: 4}, "local"},
		{&MemPolicy{Mode: 3 | 1<<14 | 1<<13, Nodes: []uint64{0, 1}}, "interleave=relative|balancing:64"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}
