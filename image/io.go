package image

import (
	"errors"
	"io"
	"os"
)

// API contract of the image package (implemented by the image owner).
// Functions below are the signatures dump/ and restore/ build on.

var errTODO = errors.New("image: not implemented yet")

// Writer creates an image directory. Pages are streamed while the tree is
// collected; the metadata images and the manifest are written by Commit,
// last, so a directory without a manifest is never taken for a finished image.
type Writer struct{}

// Create starts an image in dir (created 0700 if missing; it must hold no
// finished image).
func Create(dir string) (*Writer, error) { return nil, errTODO }

// Pages returns the writer of task pid's private pages (pagemap-PID + pages).
func (w *Writer) Pages(pid int) (*PageWriter, error) { return nil, errTODO }

// ShmemPages returns the writer of a shared object's pages; addresses given
// to Add are byte offsets into the object.
func (w *Writer) ShmemPages(shmID uint32) (*PageWriter, error) { return nil, errTODO }

// Ghost stores the content of a deleted file, read from f (size bytes).
func (w *Writer) Ghost(fileID uint32, f *os.File, size int64) error { return errTODO }

// Commit writes every metadata image for tree and then the manifest.
func (w *Writer) Commit(tree *Tree) error { return errTODO }

// Abort removes everything this writer created.
func (w *Writer) Abort() error { return errTODO }

// PageWriter appends page runs of one task or shared object.
type PageWriter struct{}

// Add appends len(data)/PageSize pages whose first page is at addr. addr and
// len(data) are page-aligned; calls come in increasing addr order.
func (pw *PageWriter) Add(addr uint64, data []byte) error { return errTODO }

// Close flushes the page writer.
func (pw *PageWriter) Close() error { return errTODO }

// PageRun is a run of dumped pages: Len bytes for addresses [Addr, Addr+Len)
// stored at Offset in the pages file.
type PageRun struct {
	Addr   uint64
	Len    uint64
	Offset int64
}

// Reader reads a finished image directory.
type Reader struct{}

// Open opens dir, checks the manifest (every file present, sizes and
// checksums right) and decodes nothing else yet.
func Open(dir string) (*Reader, error) { return nil, errTODO }

// Tree decodes the process tree description.
func (r *Reader) Tree() (*Tree, error) { return nil, errTODO }

// Pages returns task pid's page runs, sorted by Addr, and the open pages file
// they point into. The caller closes the file.
func (r *Reader) Pages(pid int) ([]PageRun, *os.File, error) { return nil, nil, errTODO }

// ShmemPages is Pages for a shared object; Addr is an offset into it.
func (r *Reader) ShmemPages(shmID uint32) ([]PageRun, *os.File, error) {
	return nil, nil, errTODO
}

// Ghost opens the stored content of a deleted file; it reads exactly size bytes.
func (r *Reader) Ghost(fileID uint32) (rc io.ReadCloser, size int64, err error) {
	return nil, 0, errTODO
}

// Close releases the reader.
func (r *Reader) Close() error { return errTODO }
