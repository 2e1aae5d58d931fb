package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/mmcr/mmcr/internal/rawio"
	"golang.org/x/sys/unix"
)

// File names (CRIU's where CRIU has the image).
const (
	ManifestName   = "manifest.json"
	ExtName        = "mmcr-ext.json"
	inventoryName  = "inventory.img"
	pstreeName     = "pstree.img"
	filesName      = "files.img"
	remapName      = "remap-fpath.img"
	memfdInodeName = "memfd-inode.img"
)

func coreName(tid int) string           { return fmt.Sprintf("core-%d.img", tid) }
func idsName(pid int) string            { return fmt.Sprintf("ids-%d.img", pid) }
func mmName(pid int) string             { return fmt.Sprintf("mm-%d.img", pid) }
func fsName(pid int) string             { return fmt.Sprintf("fs-%d.img", pid) }
func fdinfoName(pid int) string         { return fmt.Sprintf("fdinfo-%d.img", pid) }
func pagemapName(pid int) string        { return fmt.Sprintf("pagemap-%d.img", pid) }
func shmemPagemapName(id uint32) string { return fmt.Sprintf("pagemap-shmem-%d.img", id) }
func pagesName(id uint32) string        { return fmt.Sprintf("pages-%d.img", id) }
func ghostName(fileID uint32) string    { return fmt.Sprintf("ghost-file-%x.img", fileID) }

// PagemapEntry flags (CRIU's PE_*).
const (
	peParent  = 1 << 0
	peLazy    = 1 << 1
	pePresent = 1 << 2
)

const (
	pagesBufSize = 1 << 20
)

// hashFile writes a file of the image through a buffer, hashing and
// counting as it goes, so the manifest needs no second read.
type hashFile struct {
	name string
	f    *os.File
	bw   *bufio.Writer
	crc  uint32 // CRC-32C of the size bytes written or reserved so far
	size int64
}

// directWrite is the size from which a write skips the buffer: copying
// it there first would cost a memmove of every byte (bufio copies even a
// write of exactly its size).
const directWrite = 64 << 10

func (hf *hashFile) Write(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case hf.bw == nil:
		n, err = hf.f.Write(p)
	case len(p) >= directWrite:
		if err = hf.bw.Flush(); err == nil {
			n, err = hf.f.Write(p)
		}
	default:
		n, err = hf.bw.Write(p)
	}
	hf.crc = CRC32C(hf.crc, p[:n])
	hf.size += int64(n)
	return n, err
}

// reserve claims the next n bytes of an unbuffered file for a later
// pwrite, whose data has checksum sum, and returns their offset.
func (hf *hashFile) reserve(n int64, sum uint32) int64 {
	off := hf.size
	hf.crc = CRC32CCombine(hf.crc, sum, n)
	hf.size += n
	return off
}

// bufPool recycles the page writers' 1 MiB buffers: a tree of many small
// tasks would otherwise allocate (and clear) one per task.
var bufPool sync.Pool

func getBuffer(f *os.File, size int) *bufio.Writer {
	if bw, ok := bufPool.Get().(*bufio.Writer); ok && bw.Size() == size {
		bw.Reset(f)
		return bw
	}
	return bufio.NewWriterSize(f, size)
}

func putBuffer(bw *bufio.Writer) {
	bw.Reset(nil)
	bufPool.Put(bw)
}

// close flushes and closes the file and returns its manifest record.
func (hf *hashFile) close() (manifestFile, error) {
	var err error
	if hf.bw != nil {
		err = hf.bw.Flush()
		putBuffer(hf.bw)
		hf.bw = nil
	}
	if cerr := hf.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return manifestFile{}, fmt.Errorf("image: write %s: %w", hf.name, err)
	}
	return manifestFile{Name: hf.name, Size: hf.size, CRC32C: crcString(hf.crc)}, nil
}

