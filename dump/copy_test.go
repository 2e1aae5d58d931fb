package dump

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// patternSource fills every page with a byte derived from its address;
// pages listed in zero read as zeros, and a read touching failAt fails.
type patternSource struct {
	zero   map[uint64]bool
	failAt uint64
}

func patternByte(addr uint64) byte { return byte(addr/image.PageSize%251 + 1) }

func (p patternSource) read(_ *copyWorker, runs []chunkRun) error {
	for _, r := range runs {
		for off := 0; off < len(r.data); off += image.PageSize {
			a := r.addr + uint64(off)
			if p.failAt != 0 && a == p.failAt {
				return errors.New("injected read failure")
			}
			v := patternByte(a)
			if p.zero[a] {
				v = 0
			}
			clear(r.data[off : off+image.PageSize])
			r.data[off+image.PageSize-1] = v // the first word stays zero: the slow path of isZeroPage
			if a%(3*image.PageSize) == 0 {
				r.data[off] = v // and the fast path
			}
		}
	}
	return nil
}

// newPageWriter creates an image in dir (removed at the end of the test
// unless committed) and task 1's page writer.
func newPageWriter(t *testing.T, dir string) (*image.Writer, *image.PageWriter) {
	t.Helper()
	w, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort() })
	pw, err := w.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	return w, pw
}

// Chunks copied by several workers land in address order, zero pages
// dropped except where kept, and the manifest's checksums (joined from
// the workers' pieces) match the files.
func TestPageStream(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, pw := newPageWriter(t, dir)
	pool := newCopyPool(3)
	defer pool.close()
	src := patternSource{zero: map[uint64]bool{}}
	type run struct {
		start, pages uint64
		keepZero     bool
	}
	// Runs across several chunks, some longer than a chunk, some short
	// and many (more than maxIovecs in one chunk's worth of bytes).
	var runs []run
	addr := uint64(0x100000)
	for i := range 40 {
		n := uint64(i%7*50 + 1)
		runs = append(runs, run{addr, n, i%5 == 0})
		addr += (n + uint64(i%3)) * image.PageSize
	}
	for i := range 1500 {
		runs = append(runs, run{addr, 1, false})
		addr += 2 * image.PageSize
		_ = i
	}
	want := map[uint64]byte{}
	for i, r := range runs {
		for pg := range r.pages {
			a := r.start + pg*image.PageSize
			if (i+int(pg))%4 == 1 {
				src.zero[a] = true
			}
			if !src.zero[a] || r.keepZero {
				want[a] = patternByte(a)
				if src.zero[a] {
					want[a] = 0
				}
			}
		}
	}
	s := pool.stream(pw, src, nil)
	var addErr error
	for _, r := range runs {
		if addErr = s.add(r.start, r.pages*image.PageSize, r.keepZero, false); addErr != nil {
			break
		}
	}
	pages, err := s.finish(addErr)
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
	r, err := image.Open(dir) // checks every file's size and checksum
	if err != nil {
		t.Fatal(err)
	}
	pruns, f, err := r.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := 0
	page := make([]byte, image.PageSize)
	for _, run := range pruns {
		for off := uint64(0); off < run.Len; off += image.PageSize {
			a := run.Addr + off
			if _, err := f.ReadAt(page, run.Offset+int64(off)); err != nil {
				t.Fatal(err)
			}
			v, ok := want[a]
			if !ok {
				t.Fatalf("page %#x stored, want it left out", a)
			}
			if page[image.PageSize-1] != v {
				t.Fatalf("page %#x holds %d, want %d", a, page[image.PageSize-1], v)
			}
			got++
		}
	}
	if got != len(want) {
		t.Errorf("image holds %d pages, want %d", got, len(want))
	}
}

// A chunk that fails to read fails the stream with its error, and neither
// the chunks after it nor finish hang.
func TestPageStreamReadError(t *testing.T) {
	_, pw := newPageWriter(t, filepath.Join(t.TempDir(), "img"))
	pool := newCopyPool(2)
	defer pool.close()
	fail := uint64(0x100000) + 5*chunkSize + 3*image.PageSize
	s := pool.stream(pw, patternSource{failAt: fail}, nil)
	addErr := s.add(0x100000, 40*chunkSize, false, false)
	_, err := s.finish(addErr)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("injected read failure")) {
		t.Fatalf("finish: %v, want the injected read failure", err)
	}
}

func TestFilter(t *testing.T) {
	// Pages: data, zero, data, data, zero; then a kept run of a zero page.
	buf := make([]byte, 6*image.PageSize)
	for _, p := range []int{0, 2, 3} {
		buf[p*image.PageSize+7] = 1
	}
	runs := []chunkRun{
		{addr: 0x10000, n: 5 * image.PageSize, data: buf[:5*image.PageSize]},
		{addr: 0x15000, n: image.PageSize, keepZero: true, data: buf[5*image.PageSize:]},
	}
	var w copyWorker
	c := &chunk{runs: runs}
	sum := w.filter(c)
	if c.pages != 4 {
		t.Errorf("kept %d pages, want 4", c.pages)
	}
	want := []image.Range{{Start: 0x10000, End: 0x11000}, {Start: 0x12000, End: 0x14000}, {Start: 0x15000, End: 0x16000}}
	if len(w.keep) != len(want) {
		t.Fatalf("kept %#v, want %#v", w.keep, want)
	}
	var kept []byte
	for i := range want {
		if w.keep[i] != want[i] || uint64(len(c.store[i])) != want[i].End-want[i].Start {
			t.Errorf("run %d: %#v (%d bytes), want %#v", i, w.keep[i], len(c.store[i]), want[i])
		}
		kept = append(kept, c.store[i]...)
	}
	if sum != image.CRC32C(0, kept) {
		t.Errorf("checksum %08x, want %08x", sum, image.CRC32C(0, kept))
	}
}
