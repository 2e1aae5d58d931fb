package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A ghost-file image holds a deleted file's content, CRIU's way: the
// GhostFileEntry, then either the whole content (chunks = false) or, for a
// file with holes, per data segment a size-prefixed GhostChunkEntry {len,
// off} followed by len bytes (chunks = true). Holes read back as zeros.

// segment is a data range [off, off+len) of a file.
type segment struct{ off, len int64 }

// dataSegments lists f's data ranges in [0, size) with SEEK_DATA/SEEK_HOLE;
// a file system without them yields one segment for the whole file.
func dataSegments(f *os.File, size int64) ([]segment, error) {
	whole := []segment{{0, size}}
	if size == 0 {
		return nil, nil
	}
	fd := int(f.Fd())
	var segs []segment
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole after off
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return whole, nil
		}
		if err != nil {
			return nil, os.NewSyscallError("lseek(SEEK_DATA)", err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, os.NewSyscallError("lseek(SEEK_HOLE)", err)
		}
		hole = min(hole, size)
		segs = append(segs, segment{data, hole - data})
		off = hole
	}
	return segs, nil
}

// Ghost stores the content of a deleted file, read from f (size bytes).
// Holes in f are kept as holes (a chunked ghost image).
func (w *Writer) Ghost(fileID uint32, f *os.File, size int64) error {
	if size < 0 {
		return fmt.Errorf("image: ghost of file %d: negative size %d", fileID, size)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image: ghost of file %d: %w", fileID, err)
	}
	segs, err := dataSegments(f, size)
	if err != nil {
		return fmt.Errorf("image: ghost of file %d: %w", fileID, err)
	}
	chunked := !(len(segs) == 1 && segs[0] == segment{0, size})
	name := ghostName(fileID)
	hf, err := w.create(name, pagesBufSize)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		hf.close()
		return fmt.Errorf("image: ghost of file %d: %w", fileID, err)
	}
	enc := newImgEncoder(hf, "GHOST_FILE")
	if err := enc.put(ghostEntry(st, size, chunked)); err != nil {
		return fail(err)
	}
	if !chunked {
		segs = []segment{{0, size}}
	}
	for _, s := range segs {
		if chunked {
			if err := enc.put(ghostChunkEntry(s)); err != nil {
				return fail(err)
			}
		}
		n, err := io.Copy(hf, io.NewSectionReader(f, s.off, s.len))
		if err == nil && n != s.len {
			err = fmt.Errorf("file ends at %d, want %d bytes", s.off+n, size)
		}
		if err != nil {
			return fail(err)
		}
	}
	if err := w.finish(hf); err != nil {
		return err
	}
	w.mu.Lock()
	w.ghosts[fileID] = true
	w.mu.Unlock()
	return nil
}

// ghostChunk is a stored data segment: file bytes [off, off+len) are at
// pos in the image file.
type ghostChunk struct{ off, len, pos int64 }

// Ghost opens the stored content of a deleted file; it reads exactly size
// bytes (holes of a chunked ghost read as zeros).
func (r *Reader) Ghost(fileID uint32) (rc io.ReadCloser, size int64, err error) {
	name := ghostName(fileID)
	mf, ok := r.files[name]
	if !ok {
		return nil, 0, fileErr(name, ErrIncomplete, "no ghost content for file %d in the image", fileID)
	}
	f, err := openNoFollow(filepath.Join(r.dir, name))
	if err != nil {
		return nil, 0, fmt.Errorf("image: %w", err)
	}
	chunks, size, err := readGhostLayout(name, f, mf.Size)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &ghostReader{ra: f, closer: f, chunks: chunks, size: size}, size, nil
}

