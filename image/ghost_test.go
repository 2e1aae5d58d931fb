package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
)

func TestGhostSparse(t *testing.T) {
	const size = 10 << 20
	src := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, size)
	for _, off := range []int64{0, 3 << 20, size - 100} {
		data := bytes.Repeat([]byte{byte(off>>20) + 1}, 100)
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], data)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// A file of size 0, a fully dense one.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	ef, _ := os.Open(empty)
	defer ef.Close()

	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ghost(2, f, size); err != nil {
		t.Fatal(err)
	}
	if err := w.Ghost(3, ef, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(sampleTree()); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, ghostName(2)))
	if st.Size() > 1<<20 {
		t.Errorf("sparse ghost stored in %d bytes: holes not skipped", st.Size())
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rc, n, err := r.Ghost(2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || n != size || !bytes.Equal(got, want) {
		t.Fatalf("sparse ghost: size %d, read %d bytes, equal %v, %v", n, len(got), bytes.Equal(got, want), err)
	}
	rc, n, err = r.Ghost(3)
	if err != nil || n != 0 {
		t.Fatalf("empty ghost: %d %v", n, err)
	}
	if b, _ := io.ReadAll(rc); len(b) != 0 {
		t.Fatal("empty ghost has content")
	}
	rc.Close()

	// crit decodes the chunked image too.
	gf, _ := os.Open(filepath.Join(dir, ghostName(2)))
	defer gf.Close()
	img, err := crit.New(gf, nil, "", false, true).Decode(nil)
	if err != nil || len(img.Entries) != 4 { // header + 3 chunks
		t.Fatalf("crit: %v entries, %v", img, err)
	}
}