// Writer creates an image directory. Pages are streamed while the tree is
// collected; the metadata images and the manifest are written by Commit,
// last, so a directory without a manifest is never taken for a finished image.
//
// Writer's methods may be called from several goroutines; each PageWriter
// belongs to one goroutine.
type Writer struct {
	dir     string
	madeDir bool

	mu          sync.Mutex // protects the fields below
	created     []string   // files this writer created, for Abort
	done        map[string]manifestFile
	open        map[*PageWriter]bool
	nextPagesID uint32
	pagemaps    map[string]bool // pagemap names handed to a PageWriter
	ghosts      map[uint32]bool
	finished    bool
	committed   bool // the manifest is written
	// unlock releases the directory's flock (LockDir), held from Create
	// until Commit or Abort.
	unlock func()
}

// Create starts an image in dir (created 0700 if missing; it must hold no
// finished image).
func Create(dir string) (*Writer, error) {
	w := &Writer{dir: dir, done: map[string]manifestFile{}, open: map[*PageWriter]bool{},
		ghosts: map[uint32]bool{}, pagemaps: map[string]bool{}, nextPagesID: 1}
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		w.madeDir = true
	case errors.Is(err, os.ErrExist):
		st, serr := os.Stat(dir)
		if serr != nil {
			return nil, fmt.Errorf("image: %w", serr)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("image: %s is not a directory", dir)
		}
	default:
		return nil, fmt.Errorf("image: %w", err)
	}
	unlock, err := LockDir(dir)
	if err != nil {
		if w.madeDir {
			os.Remove(dir)
		}
		return nil, err
	}
	w.unlock = unlock
	// Checked under the lock: a dump that just finished in the same dir
	// is seen here.
	if _, serr := os.Lstat(filepath.Join(dir, ManifestName)); serr == nil {
		w.unlock()
		return nil, fmt.Errorf("image: %s already holds an image (%s exists)", dir, ManifestName)
	}
	// The image holds a process's memory: the directory is the dumper's
	// alone, whatever its mode was (mkdir's 0700 is subject to nothing,
	// but an existing directory may be 0755).
	if !w.madeDir {
		if err := os.Chmod(dir, 0o700); err != nil {
			w.unlock()
			return nil, fmt.Errorf("image: make %s private: %w", dir, err)
		}
	}
	return w, nil
}

// create opens a new file of the image, buffered by bufSize bytes (0: not
// buffered); the caller holds no lock.
func (w *Writer) create(name string, bufSize int) (*hashFile, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return nil, fmt.Errorf("image: writer of %s already committed or aborted", w.dir)
	}
	if _, dup := w.done[name]; dup {
		return nil, fmt.Errorf("image: %s written twice", name)
	}
	for _, c := range w.created {
		if c == name {
			return nil, fmt.Errorf("image: %s written twice", name)
		}
	}
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	w.created = append(w.created, name)
	hf := &hashFile{name: name, f: f}
	if bufSize > 0 {
		hf.bw = getBuffer(f, bufSize)
	}
	return hf, nil
}

// finish closes hf and records it for the manifest.
func (w *Writer) finish(hf *hashFile) error {
	mf, err := hf.close()
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.done[mf.Name] = mf
	w.mu.Unlock()
	return nil
}

// writeImage writes one whole CRIU image of entries. Metadata images are
// small: each is encoded in memory and written with one write.
func (w *Writer) writeImage(name, magicName string, entries ...[]byte) error {
	var buf bytes.Buffer
	enc := newImgEncoder(&buf, magicName)
	for _, m := range entries {
		if err := enc.put(m); err != nil {
			return fmt.Errorf("image: encode %s: %w", name, err)
		}
	}
	return w.writeWhole(name, buf.Bytes())
}

// writeWhole writes a file of the image in one go.
func (w *Writer) writeWhole(name string, data []byte) error {
	hf, err := w.create(name, 0)
	if err != nil {
		return err
	}
	if _, err := hf.Write(data); err != nil {
		hf.close()
		return fmt.Errorf("image: write %s: %w", name, err)
	}
	return w.finish(hf)
}

