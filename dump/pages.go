package dump

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// maxIovecs bounds one process_vm_readv batch (IOV_MAX).
const maxIovecs = 1024

// hasPrivatePages reports kinds whose private pages live only in the
// task's memory: anonymous memory and the COW copies of private file
// mappings. Shared memory is dumped per object; the kernel's special
// mappings are never dumped.
func hasPrivatePages(k image.VMAKind) bool {
	switch k {
	case image.KindPrivateAnon, image.KindHeap, image.KindStack, image.KindPrivateFile:
		return true
	}
	return false
}

var zeroPage [image.PageSize]byte

// addNonZero hands data (at addr) to pw without its all-zero pages.
//
// A zero page need not be stored where restore creates the memory afresh
// (anonymous VMAs and shared objects): an absent page reads as zeros. It
// matters on kernels that never map the shared zero page (here:
// pvm_no_zero_page=1), where a page that was only ever read is a real,
// present page full of zeros. It returns how many pages it stored.
func addNonZero(pw *image.PageWriter, addr uint64, data []byte) (uint64, error) {
	return addNonZeroFunc(pw.Add, addr, data)
}

func addNonZeroFunc(add func(uint64, []byte) error, addr uint64, data []byte) (uint64, error) {
	var stored uint64
	runStart := -1
	flush := func(end int) error {
		if runStart < 0 {
			return nil
		}
		err := add(addr+uint64(runStart), data[runStart:end])
		stored += uint64(end-runStart) / image.PageSize
		runStart = -1
		return err
	}
	for off := 0; off < len(data); off += image.PageSize {
		if bytes.Equal(data[off:off+image.PageSize], zeroPage[:]) {
			if err := flush(off); err != nil {
				return stored, err
			}
		} else if runStart < 0 {
			runStart = off
		}
	}
	return stored, flush(len(data))
}

// pageCopier streams page runs of one task into a PageWriter through a
// storePipe, batching readable runs into process_vm_readv calls.
type pageCopier struct {
	pid  int
	pipe *storePipe
	cur  *pageBatch // being filled; nil after a failed get
	// mem, when set, reads the runs instead of process_vm_readv. That
	// pins the pages it reads, and pinning a page still shared
	// copy-on-write copies it (the kernel unshares anonymous pages for a
	// read-only pin): dumping a tree that way would break the very
	// sharing dump records (cowDeduper) and double the tree's memory.
	// /proc/PID/mem reads through a plain reference and leaves it shared.
	mem *ptrace.Mem
	// canceled is checked before each batch: a dump interrupted by a
	// signal stops within one batch (at most copyBufSize bytes).
	canceled func() error
	local    [][]byte
	iov      []unix.RemoteIovec
}

// add queues [addr, addr+n) (page-aligned) for copying. Runs of an
// unreadable VMA are read through /proc/PID/mem.
func (c *pageCopier) add(addr, n uint64, readable, keepZero bool) error {
	for n > 0 {
		if c.cur.room() == 0 || len(c.cur.runs) == maxIovecs {
			if err := c.flush(); err != nil {
				return err
			}
		}
		chunk := min(n, uint64(c.cur.room()))
		c.cur.take(addr, int(chunk), keepZero, !readable)
		addr += chunk
		n -= chunk
	}
	return nil
}

// flush copies the queued runs and hands them to the store goroutine.
func (c *pageCopier) flush() error {
	b := c.cur
	if len(b.runs) == 0 {
		return nil
	}
	if c.canceled != nil {
		if err := c.canceled(); err != nil {
			return err
		}
	}
	if err := c.read(b); err != nil {
		return err
	}
	c.pipe.put(b)
	var err error
	c.cur, err = c.pipe.get()
	return err
}

// read fills the runs of b from the task's memory.
func (c *pageCopier) read(b *pageBatch) error {
	c.local, c.iov = c.local[:0], c.iov[:0]
	for _, r := range b.runs {
		if c.mem != nil || r.viaMem {
			if err := c.readMem(r); err != nil {
				return err
			}
			continue
		}
		c.local = append(c.local, r.data)
		c.iov = append(c.iov, unix.RemoteIovec{Base: uintptr(r.addr), Len: len(r.data)})
	}
	if len(c.iov) == 0 {
		return nil
	}
	if err := ptrace.ReadVM(c.pid, c.local, c.iov); err != nil {
		// A page may refuse process_vm_readv (e.g. a guard); /proc/PID/mem
		// reads what the kernel can, one run at a time.
		for i, v := range c.iov {
			if merr := ptrace.ReadMem(c.pid, uint64(v.Base), c.local[i]); merr != nil {
				return fmt.Errorf("read pages %#x-%#x: %w (process_vm_readv: %v)",
					v.Base, uint64(v.Base)+uint64(v.Len), merr, err)
			}
		}
	}
	return nil
}

func (c *pageCopier) readMem(r batchRun) error {
	var err error
	if c.mem != nil {
		err = c.mem.Read(r.addr, r.data)
	} else {
		err = ptrace.ReadMem(c.pid, r.addr, r.data)
	}
	if err != nil {
		return fmt.Errorf("read pages %#x-%#x: %w", r.addr, r.addr+uint64(len(r.data)), err)
	}
	return nil
}

