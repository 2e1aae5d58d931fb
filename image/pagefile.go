package image

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/mmcr/mmcr/internal/rawio"
	"golang.org/x/sys/unix"
)

// isPagesName reports the raw page files (pages-N.img).
func isPagesName(name string) bool {
	return strings.HasPrefix(name, "pages-") && strings.HasSuffix(name, ".img")
}

// openListed opens a file listed in the manifest and checks it is a
// regular file of the listed size.
func openListed(path string, mf manifestFile) (*os.File, error) {
	// O_NOFOLLOW|O_NONBLOCK: a symlink or a FIFO planted in the directory
	// must fail here, not redirect or block the read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fileErr(mf.Name, ErrIncomplete, "missing")
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fileErr(mf.Name, ErrCorrupt, "is a symbolic link")
	}
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("image: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fileErr(mf.Name, ErrCorrupt, "not a regular file (%v)", st.Mode().Type())
	}
	if st.Size() != mf.Size {
		f.Close()
		return nil, fileErr(mf.Name, ErrCorrupt, "size %d, manifest says %d (truncated?)", st.Size(), mf.Size)
	}
	return f, nil
}

// checkSize is verifyFile without the checksum (OpenDeferred).
func checkSize(path string, mf manifestFile) error {
	f, err := openListed(path, mf)
	if err != nil {
		return err
	}
	return f.Close()
}

// PagesFile is an open pages file. Read through ReadAt from its start to
// its end in order, it checksums what it reads on the way; Check then
// compares with the manifest (reading the file again only when the reads
// were not in order). It exists for OpenDeferred readers; for Open's, whose
// files were checked already, Check has nothing to do.
type PagesFile struct {
	f    *os.File
	mf   manifestFile
	path string
	h    hash.Hash32 // nil: nothing left to check
	next int64       // the offset a read must start at to extend h
}

// OpenPages is Pages returning a PagesFile.
func (r *Reader) OpenPages(pid int) ([]PageRun, *PagesFile, error) {
	return r.openPages(pagemapName(pid))
}

// OpenShmemPages is ShmemPages returning a PagesFile.
func (r *Reader) OpenShmemPages(shmID uint32) ([]PageRun, *PagesFile, error) {
	return r.openPages(shmemPagemapName(shmID))
}

func (r *Reader) openPages(name string) ([]PageRun, *PagesFile, error) {
	runs, pn, err := r.pageRuns(name)
	if err != nil {
		return nil, nil, err
	}
	mf := r.files[pn]
	path := r.dir + "/" + pn
	f, err := openListed(path, mf)
	if err != nil {
		return nil, nil, err
	}
	pf := &PagesFile{f: f, mf: mf, path: path}
	if r.deferred {
		pf.h = newChecksum()
	}
	return runs, pf, nil
}

// Name is the file's name in the image.
func (p *PagesFile) Name() string { return p.mf.Name }

// ReadAt reads len(b) bytes at off (io.ReaderAt). The reads are raw
// (internal/rawio): its caller is the restore's page reader, a goroutine
// with a P of its own that would otherwise lose it at every window.
func (p *PagesFile) ReadAt(b []byte, off int64) (int, error) {
	fd := int(p.f.Fd())
	n := 0
	var err error
	for n < len(b) {
		k, rerr := rawio.Pread(fd, b[n:], off+int64(n))
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			err = &os.PathError{Op: "read", Path: p.path, Err: rerr}
			break
		}
		if k == 0 {
			err = io.EOF
			break
		}
		n += k
	}
	runtime.KeepAlive(p.f) // the raw fd must outlive the reads
	if p.h != nil && off == p.next {
		p.h.Write(b[:n])
		p.next += int64(n)
	}
	return n, err
}

// Check reports whether the file matches the manifest's checksum: from
// what was read when it was read whole and in order, else by reading it.
func (p *PagesFile) Check() error {
	if p.h == nil {
		return nil
	}
	if p.next != p.mf.Size {
		if _, err := io.CopyBuffer(p.h, io.NewSectionReader(p.f, p.next, p.mf.Size-p.next), make([]byte, 1<<20)); err != nil {
			return fmt.Errorf("image: read %s: %w", p.mf.Name, err)
		}
		p.next = p.mf.Size
	}
	if sumString(p.h) != p.mf.CRC32C {
		return fileErr(p.mf.Name, ErrCorrupt, "checksum mismatch")
	}
	p.h = nil
	return nil
}

// Close closes the file.
func (p *PagesFile) Close() error { return p.f.Close() }