// Pages returns the writer of task pid's private pages (pagemap-PID + pages).
// There is one per task; a task that gets none has an empty pagemap.
func (w *Writer) Pages(pid int) (*PageWriter, error) {
	return w.pageWriter(pagemapName(pid))
}

// ShmemPages returns the writer of a shared object's pages; addresses given
// to Add are byte offsets into the object.
func (w *Writer) ShmemPages(shmID uint32) (*PageWriter, error) {
	return w.pageWriter(shmemPagemapName(shmID))
}

func (w *Writer) pageWriter(pmName string) (*PageWriter, error) {
	w.mu.Lock()
	if w.pagemaps[pmName] {
		w.mu.Unlock()
		return nil, fmt.Errorf("image: %s: a page writer was already created", pmName)
	}
	w.pagemaps[pmName] = true
	id := w.nextPagesID
	w.nextPagesID++
	w.mu.Unlock()
	pw := &PageWriter{w: w, pagemap: pmName, pagesID: id}
	var err error
	if pw.out, err = w.create(pagesName(id), 0); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.open[pw] = true
	w.mu.Unlock()
	return pw, nil
}

// Commit writes every metadata image for tree and then the manifest. Page
// writers not yet closed are an error: their pages would be lost. So is a
// tree the reader would refuse (IDs not dense, a dangling file or object
// reference, VMAs unaligned or out of order): such a dump fails now rather
// than at restore.
func (w *Writer) Commit(tree *Tree) error {
	w.mu.Lock()
	nopen := len(w.open)
	w.mu.Unlock()
	if nopen > 0 {
		return fmt.Errorf("image: commit with %d page writers still open", nopen)
	}
	if err := checkTree(tree); err != nil {
		return err
	}
	// Every task (but a zombie) and shared object gets a pagemap, even an
	// empty one, as CRIU expects.
	for _, t := range tree.Tasks {
		if t.Zombie {
			continue
		}
		if err := w.ensurePagemap(pagemapName(t.PID)); err != nil {
			return err
		}
	}
	for _, so := range tree.SharedObjects {
		if err := w.ensurePagemap(shmemPagemapName(so.ID)); err != nil {
			return err
		}
	}
	if err := w.writeTree(tree); err != nil {
		return err
	}
	return w.writeManifest()
}

func (w *Writer) ensurePagemap(name string) error {
	w.mu.Lock()
	ok := w.pagemaps[name]
	w.mu.Unlock()
	if ok {
		return nil
	}
	pw, err := w.pageWriter(name)
	if err != nil {
		return err
	}
	return pw.Close()
}

// Abort removes everything this writer created (and the directory, if
// Create made it and it is now empty).
func (w *Writer) Abort() error {
	w.mu.Lock()
	w.finished = true
	names := append([]string(nil), w.created...)
	if w.committed {
		// The manifest goes first, so that a half-removed image is never
		// taken for a finished one.
		names = append([]string{ManifestName}, names...)
	}
	for pw := range w.open {
		pw.out.f.Close()
		pw.err = errors.New("image: writer aborted")
	}
	w.open = map[*PageWriter]bool{}
	w.mu.Unlock()
	var first error
	for _, n := range append(names, ManifestName+".tmp") {
		if err := os.Remove(filepath.Join(w.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("image: abort: %w", err)
		}
	}
	if w.madeDir {
		if err := os.Remove(w.dir); err != nil && first == nil {
			first = fmt.Errorf("image: abort: %w", err)
		}
	}
	w.release()
	return first
}

// release drops the directory lock once.
func (w *Writer) release() {
	w.mu.Lock()
	unlock := w.unlock
	w.unlock = nil
	w.mu.Unlock()
	if unlock != nil {
		unlock()
	}
}

// PageWriter appends page runs of one task or shared object. The pagemap
// (one entry per run of contiguous addresses) is written by Close.
//
// Pages reach the pages file in two steps, so that several goroutines can
// store chunks at once while the file stays in address order: Reserve, in
// address order and one call at a time, records a chunk's runs and claims
// its place in the file; WriteAt, from any goroutine, then fills it. Add
// does both for one run.
type PageWriter struct {
	w       *Writer
	pagemap string
	pagesID uint32
	out     *hashFile // unbuffered: written by pwritev at reserved offsets
	runs    []PageRun
	next    uint64 // lowest address the next Reserve may use
	closed  bool
	mu      sync.Mutex // guards err: WriteAt may fail on any goroutine
	err     error      // sticky
}

func (pw *PageWriter) failed() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.err
}