// finish flushes the last batch and waits for the store goroutine; it
// returns the number of pages stored. After an error it only waits.
func (c *pageCopier) finish(err error) (uint64, error) {
	if err == nil && c.cur != nil {
		err = c.flush()
	}
	if c.cur != nil {
		c.pipe.put(&pageBatch{buf: c.cur.buf}) // back to the free list, empty
		c.cur = nil
	}
	pages, serr := c.pipe.close()
	if serr != nil && (err == nil || errors.Is(err, errStoreFailed)) {
		err = serr
	}
	return pages, err
}

// dumpPrivatePages writes the task's private pages: present or swapped,
// not the zero page, not page cache.
func (d *dumper) dumpPrivatePages(t *image.Task) error {
	pid := t.PID
	pw, err := d.w.Pages(pid)
	if err != nil {
		return taskErr(pid, "open page writer", err)
	}
	if err := d.cow.start(d, t); err != nil {
		return taskErr(pid, "open pagemaps", err)
	}
	defer d.cow.done()
	c := &pageCopier{pid: pid, canceled: d.canceled}
	if len(d.order) > 1 {
		// Pages may be shared copy-on-write within the tree: read them
		// without pinning (see pageCopier.mem).
		if c.mem, err = ptrace.OpenMem(pid, false); err != nil {
			return taskErr(pid, "open memory", err)
		}
		defer c.mem.Close()
	}
	c.pipe = newStorePipe(pw, d.bufs)
	c.cur, _ = c.pipe.get()
	pages, err := c.finish(d.copyPrivatePages(t, c))
	if err != nil {
		return taskErr(pid, "dump pages", err)
	}
	if err := pw.Close(); err != nil {
		return taskErr(pid, "dump pages", err)
	}
	d.log.Debug("private pages dumped", "pid", pid, "pages", pages, "shared with parent", d.cow.done())
	return nil
}

// copyPrivatePages queues every private page of t into c.
func (d *dumper) copyPrivatePages(t *image.Task, c *pageCopier) error {
	pid := t.PID
	for _, v := range t.VMAs {
		if !hasPrivatePages(v.Kind) {
			continue
		}
		runs, err := d.fs.AnonPages(pid, v.Start, v.End)
		if err != nil {
			return taskErr(pid, fmt.Sprintf("scan pages of vma %#x-%#x", v.Start, v.End), err)
		}
		if runs, err = d.cow.dedupe(v, runs); err != nil {
			return taskErr(pid, fmt.Sprintf("compare pages of vma %#x-%#x with parent %d", v.Start, v.End, t.PPID), err)
		}
		readable := v.Prot&unix.PROT_READ != 0
		keepZero := v.Kind == image.KindPrivateFile
		for _, r := range runs {
			if err := c.add(r.Start, r.End-r.Start, readable, keepZero); err != nil {
				return err
			}
		}
	}
	return nil
}

// dumpSharedObjects writes each shared object's pages once, read through
// the map_files link of one VMA that maps it: SEEK_DATA/SEEK_HOLE skip the
// holes, pread reads the data, no ptrace needed.
func (d *dumper) dumpSharedObjects() error {
	for _, o := range d.shm.Objects() {
		if err := d.dumpSharedObject(o); err != nil {
			src := d.shmSrc[o.ID]
			return taskErr(src.pid, fmt.Sprintf("dump shared memory of vma %#x-%#x", src.start, src.end), err)
		}
	}
	return nil
}

func (d *dumper) dumpSharedObject(o *image.SharedObject) error {
	src := d.shmSrc[o.ID]
	f, err := mapfiles.Open(src.pid, src.start, src.end, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	pw, err := d.w.ShmemPages(o.ID)
	if err != nil {
		return err
	}
	pipe := newStorePipe(pw, d.bufs)
	err = d.readSharedObject(o, f, pipe)
	pages, serr := pipe.close()
	if serr != nil && (err == nil || errors.Is(err, errStoreFailed)) {
		err = serr
	}
	if err != nil {
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	d.log.Debug("shared object dumped", "id", o.ID, "size", o.Size, "pages", pages)
	return nil
}

// readSharedObject preads the data of o (holes skipped) into batches of
// pipe, which stores them.
func (d *dumper) readSharedObject(o *image.SharedObject, f *os.File, pipe *storePipe) error {
	size := int64(o.Size)
	for off := int64(0); off < size; {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return fmt.Errorf("seek data from %#x: %w", off, err)
		}
		hole, err := f.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole from %#x: %w", data, err)
		}
		data &^= image.PageSize - 1
		hole = min((hole+image.PageSize-1)&^(image.PageSize-1), size)
		for p := data; p < hole; {
			if err := d.canceled(); err != nil {
				return err
			}
			b, err := pipe.get()
			if err != nil {
				return err
			}
			n := min(int64(len(b.buf)), hole-p)
			b.take(uint64(p), int(n), false, false)
			chunk := b.runs[0].data
			got, err := f.ReadAt(chunk, p)
			if err != nil && !errors.Is(err, io.EOF) {
				pipe.put(&pageBatch{buf: b.buf})
				return fmt.Errorf("read %#x-%#x: %w", p, p+n, err)
			}
			clear(chunk[got:]) // past st_size: reads as zeros in the mapping too
			pipe.put(b)
			p += n
		}
		off = hole
	}
	return nil
}
