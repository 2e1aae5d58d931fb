package dump

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// The store goroutine stores batches in the order they are put, drops
// zero pages but where told to keep them, and the image reads back what
// went in.
func TestStorePipe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	pw, err := w.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 4*image.PageSize), make([]byte, 4*image.PageSize)}
	p := newStorePipe(pw, bufs)
	want := map[uint64]byte{}
	addr := uint64(0x10000)
	for batch := 0; batch < 10; batch++ {
		b, err := p.get()
		if err != nil {
			t.Fatal(err)
		}
		keep := batch%3 == 0
		b.take(addr, 4*image.PageSize, keep, false)
		for pg := 0; pg < 4; pg++ {
			v := byte(batch*4 + pg)
			if pg == 1 {
				v = 0 // a zero page: dropped unless kept
			}
			page := b.runs[0].data[pg*image.PageSize : (pg+1)*image.PageSize]
			for i := range page {
				page[i] = v
			}
			if v != 0 || keep {
				want[addr+uint64(pg)*image.PageSize] = v
			}
		}
		p.put(b)
		addr += 4 * image.PageSize
	}
	pages, err := p.close()
	if err != nil {
		t.Fatal(err)
	}
	if int(pages) != len(want) {
		t.Errorf("stored %d pages, want %d", pages, len(want))
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	tree := &image.Tree{Tasks: []*image.Task{{PID: 1, Threads: []*image.Thread{{TID: 1}}}}}
	if err := w.Commit(tree); err != nil {
		t.Fatal(err)
	}
	r, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	runs, f, err := r.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := 0
	for _, run := range runs {
		for off := uint64(0); off < run.Len; off += image.PageSize {
			page := make([]byte, image.PageSize)
			if _, err := f.ReadAt(page, run.Offset+int64(off)); err != nil {
				t.Fatal(err)
			}
			v, ok := want[run.Addr+off]
			if !ok || !bytes.Equal(page, bytes.Repeat([]byte{v}, image.PageSize)) {
				t.Errorf("page at %#x: %v, want %d (stored %v)", run.Addr+off, page[0], v, ok)
			}
			got++
		}
	}
	if got != len(want) {
		t.Errorf("image holds %d pages, want %d", got, len(want))
	}
}