func (pw *PageWriter) fail(err error) error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err == nil {
		pw.err = err
	}
	return pw.err
}

// Add stores len(data)/PageSize pages whose first page is at addr. addr and
// len(data) are page-aligned; calls come in increasing addr order.
func (pw *PageWriter) Add(addr uint64, data []byte) error {
	if len(data) == 0 {
		return pw.failed()
	}
	off, err := pw.Reserve([]Range{{addr, addr + uint64(len(data))}}, CRC32C(0, data))
	if err != nil {
		return err
	}
	return pw.WriteAt([][]byte{data}, off)
}

// Reserve records runs (page-aligned, increasing, above every address
// reserved before) as the next pages of the file and returns the file
// offset their data goes to; sum is the CRC-32C of that data, all runs in
// order. The data must then be written with WriteAt before Close.
func (pw *PageWriter) Reserve(runs []Range, sum uint32) (int64, error) {
	if err := pw.failed(); err != nil {
		return 0, err
	}
	if pw.closed {
		return 0, fmt.Errorf("image: %s: add after close", pw.pagemap)
	}
	// Check every run before recording any: a refused call changes nothing.
	next := pw.next
	for _, r := range runs {
		if r.Start%PageSize != 0 || r.End%PageSize != 0 || r.End < r.Start {
			return 0, fmt.Errorf("image: %s: unaligned pages %#x-%#x", pw.pagemap, r.Start, r.End)
		}
		if r.Start < next {
			return 0, fmt.Errorf("image: %s: pages at %#x out of order (next free %#x)", pw.pagemap, r.Start, next)
		}
		next = max(next, r.End)
	}
	var size int64
	for _, r := range runs {
		if r.End == r.Start {
			continue
		}
		off := pw.out.size + size
		if n := len(pw.runs); n > 0 && pw.runs[n-1].Addr+pw.runs[n-1].Len == r.Start {
			pw.runs[n-1].Len += r.End - r.Start
		} else {
			pw.runs = append(pw.runs, PageRun{Addr: r.Start, Len: r.End - r.Start, Offset: off})
		}
		pw.next = r.End
		size += int64(r.End - r.Start)
	}
	return pw.out.reserve(size, sum), nil
}

// WriteAt writes bufs, one after the other, at off: the place Reserve gave
// them. It may run on any goroutine, alongside other WriteAt calls.
func (pw *PageWriter) WriteAt(bufs [][]byte, off int64) error {
	if err := pw.failed(); err != nil {
		return err
	}
	if err := pwritevAll(pw.out.f, bufs, off); err != nil {
		return pw.fail(fmt.Errorf("image: write %s: %w", pw.out.name, err))
	}
	return nil
}

// maxRunPages is the most pages one PagemapEntry holds (nr_pages is uint32).
const maxRunPages = 1<<32 - 1