// readGhostLayout decodes a ghost image's header and chunk list from ra
// (fileSize bytes long) without reading the content.
func readGhostLayout(name string, ra io.ReaderAt, fileSize int64) ([]ghostChunk, int64, error) {
	// The header is small: the magic pair and one entry.
	hdr := make([]byte, min(fileSize, 4096))
	if _, err := ra.ReadAt(hdr, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("image: read %s: %w", name, err)
	}
	ge, hlen, err := decodeGhostHeader(name, hdr)
	if err != nil {
		return nil, 0, err
	}
	size := int64(ge.size)
	if size < 0 {
		return nil, 0, fileErr(name, ErrCorrupt, "ghost size %d", ge.size)
	}
	if !ge.chunks {
		if int64(hlen)+size != fileSize {
			return nil, 0, fileErr(name, ErrCorrupt, "ghost content of %d bytes does not fill the file", size)
		}
		if size == 0 {
			return nil, 0, nil
		}
		return []ghostChunk{{0, size, int64(hlen)}}, size, nil
	}
	var chunks []ghostChunk
	var next int64
	for pos := int64(hlen); pos < fileSize; {
		var szb [4]byte
		if _, err := ra.ReadAt(szb[:], pos); err != nil {
			return nil, 0, fileErr(name, ErrCorrupt, "truncated chunk at %d", pos)
		}
		sz := int64(binary.LittleEndian.Uint32(szb[:]))
		if sz > 1024 || pos+4+sz > fileSize {
			return nil, 0, fileErr(name, ErrCorrupt, "bad chunk entry at %d", pos)
		}
		eb := make([]byte, sz)
		if _, err := ra.ReadAt(eb, pos+4); err != nil {
			return nil, 0, fileErr(name, ErrCorrupt, "truncated chunk at %d", pos)
		}
		var ce ghostChunk
		if err := decodeGhostChunk(eb, &ce); err != nil {
			return nil, 0, fileErr(name, ErrCorrupt, "chunk at %d: %v", pos, err)
		}
		off, n := ce.off, ce.len
		pos += 4 + sz
		if off < next || n <= 0 || off+n > size || off+n < off || n > fileSize-pos {
			return nil, 0, fileErr(name, ErrCorrupt, "chunk %d+%d out of place", uint64(ce.off), uint64(ce.len))
		}
		chunks = append(chunks, ghostChunk{off, n, pos})
		pos += n
		next = off + n
	}
	return chunks, size, nil
}

// ghostReader reads a ghost file's content, zeros in the holes.
type ghostReader struct {
	ra     io.ReaderAt
	closer io.Closer
	chunks []ghostChunk // sorted by off
	size   int64
	pos    int64
}

func (g *ghostReader) Read(p []byte) (int, error) {
	if g.pos >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.pos)]
	for len(g.chunks) > 0 && g.chunks[0].off+g.chunks[0].len <= g.pos {
		g.chunks = g.chunks[1:]
	}
	if len(g.chunks) == 0 || g.pos < g.chunks[0].off {
		// A hole up to the next chunk (or the end).
		end := g.size
		if len(g.chunks) > 0 {
			end = g.chunks[0].off
		}
		n := min(int64(len(p)), end-g.pos)
		clear(p[:n])
		g.pos += n
		return int(n), nil
	}
	c := g.chunks[0]
	n := min(int64(len(p)), c.off+c.len-g.pos)
	m, err := g.ra.ReadAt(p[:n], c.pos+g.pos-c.off)
	g.pos += int64(m)
	if err == io.EOF && int64(m) == n {
		err = nil
	}
	return m, err
}

func (g *ghostReader) Close() error { return g.closer.Close() }

// decodeGhostHeader decodes the magic and ghost_file_entry at the start of
// a ghost-file image and returns the entry and the header length.
func decodeGhostHeader(name string, hdr []byte) (*ghostMsg, int, error) {
	d, err := newImgDecoder(name, hdr, "GHOST_FILE")
	if err != nil {
		return nil, 0, err
	}
	sz, ok := d.u32()
	if !ok || int(sz) > len(d.data)-d.off {
		return nil, 0, fileErr(name, ErrCorrupt, "truncated ghost header")
	}
	var ge ghostMsg
	if err := ge.decode(d.data[d.off : d.off+int(sz)]); err != nil {
		return nil, 0, fileErr(name, ErrCorrupt, "ghost header: %v", err)
	}
	return &ge, d.off + int(sz), nil
}
