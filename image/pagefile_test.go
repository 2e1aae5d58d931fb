package image

import (
	"path/filepath"
	"strings"
	"testing"
)

// OpenDeferred leaves the pages files' checksums to PagesFile.Check: read
// in order, a flipped byte is caught from that read; read out of order or
// not at all, Check reads the file itself.
func TestPagesFileDeferredCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flip    bool
		inOrder bool
		want    string
	}{
		{"intact in order", false, true, ""},
		{"intact out of order", false, false, ""},
		{"flipped in order", true, true, "checksum mismatch"},
		{"flipped out of order", true, false, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := writeSample(t)
			r, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			runs, pf, err := r.OpenPages(100)
			if err != nil {
				t.Fatal(err)
			}
			pf.Close()
			if tc.flip {
				flipByte(t, filepath.Join(dir, pf.Name()), int64(runs[len(runs)-1].Offset)+5)
				if _, err := Open(dir); err == nil {
					t.Fatal("Open took a flipped pages file")
				}
			}
			r, err = OpenDeferred(dir)
			if err != nil {
				t.Fatalf("OpenDeferred: %v", err)
			}
			runs, pf, err = r.OpenPages(100)
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			order := runs
			if !tc.inOrder {
				order = append([]PageRun{runs[len(runs)-1]}, runs[:len(runs)-1]...)
			}
			for _, run := range order {
				if _, err := pf.ReadAt(make([]byte, run.Len), run.Offset); err != nil {
					t.Fatal(err)
				}
			}
			err = pf.Check()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
		})
	}
}
