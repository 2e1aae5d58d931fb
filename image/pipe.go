package image

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// Pipes are written as CRIU writes them: a file_entry of type PIPE per open
// file description in files.img (pipe_id is the pipe's inode number), the
// fdinfo entries of the fds sharing a description naming the same entry,
// and a pipe_data_entry per pipe in pipes-data.img, each followed by the
// pipe's unread bytes.

const (
	pipesDataName = "pipes-data.img"
	fifoDataName  = "fifo-data.img" // a FIFO's, as pipes-data.img
	fdTypePipe    = 2               // fd_types PIPE
	fdTypeFifo    = 3               // fd_types FIFO
	// maxPipeSize bounds a pipe's capacity in an image: the kernel's
	// own bound (pipe-max-size cannot be set higher) is 2 GiB.
	maxPipeSize = 1 << 31
)

// checkPipes checks the tree's pipes and its fds on them: dense ids,
// distinct inodes, data within capacity, every pipe held by some fd, each
// pipe fd on a known pipe with an open file description, and one end.
func checkPipes(t *Tree) error {
	inos := map[uint32]bool{}
	for i, p := range t.Pipes {
		if p == nil || p.ID != uint32(i+1) {
			return fmt.Errorf("pipe %d: missing or misnumbered", i+1)
		}
		if inos[p.Ino] {
			return fmt.Errorf("pipe %d: inode %d twice", p.ID, p.Ino)
		}
		inos[p.Ino] = true
		if p.Size == 0 || p.Size%4096 != 0 || p.Size > maxPipeSize || len(p.Data) > int(p.Size) {
			return fmt.Errorf("pipe %d: %d bytes in a capacity of %d", p.ID, len(p.Data), p.Size)
		}
		if p.FileID != 0 && t.FileByID(p.FileID) == nil {
			return fmt.Errorf("pipe %d: a FIFO of unknown file %d", p.ID, p.FileID)
		}
	}
	held := make([]bool, len(t.Pipes))
	used := uint32(0) // pipes met so far: they are numbered in order of first use
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDPipe {
				if fd.PipeID != 0 {
					return fmt.Errorf("task %d: fd %d: pipe %d on a %s fd", task.PID, fd.Num, fd.PipeID, fd.Kind)
				}
				continue
			}
			if t.PipeByID(fd.PipeID) == nil || fd.FileID != 0 || fd.OpenID == 0 || fd.PipeID > used+1 {
				return fmt.Errorf("task %d: fd %d refers to unknown or unnumbered pipe %d (open file %d)", task.PID, fd.Num, fd.PipeID, fd.OpenID)
			}
			used = max(used, fd.PipeID)
			if acc := fd.Flags & unix.O_ACCMODE; acc != unix.O_RDONLY && acc != unix.O_WRONLY && acc != unix.O_RDWR {
				return fmt.Errorf("task %d: fd %d: pipe end open with flags %#o", task.PID, fd.Num, fd.Flags)
			}
			held[fd.PipeID-1] = true
		}
	}
	for i, h := range held {
		if !h {
			return fmt.Errorf("pipe %d is held by no fd", i+1)
		}
	}
	return nil
}

// pipeFileEntry: file_entry {type PIPE, pipe_entry}.
func pipeFileEntry(id, flags, ino uint32, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypePipe)
	e.uint32(2, id)
	e.message(18, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, ino)
		e.uint32(3, flags)
		e.message(4, fownOf(own))
	})
	return e.b
}

// fifoFileEntry: file_entry {type FIFO, fifo_entry} naming the FIFO's
// file entry (regf_id: its Tree.Files ID).
func fifoFileEntry(id, ino, fileID uint32) []byte {
	var e protoEnc
	e.int32(1, fdTypeFifo)
	e.uint32(2, id)
	e.message(17, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, ino)
		e.uint32(3, fileID)
	})
	return e.b
}

// writePipesData writes pipes-data.img, and fifo-data.img for FIFOs: each
// pipe's pipe_data_entry and then its bytes.
func (w *Writer) writePipesData(pipes []*Pipe) error {
	for _, f := range []struct {
		name, magic string
		fifo        bool
	}{{pipesDataName, "PIPES_DATA", false}, {fifoDataName, "FIFO_DATA", true}} {
		var buf bytes.Buffer
		enc := newImgEncoder(&buf, f.magic)
		n := 0
		for _, p := range pipes {
			if (p.FileID != 0) != f.fifo {
				continue
			}
			var e protoEnc
			e.uint32(1, p.Ino)
			e.uint32(2, uint32(len(p.Data)))
			e.uint32(3, p.Size)
			if err := enc.put(e.b); err != nil {
				return fmt.Errorf("image: encode %s: %w", f.name, err)
			}
			buf.Write(p.Data)
			n++
		}
		if n == 0 {
			continue
		}
		if err := w.writeWhole(f.name, buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// pipeMsg: pipe_entry.
type pipeMsg struct{ pipeID, flags uint32 }

func (m *pipeMsg) decode(b []byte) error {
	d := protoDec{msg: "pipe_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 2:
			d.uint32(&m.pipeID)
		case 3:
			d.uint32(&m.flags)
		case 4:
			d.note(protowire.BytesType) // fown: required, not read
		}
	}
	return d.end("id pipe_id flags fown")
}

// pipeDataMsg: pipe_data_entry.
type pipeDataMsg struct{ pipeID, bytes, size uint32 }

func (m *pipeDataMsg) decode(b []byte) error {
	d := protoDec{msg: "pipe_data_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.pipeID)
		case 2:
			d.uint32(&m.bytes)
		case 3:
			d.uint32(&m.size)
		}
	}
	return d.end("pipe_id bytes")
}

// readPipes reads pipes-data.img and fifo-data.img into t.Pipes, in their
// order (resolveOpens numbers them as they are used).
func (r *Reader) readPipes(t *Tree) error {
	for _, f := range []struct{ name, magic string }{{pipesDataName, "PIPES_DATA"}, {fifoDataName, "FIFO_DATA"}} {
		if !r.has(f.name) {
			continue
		}
		if err := r.readPipesData(t, f.name, f.magic); err != nil {
			return err
		}
	}
	return nil
}

// readPipesData reads one file of pipe_data_entries and bytes.
func (r *Reader) readPipesData(t *Tree, name, magic string) error {
	data, err := r.readMeta(name)
	if err != nil {
		return err
	}
	d, err := newImgDecoder(name, data, magic)
	if err != nil {
		return err
	}
	for {
		var m pipeDataMsg
		ok, err := d.next(m.decode)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		raw, ok := d.raw(int(m.bytes))
		if !ok {
			return fileErr(name, ErrCorrupt, "pipe %d: %d bytes of data overrun the file", m.pipeID, m.bytes)
		}
		if len(raw) == 0 {
			raw = nil
		}
		t.Pipes = append(t.Pipes, &Pipe{ID: uint32(len(t.Pipes) + 1), Ino: m.pipeID, Size: m.size, Data: raw})
	}
	return nil
}

// fifoMsg: fifo_entry.
type fifoMsg struct{ pipeID, regfID uint32 }

func (m *fifoMsg) decode(b []byte) error {
	d := protoDec{msg: "fifo_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 2:
			d.uint32(&m.pipeID)
		case 3:
			d.uint32(&m.regfID)
		}
	}
	return d.end("id pipe_id")
}
