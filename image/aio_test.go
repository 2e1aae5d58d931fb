package image

import (
	"strings"
	"testing"
)

// TestAIORingsRejected: an AIO context and its ring VMA must match, one to
// one, and a fork's copy of a ring must be one of its parent's.
func TestAIORingsRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(tr *Tree)
		msg  string
	}{
		{"context without its ring", func(tr *Tree) {
			tr.Tasks[0].Mm.AIORings = append(tr.Tasks[0].Mm.AIORings, AIORing{Addr: 0x7f2000000000, Len: 0x3000, NrReq: 190})
		}, "2 AIO contexts"},
		{"ring without its context", func(tr *Tree) { tr.Tasks[0].Mm.AIORings = nil }, "for 0 AIO contexts"},
		{"context of another size", func(tr *Tree) { tr.Tasks[0].Mm.AIORings[0].Len = 0x2000 }, "does not match its ring"},
		{"no request count", func(tr *Tree) { tr.Tasks[0].Mm.AIORings[0].NrReq = 0 }, "does not match its ring"},
		{"inherited copy of no ring of the parent", func(tr *Tree) {
			tr.Tasks[1].VMAs = append(tr.Tasks[1].VMAs, &VMA{Start: 0x7f3000000000, End: 0x7f3000003000, Prot: 3,
				Flags: 1, Kind: KindAIORing, FromParent: true})
		}, "inherited from parent 100, which has no such VMA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := sampleTree()
			tc.edit(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("commit: got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
	// The child's copy of the root's ring is fine.
	tree := sampleTree()
	tree.Tasks[1].VMAs = append(tree.Tasks[1].VMAs, &VMA{Start: 0x7f1000000000, End: 0x7f1000003000, Prot: 3,
		Flags: 1, Kind: KindAIORing, FromParent: true})
	if _, err := commitTree(t, tree); err != nil {
		t.Fatalf("a fork's copy of its parent's ring: %v", err)
	}
}