// Close flushes the pages and writes the pagemap.
func (pw *PageWriter) Close() error {
	if pw.closed {
		return pw.failed()
	}
	pw.closed = true
	w := pw.w
	w.mu.Lock()
	delete(w.open, pw)
	w.mu.Unlock()
	if err := pw.failed(); err != nil {
		pw.out.f.Close()
		return err
	}
	if err := w.finish(pw.out); err != nil {
		return pw.fail(err)
	}
	var head protoEnc
	head.uint32(1, pw.pagesID) // pagemap_head.pages_id
	entries := [][]byte{head.b}
	for _, r := range pw.runs {
		for a, left := r.Addr, r.Len/PageSize; left > 0; {
			n := min(left, maxRunPages)
			var e protoEnc         // pagemap_entry
			e.uint64(1, a)         // vaddr
			e.uint32(2, uint32(n)) // nr_pages
			e.uint32(4, pePresent) // flags
			entries = append(entries, e.b)
			a += n * PageSize
			left -= n
		}
	}
	if err := w.writeImage(pw.pagemap, "PAGEMAP", entries...); err != nil {
		return pw.fail(err)
	}
	return nil
}

// PageRun is a run of dumped pages: Len bytes for addresses [Addr, Addr+Len)
// stored at Offset in the pages file.
type PageRun struct {
	Addr   uint64
	Len    uint64
	Offset int64
}

// manifest is manifest.json: the list of every file of a finished image.
type manifest struct {
	Format  string         `json:"format"`  // manifestFormat
	Version int            `json:"version"` // manifestVersion
	Files   []manifestFile `json:"files"`
}

type manifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C string `json:"crc32c"` // 8 hex digits
}

// The checksum is CRC-32C (Castagnoli): it catches truncation and bit rot,
// which is what the manifest is for, at ~20 GB/s with SSE4.2, where sha256
// ran at ~1 GB/s and halved the page writer's throughput (measured in
// TestPagesThroughput).
var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

func newChecksum() hash.Hash32 { return crc32.New(crc32cTable) }

func sumString(h hash.Hash32) string { return crcString(h.Sum32()) }

func crcString(sum uint32) string { return fmt.Sprintf("%08x", sum) }

const (
	manifestFormat  = "mmcr-image"
	manifestVersion = 1
)

func (w *Writer) writeManifest() error {
	w.mu.Lock()
	m := manifest{Format: manifestFormat, Version: manifestVersion}
	for _, mf := range w.done {
		m.Files = append(m.Files, mf)
	}
	w.mu.Unlock()
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return fmt.Errorf("image: manifest: %w", err)
	}
	tmp := filepath.Join(w.dir, ManifestName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("image: manifest: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.dir, ManifestName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("image: manifest: %w", err)
	}
	if d, err := os.Open(w.dir); err == nil {
		d.Sync()
		d.Close()
	}
	w.mu.Lock()
	w.finished, w.committed = true, true
	w.mu.Unlock()
	w.release()
	return nil
}

// Reader reads a finished image directory.
type Reader struct {
	dir   string
	files map[string]manifestFile
	// mem, when set, holds the metadata files in memory (fuzz tests).
	mem map[string][]byte
	// deferred: the pages files' checksums were not checked by Open
	// (OpenDeferred); PagesFile checks them.
	deferred bool
}

// Open opens dir, checks the manifest (every file present, sizes and
// checksums right) and decodes nothing else yet.
func Open(dir string) (*Reader, error) { return open(dir, false) }

// OpenDeferred is Open for a caller that reads every pages file once
// anyway (restore): the pages files' checksums are not checked now, only
// their presence and sizes; OpenPages and OpenShmemPages hand them out as
// PagesFiles that check the checksum as they are read, so their bytes are
// read once instead of twice. The caller must call PagesFile.Check before
// it trusts what it read.
func OpenDeferred(dir string) (*Reader, error) { return open(dir, true) }

