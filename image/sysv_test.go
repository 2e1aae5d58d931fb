package image

import (
	"strings"
	"testing"
)

// TestSysVRoundTrip: a shared object's SysV segment (removed and locked
// here) comes back, makes the ext file version 4 and is checked.
func TestSysVRoundTrip(t *testing.T) {
	tree := sampleTree()
	seg := &SysVSegment{Key: 0x1234, ID: 3, Mode: 0o3640, UID: 1000, GID: 100, Size: tree.SharedObjects[0].Size - 100}
	tree.SharedObjects[0].SysV = seg
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	r, got := openTree(t, dir)
	if g := got.SharedObjects[0].SysV; g == nil || *g != *seg || !g.Removed() || !g.Locked() {
		t.Fatalf("SysV segment came back as %+v, want %+v", g, *seg)
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "sysv id 3 key 0x1234 (removed, locked)") {
		t.Errorf("summary lacks the segment:\n%s", text.String())
	}
	size := tree.SharedObjects[0].Size
	for _, bad := range []*SysVSegment{{ID: -1, Size: size}, {ID: 1, Mode: 0o4777, Size: size}, {ID: 1, Size: size + 1}, {ID: 1, Size: size - PageSize}} {
		tree.SharedObjects[0].SysV = bad
		if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "SysV segment") {
			t.Errorf("segment %+v: commit %v, want a refusal", *bad, err)
		}
	}
}
