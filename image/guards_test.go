package image

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// guardTree is sampleTree whose root has two guard regions in its heap.
func guardTree() *Tree {
	tree := sampleTree()
	tree.Tasks[0].Guards = []Range{{0x501000, 0x503000}, {0x506000, 0x507000}}
	return tree
}

func TestGuardsRoundTrip(t *testing.T) {
	want := guardTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"guards"`) || !strings.Contains(string(ext), `"version": 3`) {
		t.Fatalf("%s lacks the guards or version 3 (%v):\n%s", ExtName, err, ext)
	}
	r, got := openTree(t, dir)
	if !reflect.DeepEqual(got.Tasks[0].Guards, want.Tasks[0].Guards) {
		t.Errorf("guards %x, want %x", got.Tasks[0].Guards, want.Tasks[0].Guards)
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if v := sum.Tasks[0].VMAs[2]; v.GuardPages != 3 {
		t.Errorf("summary of the heap: %d guard pages, want 3", v.GuardPages)
	}
}

func TestGuardsRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		guards []Range
		msg    string
	}{
		{"unaligned", []Range{{0x501000, 0x501800}}, "unaligned"},
		{"empty", []Range{{0x501000, 0x501000}}, "empty"},
		{"out of order", []Range{{0x506000, 0x507000}, {0x501000, 0x503000}}, "out of order"},
		{"outside every vma", []Range{{0x1000, 0x2000}}, "not inside one VMA"},
		{"across a vma's end", []Range{{0x50f000, 0x511000}}, "not inside one VMA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := sampleTree()
			tree.Tasks[0].Guards = tc.guards
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("commit: got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

// TestExtVersionRefused: a reader refuses an ext file of a version after
// its own (one that may hold what it would silently drop), naming it.
func TestExtVersionRefused(t *testing.T) {
	tree := guardTree()
	tree.Tasks[0].Mm.MlockFuture = unix.MCL_FUTURE
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ExtName)
	ext, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeExt(ext); err != nil {
		t.Fatalf("version 4 refused: %v", err)
	}
	_, err = decodeExt([]byte(strings.Replace(string(ext), `"version": 4`, `"version": 10`, 1)))
	if err == nil || !strings.Contains(err.Error(), "version 10") || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported naming version 10", err)
	}
}
