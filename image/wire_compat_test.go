package image

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"google.golang.org/protobuf/proto"
)

// compatTrees are trees covering what the encoder writes: sampleTree
// (threads, every VMA kind, every fd kind, files, shared objects, memfds,
// sched and oom fields, sigactions, rlimits, itimers, pending signals,
// creds, rseq) and a variant with the optional parts absent or at their
// edges (negative int32 and sint32 values, short or no xsave area).
func compatTrees() map[string]*Tree {
	sparse := sampleTree()
	root := sparse.Tasks[0]
	root.OomScoreAdj = new(-1000)
	root.Mm.Dumpable = -1
	root.Rlimits, root.SigActions, root.SharedPending, root.Itimers = nil, nil, nil, [3]Itimer{}
	root.Creds.Groups = nil
	root.Threads[0].Sched = &Sched{Policy: SchedBatch, Nice: -20}
	root.Threads[1].Xsave = root.Threads[1].Xsave[:xsaveMinSize]
	root.Threads[2].Xsave = nil
	root.Threads[2].Comm, root.Threads[2].Rseq, root.Threads[2].Pending = "", Rseq{}, nil
	sparse.Tasks[1].FDs = nil
	return map[string]*Tree{"sample": sampleTree(), "sparse": sparse, "pipes": pipeTree(), "inet": inetTree()}
}

// writeCompat writes tree with some pages and a ghost file 2 and returns
// the image's files.
func writeCompat(t *testing.T, tree *Tree) map[string][]byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := w.Pages(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint64{0x500000, 0x501000, 0x503000} {
		if err := pw.Add(a, pagesOf(1, a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	addGhost(t, w, 2, bytes.Repeat([]byte("g"), 5000), 5000)
	if err := w.Commit(tree); err != nil {
		t.Fatal(err)
	}
	_, files := readFiles(t, dir)
	return files
}

// TestEncodeMatchesGoCriu: every metadata image the hand-written encoder
// writes is byte for byte what go-criu's types and proto.Marshal wrote
// (legacy_test.go), and decoding those go-criu bytes gives the tree back.
func TestEncodeMatchesGoCriu(t *testing.T) {
	for what, tree := range compatTrees() {
		t.Run(what, func(t *testing.T) {
			files := writeCompat(t, tree)
			legacy := legacyImages(t, tree, map[uint32]bool{2: true})
			for name, want := range legacy {
				if got, ok := files[name]; !ok || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes, go-criu's are %d bytes%s", name, len(got), len(want), firstDiff(got, want))
				}
			}
			for name := range files {
				meta := strings.HasSuffix(name, ".img") && !isPagesFile(name) && !isGhostFile(name) &&
					!strings.HasPrefix(name, "pagemap-")
				if _, ok := legacy[name]; meta && !ok {
					t.Errorf("%s: not written by the go-criu encoder", name)
				}
			}
			runs, pagesID, err := decodePagemap("pagemap-100.img", files["pagemap-100.img"])
			if err != nil {
				t.Fatal(err)
			}
			if want := []PageRun{{0x500000, 2 * PageSize, 0}, {0x503000, PageSize, 2 * PageSize}}; !reflect.DeepEqual(runs, want) {
				t.Fatalf("pagemap runs %+v, want %+v", runs, want)
			}
			if got, want := files["pagemap-100.img"], legacyPagemap(t, pagesID, runs); !bytes.Equal(got, want) {
				t.Errorf("pagemap-100.img differs from go-criu's%s", firstDiff(got, want))
			}

			// The go-criu bytes decode to the tree (normalized as Tree documents).
			m := map[string][]byte{}
			for k, v := range files {
				m[k] = v
			}
			for k, v := range legacy {
				m[k] = v
			}
			got, err := memReader(m).Tree()
			if err != nil {
				t.Fatal(err)
			}
			want := *tree
			normalizeTree(&want)
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("decoding go-criu's images: tree differs")
			}
		})
	}
}

// normalizeTree makes empty slices nil, as a decoded tree has them.
func normalizeTree(t *Tree) {
	for _, task := range t.Tasks {
		for _, v := range task.VMAs {
			if len(v.VmFlags) == 0 {
				v.VmFlags = nil
			}
		}
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return ", first difference at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

// TestGhostEncodeMatchesGoCriu: the ghost-file header and chunk entries.
func TestGhostEncodeMatchesGoCriu(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunked := range []bool{false, true} {
		ge := legacyGhostEntry(st, 1<<40)
		ge.Chunks = proto.Bool(chunked)
		want, err := deterministic.Marshal(ge)
		if err != nil {
			t.Fatal(err)
		}
		if got := ghostEntry(st, 1<<40, chunked); !bytes.Equal(got, want) {
			t.Errorf("ghost entry (chunks %v): %x, go-criu's %x", chunked, got, want)
		}
	}
	want, err := deterministic.Marshal(&ghost_file.GhostChunkEntry{Len: proto.Uint64(4096), Off: proto.Uint64(1 << 33)})
	if err != nil {
		t.Fatal(err)
	}
	if got := ghostChunkEntry(segment{off: 1 << 33, len: 4096}); !bytes.Equal(got, want) {
		t.Errorf("ghost chunk: %x, go-criu's %x", got, want)
	}
}
