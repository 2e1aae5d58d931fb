package image

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// CRIU image framing: an optional 4-byte "image class" magic (IMG_COMMON for
// every image but the inventory), the image's own 4-byte magic, then entries,
// each a little-endian uint32 length followed by that many bytes of protobuf.

// CRIU's magic numbers (criu/include/magic.h) of the images mmcr writes or
// reads. Others are only named in errors.
var magics = map[string]uint32{
	"IMG_COMMON":  0x54564319,
	"IMG_SERVICE": 0x55105940,
	"INVENTORY":   0x58313116,
	"PSTREE":      0x50273030,
	"CORE":        0x55053847,
	"IDS":         0x54432030,
	"MM":          0x57492820,
	"FS":          0x51403912,
	"FDINFO":      0x56213732,
	"FILES":       0x56303138,
	"MEMFD_INODE": 0x48453499,
	"REMAP_FPATH": 0x59133954,
	"PAGEMAP":     0x56084025,
	"GHOST_FILE":  0x52583605,
	"PIPES_DATA":  0x56453709,
	"SK_QUEUES":   0x56264026,
	"FIFO_DATA":   0x59333054,
	"SECCOMP":     0x64413049,
	"FILE_LOCKS":  0x54323616,
}

func magicOf(name string) uint32 {
	v, ok := magics[name]
	if !ok {
		panic("image: unknown CRIU magic " + name) // programming error: names are constants
	}
	return v
}

// magicNameOf names a magic number, if it is one mmcr knows.
func magicNameOf(v uint32) (string, bool) {
	for name, m := range magics {
		if m == v {
			return name, true
		}
	}
	return "", false
}

var (
	magicImgCommon  = magicOf("IMG_COMMON")
	magicImgService = magicOf("IMG_SERVICE")
)

// maxEntrySize bounds one protobuf entry; real entries are a few KiB.
const maxEntrySize = 64 << 20

// imgEncoder writes one CRIU image into w.
type imgEncoder struct {
	w   io.Writer
	err error
}

func newImgEncoder(w io.Writer, magicName string) *imgEncoder {
	e := &imgEncoder{w: w}
	var hdr []byte
	if magicName != "INVENTORY" {
		hdr = binary.LittleEndian.AppendUint32(hdr, magicImgCommon)
	}
	hdr = binary.LittleEndian.AppendUint32(hdr, magicOf(magicName))
	_, e.err = w.Write(hdr)
	return e
}

// put appends one size-prefixed entry, an encoded message.
func (e *imgEncoder) put(b []byte) error {
	if e.err != nil {
		return e.err
	}
	if len(b) > maxEntrySize {
		e.err = fmt.Errorf("entry of %d bytes is too large", len(b))
		return e.err
	}
	var sz [4]byte
	binary.LittleEndian.PutUint32(sz[:], uint32(len(b)))
	if _, err := e.w.Write(sz[:]); err != nil {
		e.err = err
		return err
	}
	_, e.err = e.w.Write(b)
	return e.err
}

// imgDecoder reads entries of one CRIU image held in memory.
type imgDecoder struct {
	name string // file name, for errors
	data []byte
	off  int
}

// newImgDecoder checks the magic pair of data against magicName.
func newImgDecoder(name string, data []byte, magicName string) (*imgDecoder, error) {
	d := &imgDecoder{name: name, data: data}
	want := magicOf(magicName)
	m, ok := d.u32()
	if !ok {
		return nil, fileErr(name, ErrBadMagic, "too short for a magic")
	}
	if m == magicImgCommon || m == magicImgService {
		if m, ok = d.u32(); !ok {
			return nil, fileErr(name, ErrBadMagic, "too short for a magic")
		}
	}
	if m != want {
		if got, known := magicNameOf(m); known {
			return nil, fileErr(name, ErrBadMagic, "holds a %s image, want %s", got, magicName)
		}
		return nil, fileErr(name, ErrBadMagic, "bad magic 0x%08x, want %s", m, magicName)
	}
	return d, nil
}

func (d *imgDecoder) u32() (uint32, bool) {
	if len(d.data)-d.off < 4 {
		return 0, false
	}
	v := binary.LittleEndian.Uint32(d.data[d.off:])
	d.off += 4
	return v, true
}

// raw returns the next n bytes, data that follows an entry unframed (a
// pipe's bytes after its pipe_data_entry).
func (d *imgDecoder) raw(n int) ([]byte, bool) {
	if n < 0 || n > len(d.data)-d.off {
		return nil, false
	}
	b := d.data[d.off : d.off+n : d.off+n]
	d.off += n
	return b, true
}

// next decodes the next entry with decode. It returns false at a clean
// end of data.
func (d *imgDecoder) next(decode func(b []byte) error) (bool, error) {
	if d.off == len(d.data) {
		return false, nil
	}
	sz, ok := d.u32()
	if !ok {
		return false, fileErr(d.name, ErrCorrupt, "truncated entry size at offset %d", d.off)
	}
	if sz > maxEntrySize || int(sz) > len(d.data)-d.off {
		return false, fileErr(d.name, ErrCorrupt, "entry of %d bytes at offset %d overruns the file", sz, d.off-4)
	}
	b := d.data[d.off : d.off+int(sz)]
	d.off += int(sz)
	if err := decode(b); err != nil {
		return false, fileErr(d.name, ErrCorrupt, "entry at offset %d: %v", d.off-int(sz)-4, err)
	}
	return true, nil
}

// one decodes exactly one entry with decode (trailing data is an error).
func (d *imgDecoder) one(decode func(b []byte) error) error {
	ok, err := d.next(decode)
	if err != nil {
		return err
	}
	if !ok {
		return fileErr(d.name, ErrCorrupt, "no entry")
	}
	if d.off != len(d.data) {
		return fileErr(d.name, ErrCorrupt, "%d trailing bytes", len(d.data)-d.off)
	}
	return nil
}

// maxMetaImage bounds the size of a metadata image read into memory.
const maxMetaImage = 1 << 30

// readSmall reads a whole metadata file.
func readSmall(path, name string) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxMetaImage {
		return nil, fileErr(name, ErrCorrupt, "%d bytes is too large for a metadata image", st.Size())
	}
	return io.ReadAll(bufio.NewReader(f))
}