func open(dir string, deferPages bool) (*Reader, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("image: %w", serr)
		}
		if _, serr := os.Stat(filepath.Join(dir, inventoryName)); serr == nil {
			if _, serr := os.Stat(filepath.Join(dir, ExtName)); errors.Is(serr, os.ErrNotExist) {
				return nil, &dirError{fmt.Sprintf("image dir %s holds a CRIU image not written by mmcr "+
					"(no %s, no %s): mmcr restores only its own images", dir, ManifestName, ExtName), ErrUnsupported}
			}
		}
		return nil, &dirError{fmt.Sprintf("image dir %s is incomplete: no manifest (dump did not finish?)", dir), ErrIncomplete}
	}
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fileErr(ManifestName, ErrCorrupt, "%v", err)
	}
	if m.Format != manifestFormat {
		return nil, fileErr(ManifestName, ErrBadMagic, "format %q, want %q", m.Format, manifestFormat)
	}
	if m.Version != manifestVersion {
		return nil, fileErr(ManifestName, ErrUnsupported, "format version %d (this mmcr reads %d)", m.Version, manifestVersion)
	}
	r := &Reader{dir: dir, files: map[string]manifestFile{}, deferred: deferPages}
	for _, mf := range m.Files {
		if mf.Name == "" || filepath.Base(mf.Name) != mf.Name || mf.Name == "." || mf.Name == ".." || mf.Size < 0 {
			return nil, fileErr(ManifestName, ErrCorrupt, "bad file entry %q", mf.Name)
		}
		if _, dup := r.files[mf.Name]; dup {
			return nil, fileErr(ManifestName, ErrCorrupt, "%s listed twice", mf.Name)
		}
		r.files[mf.Name] = mf
	}
	buf := make([]byte, pagesBufSize)
	for _, mf := range m.Files {
		var err error
		if deferPages && isPagesName(mf.Name) {
			err = checkSize(filepath.Join(dir, mf.Name), mf)
		} else {
			err = verifyFile(filepath.Join(dir, mf.Name), mf, buf)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, need := range []string{inventoryName, pstreeName, filesName, ExtName} {
		if _, ok := r.files[need]; !ok {
			return nil, fileErr(need, ErrIncomplete, "not in the manifest")
		}
	}
	return r, nil
}

// verifyFile checks one file's size and checksum against the manifest.
func verifyFile(path string, mf manifestFile, buf []byte) error {
	f, err := openListed(path, mf)
	if err != nil {
		return err
	}
	defer f.Close()
	h := newChecksum()
	if _, err := io.CopyBuffer(h, io.LimitReader(f, mf.Size), buf); err != nil {
		return fmt.Errorf("image: read %s: %w", mf.Name, err)
	}
	if sumString(h) != mf.CRC32C {
		return fileErr(mf.Name, ErrCorrupt, "checksum mismatch")
	}
	return nil
}

// Files lists the manifest's file names, sorted.
func (r *Reader) Files() []string {
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Dir is the image directory.
func (r *Reader) Dir() string { return r.dir }

func (r *Reader) has(name string) bool { _, ok := r.files[name]; return ok }

// readMeta reads a metadata file listed in the manifest.
func (r *Reader) readMeta(name string) ([]byte, error) {
	if !r.has(name) {
		return nil, fileErr(name, ErrIncomplete, "not in the image")
	}
	if r.mem != nil {
		return r.mem[name], nil
	}
	data, err := readSmall(filepath.Join(r.dir, name), name)
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fmt.Errorf("image: %w", err)
	}
	return data, nil
}

// Tree decodes the process tree description.
func (r *Reader) Tree() (*Tree, error) { return r.readTree() }

// Pages returns task pid's page runs, sorted by Addr, and the open pages file
// they point into. The caller closes the file.
func (r *Reader) Pages(pid int) ([]PageRun, *os.File, error) {
	return r.pages(pagemapName(pid))
}

// ShmemPages is Pages for a shared object; Addr is an offset into it.
func (r *Reader) ShmemPages(shmID uint32) ([]PageRun, *os.File, error) {
	return r.pages(shmemPagemapName(shmID))
}

func (r *Reader) pages(name string) ([]PageRun, *os.File, error) {
	runs, pn, err := r.pageRuns(name)
	if err != nil {
		return nil, nil, err
	}
	f, err := openNoFollow(filepath.Join(r.dir, pn))
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	return runs, f, nil
}

// pageRuns decodes pagemap name and checks it against its pages file's size.
func (r *Reader) pageRuns(name string) ([]PageRun, string, error) {
	data, err := r.readMeta(name)
	if err != nil {
		return nil, "", err
	}
	runs, pagesID, err := decodePagemap(name, data)
	if err != nil {
		return nil, "", err
	}
	pn := pagesName(pagesID)
	mf, ok := r.files[pn]
	if !ok {
		return nil, "", fileErr(name, ErrIncomplete, "its pages file %s is not in the image", pn)
	}
	var total int64
	if n := len(runs); n > 0 {
		total = runs[n-1].Offset + int64(runs[n-1].Len)
	}
	if total != mf.Size {
		return nil, "", fileErr(name, ErrCorrupt, "maps %d bytes of pages but %s holds %d", total, pn, mf.Size)
	}
	return runs, pn, nil
}

// decodePagemap decodes a pagemap image into runs with offsets into its
// pages file; runs are checked sorted and not overlapping.
func decodePagemap(name string, data []byte) ([]PageRun, uint32, error) {
	d, err := newImgDecoder(name, data, "PAGEMAP")
	if err != nil {
		return nil, 0, err
	}
	var pagesID uint32
	ok, err := d.next(func(b []byte) error { return decodePagemapHead(b, &pagesID) })
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fileErr(name, ErrCorrupt, "no pagemap head")
	}
	var runs []PageRun
	var off int64
	var next uint64
	for {
		var e pagemapEntry
		ok, err := d.next(e.decode)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		if e.inParent || e.flags&peParent != 0 {
			return nil, 0, fileErr(name, ErrUnsupported, "pages in a parent image (incremental dump) are not supported")
		}
		if e.flags&peLazy != 0 {
			return nil, 0, fileErr(name, ErrUnsupported, "lazy pages are not supported")
		}
		addr, n := e.vaddr, uint64(e.nrPages)
		end := addr + n*PageSize
		if addr%PageSize != 0 || n == 0 || end < addr || addr < next {
			return nil, 0, fileErr(name, ErrCorrupt, "bad pagemap entry %#x+%d pages", addr, n)
		}
		if k := len(runs); k > 0 && runs[k-1].Addr+runs[k-1].Len == addr {
			runs[k-1].Len += n * PageSize
		} else {
			runs = append(runs, PageRun{Addr: addr, Len: n * PageSize, Offset: off})
		}
		off += int64(n * PageSize)
		next = end
	}
	return runs, pagesID, nil
}

// Close releases the reader. It holds no open files; pages files handed out
// by Pages are the caller's to close.
func (r *Reader) Close() error { return nil }

// pwritevAll writes bufs at off with pwritev, as many calls as short
// writes need (IOV_MAX buffers at most per call). The calls are raw
// (internal/rawio): WriteAt's caller is the dump's page writer, a
// goroutine with a P of its own that would otherwise lose it to sysmon at
// every 512 KiB write.
func pwritevAll(f *os.File, bufs [][]byte, off int64) error {
	const iovMax = 1024
	fd := int(f.Fd())
	iov := make([]unix.Iovec, 0, min(len(bufs), iovMax))
	for len(bufs) > 0 {
		iov = iov[:0]
		for _, b := range bufs[:min(len(bufs), iovMax)] {
			if len(b) > 0 {
				v := unix.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
		}
		if len(iov) == 0 {
			bufs = bufs[min(len(bufs), iovMax):]
			continue
		}
		n, err := rawio.Pwritev(fd, iov, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("pwritev", err)
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			// A short write: the rest of the first buffer goes next. bufs
			// is the caller's slice: trim a copy of it.
			bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
		}
	}
	runtime.KeepAlive(f) // the raw fd must outlive the calls
	return nil
}
