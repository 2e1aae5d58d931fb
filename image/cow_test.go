package image

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cowTree is sampleTree whose child inherited part of the root's heap,
// and shares some of its pages with the root.
func cowTree() *Tree {
	tree := sampleTree()
	child := tree.Tasks[1]
	heap := *tree.Tasks[0].VMAs[2]
	heap.End = 0x508000 // the child unmapped the rest
	heap.FromParent = true
	child.VMAs = append([]*VMA{&heap}, child.VMAs...)
	child.ParentPages = []Range{{0x500000, 0x502000}, {0x504000, 0x505000}}
	return tree
}

func commitTree(t *testing.T, tree *Tree) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(tree); err != nil {
		w.Abort()
		return "", err
	}
	return dir, nil
}

// openTree opens the image in dir and reads its tree; the reader is
// closed when the test ends.
func openTree(t *testing.T, dir string) (*Reader, *Tree) {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	tree, err := r.Tree()
	if err != nil {
		t.Fatal(err)
	}
	return r, tree
}

func TestCOWRoundTrip(t *testing.T) {
	want := cowTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"version": 2`, `"from_parent": true`, `"parent_pages"`} {
		if !strings.Contains(string(ext), s) {
			t.Errorf("%s lacks %s", ExtName, s)
		}
	}
	r, got := openTree(t, dir)
	want.Tasks[0].VMAs[7].VmFlags = nil // empty slices come back nil
	if !reflect.DeepEqual(got.Tasks[1], want.Tasks[1]) {
		t.Errorf("child differs:\n got %+v\nwant %+v", got.Tasks[1], want.Tasks[1])
	}

	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if v := sum.Tasks[1].VMAs[0]; !v.FromParent || v.ParentPages != 3 {
		t.Errorf("summary of the inherited heap: from_parent %v, parent pages %d, want true, 3", v.FromParent, v.ParentPages)
	}
	var text strings.Builder
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "from parent (3 pages shared)") {
		t.Errorf("summary text lacks the inherited heap:\n%s", text.String())
	}

	// Without COW records the ext file stays at version 1.
	dir, err = commitTree(t, sampleTree())
	if err != nil {
		t.Fatal(err)
	}
	if ext, _ := os.ReadFile(filepath.Join(dir, ExtName)); !strings.Contains(string(ext), `"version": 1`) {
		t.Errorf("plain tree's %s is not version 1", ExtName)
	}
}

func TestCOWRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"root from parent", func(tr *Tree) { tr.Tasks[0].VMAs[2].FromParent = true }, "parent that is not in the tree"},
		{"prot differs", func(tr *Tree) { tr.Tasks[1].VMAs[0].Prot = unix.PROT_READ }, "has no such VMA"},
		{"beyond parent vma", func(tr *Tree) { tr.Tasks[1].VMAs[0].End = 0x511000 }, "has no such VMA"},
		{"dontfork", func(tr *Tree) {
			tr.Tasks[0].VMAs[2].Madv |= 1 << unix.MADV_DONTFORK
			tr.Tasks[1].VMAs[0].Madv |= 1 << unix.MADV_DONTFORK
		}, "has no such VMA"},
		{"pages outside", func(tr *Tree) { tr.Tasks[1].ParentPages[1] = Range{0x600000, 0x601000} }, "not inside one VMA inherited"},
		{"pages unordered", func(tr *Tree) {
			pp := tr.Tasks[1].ParentPages
			pp[0], pp[1] = pp[1], pp[0]
		}, "out of order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := cowTree()
			tc.mangle(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("commit: got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}
