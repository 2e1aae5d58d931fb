package image

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// testdata/realdump holds the metadata of a real dump (mmcr dump of
// "sleep 1000" on x86-64 Linux 6.18): every file but the pages, whose size
// the manifest keeps. It seeds FuzzDecodeRealDump with what dumps really
// contain (a real xsave area, vdso and vvar VMAs, auxv, fds), beyond the
// synthetic sample of the other fuzz targets.
func realDump(t testing.TB) (names []string, files map[string][]byte) {
	t.Helper()
	all, files := readFiles(t, filepath.Join("testdata", "realdump"))
	for _, n := range all {
		if n != ManifestName {
			names = append(names, n)
		}
	}
	// The pages files are not stored: stand in zeros of the size the
	// manifest records, so pagemaps check out against them.
	var m manifest
	if err := json.Unmarshal(files[ManifestName], &m); err != nil {
		t.Fatal(err)
	}
	for _, mf := range m.Files {
		if _, ok := files[mf.Name]; !ok && isPagesFile(mf.Name) {
			files[mf.Name] = make([]byte, mf.Size)
		}
	}
	return names, files
}

// TestRealDumpDecodes: the real dump decodes, with pagemaps that fit.
func TestRealDumpDecodes(t *testing.T) {
	_, files := realDump(t)
	r := memReader(files)
	tree, err := r.Tree()
	if err != nil {
		t.Fatalf("real dump: %v", err)
	}
	if len(tree.Tasks) != 1 || len(tree.Tasks[0].VMAs) == 0 || len(tree.Tasks[0].Threads[0].Xsave) < 576 {
		t.Fatalf("real dump decoded to %d tasks", len(tree.Tasks))
	}
	if _, _, err := r.pageRuns(pagemapName(tree.Tasks[0].PID)); err != nil {
		t.Fatalf("pagemap: %v", err)
	}
	// Written before mmcr kept them: unknown, which restore leaves alone.
	if task := tree.Tasks[0]; task.Threads[0].Sched != nil || task.OomScoreAdj != nil {
		t.Fatalf("real dump without scheduling fields: sched %+v, oom_score_adj %v", task.Threads[0].Sched, task.OomScoreAdj)
	}
}

// FuzzDecodeRealDump replaces one metadata file of the real dump with
// fuzzed bytes: Tree and the pagemaps must give an error or a value,
// never panic.
func FuzzDecodeRealDump(f *testing.F) {
	names, files := realDump(f)
	fuzzOneFile(f, names, files, func(t *testing.T, r *Reader, tree *Tree) {
		for _, task := range tree.Tasks {
			runs, _, err := r.pageRuns(pagemapName(task.PID))
			if err != nil && runs != nil {
				t.Fatalf("pagemap of %d: %d runs with error %v", task.PID, len(runs), err)
			}
		}
	})
}
