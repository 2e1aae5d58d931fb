package image

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writePages writes one task's pages with the given adds and reads them back.
func roundTripPages(t testing.TB, adds []pageAdd) ([]PageRun, *os.File) {
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
	for i, a := range adds {
		if err := pw.Add(a.addr, pagesOf(a.pages, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(sampleTree()); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	runs, f, err := r.Pages(100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// Every added page reads back.
	for i, a := range adds {
		want := pagesOf(a.pages, uint64(i))
		got := make([]byte, len(want))
		off := int64(-1)
		for _, r := range runs {
			if a.addr >= r.Addr && a.addr < r.Addr+r.Len {
				off = r.Offset + int64(a.addr-r.Addr)
			}
		}
		if off < 0 {
			t.Fatalf("add %d at %#x not in runs %+v", i, a.addr, runs)
		}
		if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("add %d at %#x: content differs (%v)", i, a.addr, err)
		}
	}
	return runs, f
}

func TestPagesBoundaries(t *testing.T) {
	const mib = 1 << 20 / PageSize
	for _, tc := range []struct {
		name string
		adds []pageAdd
		want []PageRun
	}{
		{"none", nil, nil},
		{"one page", []pageAdd{{0x1000, 1}}, []PageRun{{0x1000, PageSize, 0}}},
		{"contiguous merge", []pageAdd{{0x1000, 1}, {0x2000, 2}, {0x4000, 1}},
			[]PageRun{{0x1000, 4 * PageSize, 0}}},
		{"gap", []pageAdd{{0x1000, 1}, {0x3000, 1}},
			[]PageRun{{0x1000, PageSize, 0}, {0x3000, PageSize, PageSize}}},
		{"address zero", []pageAdd{{0, 1}}, []PageRun{{0, PageSize, 0}}},
		{"top of user space", []pageAdd{{0x7ffffffff000, 1}}, []PageRun{{0x7ffffffff000, PageSize, 0}}},
		{"buffer-sized and over", []pageAdd{{0x10000000, mib}, {0x10000000 + mib*PageSize, mib + 1}, {0x20000000, 3*mib - 1}},
			[]PageRun{{0x10000000, (2*mib + 1) * PageSize, 0}, {0x20000000, (3*mib - 1) * PageSize, (2*mib + 1) * PageSize}}},
		{"large", []pageAdd{{0x40000000, 40 * mib}}, []PageRun{{0x40000000, 40 * mib * PageSize, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs, _ := roundTripPages(t, tc.adds)
			if !reflect.DeepEqual(runs, tc.want) {
				t.Fatalf("runs %+v, want %+v", runs, tc.want)
			}
		})
	}
}

func TestPagesAddErrors(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	pw, err := w.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0x1001, pagesOf(1, 0)); err == nil {
		t.Error("unaligned address accepted")
	}
	if err := pw.Add(0x1000, make([]byte, 100)); err == nil {
		t.Error("unaligned length accepted")
	}
	if err := pw.Add(0x5000, pagesOf(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0x5000, pagesOf(1, 0)); err == nil {
		t.Error("overlapping add accepted")
	}
	if err := pw.Add(0x1000, pagesOf(1, 0)); err == nil {
		t.Error("decreasing add accepted")
	}
	if err := pw.Add(0xfffffffffffff000, pagesOf(2, 0)); err == nil {
		t.Error("wrapping add accepted")
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0x9000, pagesOf(1, 0)); err == nil {
		t.Error("add after close accepted")
	}
	if _, err := w.Pages(1); err == nil {
		t.Error("second page writer for one task accepted")
	}
}

// TestPagesThroughput checks that streaming pages with inline hashing and
// verifying them at Open keep a useful speed (hashing must not dominate).
func TestPagesThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const total = 256 << 20
	chunk := pagesOf(256, 9) // 1 MiB
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := w.Pages(100)
	start := time.Now()
	for off := 0; off < total; off += len(chunk) {
		if err := pw.Add(uint64(0x10000000+off), chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	write := time.Since(start)
	if err := w.Commit(sampleTree()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	verify := time.Since(start)
	mbps := func(d time.Duration) float64 { return total / d.Seconds() / (1 << 20) }
	t.Logf("write %d MiB: %v (%.0f MiB/s); open+verify: %v (%.0f MiB/s)", total>>20, write, mbps(write), verify, mbps(verify))
}

func BenchmarkPageWriter(b *testing.B) {
	chunk := pagesOf(256, 9)
	dir := filepath.Join(b.TempDir(), "img")
	w, _ := Create(dir)
	pw, _ := w.Pages(1)
	b.SetBytes(int64(len(chunk)))
	for i := 0; b.Loop(); i++ {
		if err := pw.Add(uint64(i*len(chunk)), chunk); err != nil {
			b.Fatal(err)
		}
	}
	pw.Close()
	w.Abort()
}

// corrupt applies f to the named file of a fresh sample image and returns
// Open's error.
func openAfter(t *testing.T, f func(dir string)) error {
	t.Helper()
	dir, _ := writeSample(t)
	f(dir)
	_, err := Open(dir)
	return err
}

// TestKilledCommitIsIncomplete: a dump killed at any point before its
// manifest leaves a directory Open calls incomplete, never someone else's
// image (the files a dump wrote, in the order it wrote them, are kept up
// to each point).
func TestKilledCommitIsIncomplete(t *testing.T) {
	dir, _, w := writeSampleWriter(t)
	for n := 0; n <= len(w.created); n++ {
		cut := filepath.Join(t.TempDir(), "img")
		if err := os.Mkdir(cut, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range w.created[:n] {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cut, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Open(cut); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "is incomplete") {
			t.Fatalf("killed after %d of %d files (last %q): Open: %v, want incomplete", n, len(w.created), w.created[max(n-1, 0)], err)
		}
	}
}

func TestManifestChecks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mangle  func(dir string)
		want    error
		wantMsg string
	}{
		{"truncated pages", func(dir string) { os.Truncate(filepath.Join(dir, "pages-1.img"), 4096) },
			ErrCorrupt, "image: pages-1.img: size 4096"},
		{"flipped byte", func(dir string) { flipByte(t, filepath.Join(dir, "pages-1.img"), 5000) },
			ErrCorrupt, "image: pages-1.img: checksum mismatch"},
		{"flipped byte in core", func(dir string) { flipByte(t, filepath.Join(dir, "core-101.img"), 20) },
			ErrCorrupt, "image: core-101.img: checksum mismatch"},
		{"missing file", func(dir string) { os.Remove(filepath.Join(dir, "mm-102.img")) },
			ErrIncomplete, "image: mm-102.img: missing"},
		{"missing manifest", func(dir string) { os.Remove(filepath.Join(dir, ManifestName)) },
			ErrIncomplete, "is incomplete: no manifest (dump did not finish?)"},
		{"criu image", func(dir string) {
			os.Remove(filepath.Join(dir, ManifestName))
			os.Remove(filepath.Join(dir, ExtName))
		}, ErrUnsupported, "holds a CRIU image not written by mmcr"},
		{"fifo in place of a file", func(dir string) {
			p := filepath.Join(dir, "fs-100.img")
			os.Remove(p)
			syscall.Mkfifo(p, 0o600)
		}, ErrCorrupt, "image: fs-100.img: not a regular file"},
		{"symlink in place of a file", func(dir string) {
			p := filepath.Join(dir, "fs-100.img")
			os.Rename(p, p+".real")
			os.Symlink(p+".real", p)
		}, ErrCorrupt, "image: fs-100.img: is a symbolic link"},
		{"garbage manifest", func(dir string) { os.WriteFile(filepath.Join(dir, ManifestName), []byte("{"), 0o600) },
			ErrCorrupt, "image: manifest.json:"},
		{"future manifest", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"format":"mmcr-image","version":99}`), 0o600)
		}, ErrUnsupported, "format version 99"},
		{"path in manifest", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"format":"mmcr-image","version":1,"files":[{"name":"../x"}]}`), 0o600)
		}, ErrCorrupt, "bad file entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openAfter(t, tc.mangle)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.wantMsg)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nonexistent")); err == nil || errors.Is(err, ErrIncomplete) {
		t.Fatalf("nonexistent dir: %v", err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentPageWriters streams several tasks' pages at once (the
// Writer's methods are safe for concurrent use; run with -race).
func TestConcurrentPageWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := sampleTree()
	errs := make(chan error, 3)
	for i, pid := range []int{100, 102} {
		go func() {
			pw, err := w.Pages(pid)
			if err == nil {
				for k := 0; k < 50 && err == nil; k++ {
					err = pw.Add(uint64(0x10000000+k*2*PageSize), pagesOf(1, uint64(i*100+k)))
				}
				if cerr := pw.Close(); err == nil {
					err = cerr
				}
			}
			errs <- err
		}()
	}
	go func() {
		pw, err := w.ShmemPages(1)
		if err == nil {
			err = pw.Add(0, pagesOf(3, 7))
			if cerr := pw.Close(); err == nil {
				err = cerr
			}
		}
		errs <- err
	}()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(tree); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{100, 102} {
		runs, f, err := r.Pages(pid)
		if err != nil || len(runs) != 50 {
			t.Fatalf("task %d: %d runs, %v", pid, len(runs), err)
		}
		f.Close()
	}
}
