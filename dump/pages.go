package dump

import (
	"bytes"
	"errors"
	"fmt"
	"io"

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

// pageCopier streams page runs of one task into a PageWriter, batching
// readable runs into process_vm_readv calls through one reusable buffer.
type pageCopier struct {
	pid   int
	pw    *image.PageWriter
	buf   []byte
	used  int
	local [][]byte
	iov   []unix.RemoteIovec
	// keepZero[i] says the i-th queued run keeps its zero pages (COW
	// pages of a private file mapping: zeros there differ from the file).
	keepZero []bool
	pages    uint64
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
}

// store hands one copied run to the page writer.
func (c *pageCopier) store(addr uint64, data []byte, keepZero bool) error {
	if keepZero {
		if err := c.pw.Add(addr, data); err != nil {
			return err
		}
		c.pages += uint64(len(data)) / image.PageSize
		return nil
	}
	n, err := addNonZero(c.pw, addr, data)
	c.pages += n
	return err
}

// add queues [addr, addr+n) (page-aligned) for copying. Runs of an
// unreadable VMA go through /proc/PID/mem at once, after the queue.
func (c *pageCopier) add(addr, n uint64, readable, keepZero bool) error {
	for n > 0 {
		if c.used == len(c.buf) || len(c.iov) == maxIovecs {
			if err := c.flush(); err != nil {
				return err
			}
		}
		chunk := min(n, uint64(len(c.buf)-c.used))
		if !readable {
			if err := c.flush(); err != nil {
				return err
			}
			chunk = min(n, uint64(len(c.buf)))
			if c.canceled != nil {
				if err := c.canceled(); err != nil {
					return err
				}
			}
			data := c.buf[:chunk]
			if err := ptrace.ReadMem(c.pid, addr, data); err != nil {
				return fmt.Errorf("read pages %#x-%#x: %w", addr, addr+chunk, err)
			}
			if err := c.store(addr, data, keepZero); err != nil {
				return fmt.Errorf("store pages %#x-%#x: %w", addr, addr+chunk, err)
			}
		} else {
			c.keepZero = append(c.keepZero, keepZero)
			c.local = append(c.local, c.buf[c.used:c.used+int(chunk)])
			c.iov = append(c.iov, unix.RemoteIovec{Base: uintptr(addr), Len: int(chunk)})
			c.used += int(chunk)
		}
		addr += chunk
		n -= chunk
	}
	return nil
}

// flush copies the queued runs and hands them to the page writer in order.
func (c *pageCopier) flush() error {
	if len(c.iov) == 0 {
		return nil
	}
	if c.canceled != nil {
		if err := c.canceled(); err != nil {
			return err
		}
	}
	if c.mem != nil {
		for i, v := range c.iov {
			if err := c.mem.Read(uint64(v.Base), c.local[i]); err != nil {
				return fmt.Errorf("read pages %#x-%#x: %w", v.Base, uint64(v.Base)+uint64(v.Len), err)
			}
		}
	} else if err := ptrace.ReadVM(c.pid, c.local, c.iov); err != nil {
		// A page may refuse process_vm_readv (e.g. a guard); /proc/PID/mem
		// reads what the kernel can, one run at a time.
		for i, v := range c.iov {
			if merr := ptrace.ReadMem(c.pid, uint64(v.Base), c.local[i]); merr != nil {
				return fmt.Errorf("read pages %#x-%#x: %w (process_vm_readv: %v)",
					v.Base, uint64(v.Base)+uint64(v.Len), merr, err)
			}
		}
	}
	for i, v := range c.iov {
		if err := c.store(uint64(v.Base), c.local[i], c.keepZero[i]); err != nil {
			return fmt.Errorf("store pages %#x-%#x: %w", v.Base, uint64(v.Base)+uint64(v.Len), err)
		}
	}
	c.local, c.iov, c.keepZero, c.used = c.local[:0], c.iov[:0], c.keepZero[:0], 0
	return nil
}

// dumpPrivatePages writes the task's private pages: present or swapped,
// not the zero page, not page cache.
func (d *dumper) dumpPrivatePages(t *image.Task) error {
	pid := t.PID
	pw, err := d.w.Pages(pid)
	if err != nil {
		return taskErr(pid, "open page writer", err)
	}
	c := &pageCopier{pid: pid, pw: pw, buf: d.buf, canceled: d.canceled}
	if err := d.cow.start(d, t); err != nil {
		return taskErr(pid, "open pagemaps", err)
	}
	defer d.cow.done()
	if len(d.order) > 1 {
		// Pages may be shared copy-on-write within the tree: read them
		// without pinning (see pageCopier.mem).
		if c.mem, err = ptrace.OpenMem(pid, false); err != nil {
			return taskErr(pid, "open memory", err)
		}
		defer c.mem.Close()
	}
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
				return taskErr(pid, "dump pages", err)
			}
		}
	}
	if err := c.flush(); err != nil {
		return taskErr(pid, "dump pages", err)
	}
	if err := pw.Close(); err != nil {
		return taskErr(pid, "dump pages", err)
	}
	d.log.Debug("private pages dumped", "pid", pid, "pages", c.pages, "shared with parent", d.cow.done())
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
	size := int64(o.Size)
	var pages int64
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
			n := min(int64(len(d.buf)), hole-p)
			chunk := d.buf[:n]
			got, err := f.ReadAt(chunk, p)
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read %#x-%#x: %w", p, p+n, err)
			}
			clear(chunk[got:]) // past st_size: reads as zeros in the mapping too
			stored, err := addNonZero(pw, uint64(p), chunk)
			if err != nil {
				return fmt.Errorf("store %#x-%#x: %w", p, p+n, err)
			}
			pages += int64(stored)
			p += n
		}
		off = hole
	}
	if err := pw.Close(); err != nil {
		return err
	}
	d.log.Debug("shared object dumped", "id", o.ID, "size", o.Size, "pages", pages)
	return nil
}
