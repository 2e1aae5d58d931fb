package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// smallSample writes a trimmed sample image: fuzz seeds are kept small
// because the fuzzer minimizes every new input, which takes seconds per
// input at the sample's full size.
func smallSample(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	tree := sampleTree()
	for _, task := range tree.Tasks {
		task.Threads = task.Threads[:1]
		task.Threads[0].Xsave = task.Threads[0].Xsave[:xsaveMinSize]
		if len(task.SigActions) > 4 {
			task.SigActions = task.SigActions[:4]
		}
		if len(task.Rlimits) > 2 {
			task.Rlimits = task.Rlimits[:2]
		}
	}
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := w.Pages(100)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0x500000, pagesOf(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0x502000, pagesOf(1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	addGhost(t, w, 2, []byte("ghost content"), 13)
	if err := w.Commit(tree); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sampleFiles reads every file of a freshly written small sample image.
func sampleFiles(t testing.TB) (dir string, names []string, files map[string][]byte) {
	dir = smallSample(t)
	names, files = readFiles(t, dir)
	return dir, names, files
}

// readFiles reads every file of dir: their names, sorted, and contents.
func readFiles(t testing.TB, dir string) (names []string, files map[string][]byte) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, files
}

// memReader is a Reader over in-memory metadata files (no checksums).
func memReader(files map[string][]byte) *Reader {
	r := &Reader{files: map[string]manifestFile{}, mem: files}
	for n, b := range files {
		r.files[n] = manifestFile{Name: n, Size: int64(len(b))}
	}
	return r
}

// FuzzDecodeTree replaces one metadata file of a valid image with fuzzed
// bytes: Tree must return an error or a tree, never panic.
func FuzzDecodeTree(f *testing.F) {
	_, names, files := sampleFiles(f)
	var meta []string
	for _, n := range names {
		if n != ManifestName && !isPagesFile(n) && !isGhostFile(n) {
			meta = append(meta, n)
		}
	}
	fuzzOneFile(f, meta, files, func(t *testing.T, r *Reader, tree *Tree) {
		for _, task := range tree.Tasks {
			// What decode lets through, restore hands to the kernel.
			if v := task.OomScoreAdj; v != nil && checkOomScoreAdj(*v) != nil {
				t.Fatalf("task %d: oom_score_adj %d decoded", task.PID, *v)
			}
			for _, v := range task.VMAs {
				if checkHugetlb(v, tree.SharedObjectByID(v.ShmID)) != nil {
					t.Fatalf("task %d: hugetlb VMA %+v decoded", task.PID, *v)
				}
			}
			if checkMlockFuture(task.Mm.MlockFuture) != nil {
				t.Fatalf("task %d: mlock_future %#x decoded", task.PID, task.Mm.MlockFuture)
			}
			if checkMembarrier(task.Mm.Membarrier) != nil {
				t.Fatalf("task %d: membarrier %#x decoded", task.PID, task.Mm.Membarrier)
			}
			for _, v := range task.VMAs {
				if checkMemPolicy(v.MemPolicy) != nil {
					t.Fatalf("task %d: VMA policy %+v decoded", task.PID, *v.MemPolicy)
				}
			}
			for _, th := range task.Threads {
				if th.Sched != nil && th.Sched.check() != nil {
					t.Fatalf("thread %d: scheduling state %+v decoded", th.TID, *th.Sched)
				}
			}
			if _, _, err := r.pageRuns(pagemapName(task.PID)); err != nil {
				continue
			}
		}
	})
}

// fuzzOneFile seeds f with each of names' files and fuzzes one at a time:
// the fuzzed bytes replace that file of an otherwise valid image, and Tree
// must return an error or a tree, never panic. A tree is handed to check.
func fuzzOneFile(f *testing.F, names []string, files map[string][]byte, check func(t *testing.T, r *Reader, tree *Tree)) {
	for i, n := range names {
		f.Add(uint8(i), files[n])
	}
	f.Fuzz(func(t *testing.T, idx uint8, data []byte) {
		name := names[int(idx)%len(names)]
		m := make(map[string][]byte, len(files))
		for k, v := range files {
			m[k] = v
		}
		m[name] = data
		r := memReader(m)
		tree, err := r.Tree()
		if (tree == nil) == (err == nil) {
			t.Fatalf("%s: tree %v, err %v", name, tree != nil, err)
		}
		if err == nil {
			check(t, r, tree)
		}
	})
}

func isPagesFile(n string) bool { return len(n) > 6 && n[:6] == "pages-" }
func isGhostFile(n string) bool { return len(n) > 11 && n[:11] == "ghost-file-" }

// FuzzDecodePagemap: runs are sorted, page-aligned and fit the pages file.
func FuzzDecodePagemap(f *testing.F) {
	_, names, files := sampleFiles(f)
	for _, n := range names {
		if len(n) > 8 && n[:8] == "pagemap-" {
			f.Add(files[n])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runs, _, err := decodePagemap("pagemap-1.img", data)
		if err != nil {
			if runs != nil {
				t.Fatal("runs with an error")
			}
			return
		}
		var off int64
		var next uint64
		for _, r := range runs {
			if r.Addr%PageSize != 0 || r.Len%PageSize != 0 || r.Len == 0 || r.Addr < next || r.Offset != off {
				t.Fatalf("bad run %+v", r)
			}
			next = r.Addr + r.Len
			off += int64(r.Len)
		}
	})
}

// FuzzDecodeGhost: a ghost image decodes to chunks inside the file size,
// and reads back exactly size bytes.
func FuzzDecodeGhost(f *testing.F) {
	_, names, files := sampleFiles(f)
	for _, n := range names {
		if isGhostFile(n) {
			f.Add(files[n])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		chunks, size, err := readGhostLayout("ghost-file-1.img", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var next int64
		for _, c := range chunks {
			if c.off < next || c.len <= 0 || c.off+c.len > size || c.pos+c.len > int64(len(data)) {
				t.Fatalf("bad chunk %+v (size %d, file %d)", c, size, len(data))
			}
			next = c.off + c.len
		}
		if size < 1<<20 {
			g := &ghostReader{ra: bytes.NewReader(data), chunks: chunks, size: size}
			got, err := io.ReadAll(g)
			if err != nil || int64(len(got)) != size {
				t.Fatalf("read %d bytes of %d: %v", len(got), size, err)
			}
		}
	})
}

// FuzzOpen fuzzes the manifest of a real image directory.
func FuzzOpen(f *testing.F) {
	dir, _, files := sampleFiles(f)
	f.Add(files[ManifestName])
	f.Add([]byte(`{"format":"mmcr-image","version":1,"files":[{"name":"pages-1.img","size":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(dir)
		if (r == nil) == (err == nil) {
			t.Fatalf("reader %v, err %v", r != nil, err)
		}
		if err == nil {
			if tree, err := r.Tree(); err == nil {
				if _, err := Summarize(r); err != nil {
					_ = tree
				}
			}
		}
	})
}

// FuzzDecodePipes is FuzzDecodeTree over an image holding pipes
// (pipeTree): their data, file entries and fds. A tree that decodes has
// pipes restore can make (checkPipes).
func FuzzDecodePipes(f *testing.F) {
	w, err := Create(filepath.Join(f.TempDir(), "img"))
	if err != nil {
		f.Fatal(err)
	}
	if err := w.Commit(pipeTree()); err != nil {
		f.Fatal(err)
	}
	_, files := readFiles(f, w.dir)
	names := []string{pipesDataName, fifoDataName, skQueuesName, filesName, fdinfoName(100), fdinfoName(102), ExtName}
	fuzzOneFile(f, names, files, func(t *testing.T, r *Reader, tree *Tree) {
		if err := checkPipes(tree); err != nil {
			t.Fatalf("pipes decoded: %v", err)
		}
		if err := checkSockets(tree); err != nil {
			t.Fatalf("sockets decoded: %v", err)
		}
	})
}
