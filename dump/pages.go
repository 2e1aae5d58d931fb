package dump

import (
	"errors"
	"fmt"
	"os"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

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

// dumpPrivatePages writes the task's private pages: present or swapped,
// not the zero page, not page cache.
func (d *dumper) dumpPrivatePages(t *image.Task) error {
	pid := t.PID
	pw, err := d.w.Pages(pid)
	if err != nil {
		return taskErr(pid, "open page writer", err)
	}
	if err := d.cow.start(d, t); err != nil {
		return err
	}
	defer d.cow.done()
	src := taskMemory{pid: pid}
	if len(d.order) > 1 {
		// Pages may be shared copy-on-write within the tree: read them
		// without pinning (see taskMemory).
		if src.mem, err = ptrace.OpenMem(pid, false); err != nil {
			return taskErr(pid, "open memory", err)
		}
		defer src.mem.Close()
	}
	s := d.pool.stream(pw, src, d.canceled)
	var pages uint64
	err = offThread(func() (err error) {
		pages, err = s.finish(d.copyPrivatePages(t, s))
		return err
	})
	if err != nil {
		return taskErr(pid, "dump pages", err)
	}
	if err := pw.Close(); err != nil {
		return taskErr(pid, "dump pages", err)
	}
	d.log.Debug("private pages dumped", "pid", pid, "pages", pages, "shared with parent", d.cow.done())
	return nil
}

// offThread runs fn on another goroutine and waits for it. Cutting pages
// into chunks needs no ptrace, and it blocks each time the workers fall
// behind: on the dump's locked OS thread every such block would hand the
// CPU to another thread and back through the kernel. A panic in fn comes
// back as an error, for Run to undo the dump.
func offThread(fn func() error) (err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error: %v", r)
			}
		}()
		err = fn()
	}()
	<-done
	return err
}

// copyPrivatePages queues every private page of t into s.
//
// A large VMA is scanned a window at a time, so that the workers copy the
// first pages while the rest is still being scanned. A window that finds
// nothing doubles the next one: a huge, mostly empty reservation costs a
// few scans, not one per window.
func (d *dumper) copyPrivatePages(t *image.Task, s *pageStream) error {
	pid := t.PID
	pm, err := d.fs.OpenPagemap(pid)
	if err != nil {
		return taskErr(pid, "open pagemap", err)
	}
	defer pm.Close()
	for _, v := range t.VMAs {
		if v.Kind == image.KindAIORing {
			// A few pages, all there (the kernel's, not private ones):
			// the ring's events and its head and tail. A fork's copy of
			// its parent's ring has the parent's.
			if !v.FromParent {
				if err := s.add(v.Start, v.Len(), false, false); err != nil {
					return err
				}
			}
			continue
		}
		if !hasPrivatePages(v.Kind) {
			continue
		}
		readable := v.Prot&unix.PROT_READ != 0
		keepZero := v.Kind == image.KindPrivateFile
		window := uint64(scanWindow)
		for start := v.Start; start < v.End; {
			end := v.End
			if v.End-start > window {
				end = start + window
			}
			runs, guards, err := pm.PrivatePages(start, end)
			if err != nil {
				return taskErr(pid, fmt.Sprintf("scan pages of vma %#x-%#x", v.Start, v.End), err)
			}
			for _, g := range guards {
				t.Guards = appendGuard(t.Guards, v, g.Start, g.End)
			}
			if runs, err = d.cow.dedupe(v, runs); err != nil {
				return taskErr(pid, fmt.Sprintf("compare pages of vma %#x-%#x with parent %d", v.Start, v.End, t.PPID), err)
			}
			for _, r := range runs {
				if err := s.add(r.Start, r.End-r.Start, keepZero, !readable); err != nil {
					return err
				}
			}
			if len(runs) == 0 && window < 1<<62 {
				window *= 2
			} else {
				window = scanWindow
			}
			start = end
		}
	}
	return nil
}

// appendGuard adds the guard region [start, end) of v to gs (sorted),
// merging it with the last one when they touch inside v: a region of the
// image lies inside one VMA.
func appendGuard(gs []image.Range, v *image.VMA, start, end uint64) []image.Range {
	if n := len(gs); n > 0 && gs[n-1].End == start && start > v.Start {
		gs[n-1].End = end
		return gs
	}
	return append(gs, image.Range{Start: start, End: end})
}

// scanWindow is how much address space one page scan covers at first (see
// copyPrivatePages): 64 MiB, ~1 ms of scanning when it is all present.
const scanWindow = 64 << 20

// open opens what r names, read-only.
func (r vmaRef) open() (*os.File, error) {
	if r.viaFD {
		return os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", r.pid, r.fd), os.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	return mapfiles.Open(r.pid, r.start, r.end, unix.O_RDONLY)
}

// String names r in errors.
func (r vmaRef) String() string {
	if r.viaFD {
		return fmt.Sprintf("fd %d", r.fd)
	}
	return fmt.Sprintf("vma %#x-%#x", r.start, r.end)
}

// memfdInode records memfd o's seals, mode, owner and length, from f, a
// file of its inode (the seals are the inode's, whatever file asks).
func memfdInode(o *image.SharedObject, f *os.File) error {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("read memfd seals: %w", os.NewSyscallError("fcntl F_GET_SEALS", err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat memfd: %w", err)
	}
	o.Seals, o.Mode, o.UID, o.GID, o.Length = uint32(seals), st.Mode&0o7777, st.Uid, st.Gid, uint64(st.Size)
	return nil
}

// dumpSharedObjects writes each shared object's pages once, read through
// the map_files link of one VMA that maps it: SEEK_DATA/SEEK_HOLE skip the
// holes, pread reads the data, no ptrace needed.
func (d *dumper) dumpSharedObjects() error {
	for _, o := range d.shm.Objects() {
		if err := d.dumpSharedObject(o); err != nil {
			src := d.shmSrc[o.ID]
			return taskErr(src.pid, "dump shared memory of "+src.String(), err)
		}
	}
	return nil
}

func (d *dumper) dumpSharedObject(o *image.SharedObject) error {
	f, err := d.shmSrc[o.ID].open()
	if err != nil {
		return err
	}
	defer f.Close()
	if o.Memfd {
		if err := memfdInode(o, f); err != nil {
			return err
		}
	}
	pw, err := d.w.ShmemPages(o.ID)
	if err != nil {
		return err
	}
	s := d.pool.stream(pw, objectFile{f}, d.canceled)
	var pages uint64
	err = offThread(func() (err error) {
		pages, err = s.finish(queueObjectData(o, f, s))
		return err
	})
	if err != nil {
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	d.log.Debug("shared object dumped", "id", o.ID, "size", o.Size, "pages", pages)
	return nil
}

// queueObjectData queues the data of o, holes skipped (SEEK_DATA and
// SEEK_HOLE), into s.
//
// An object with a block allocated for every page has no hole, and its
// SEEK_HOLE would walk every page (~6 ms per 256 MiB) before the first
// chunk is queued: it is queued whole at once instead. That is safe even
// if the count were off: a hole reads as zeros, and zero pages are dropped.
func queueObjectData(o *image.SharedObject, f *os.File, s *pageStream) error {
	size := int64(o.Size)
	if size > 0 && allocatedBytes(f) >= (size+image.PageSize-1)&^(image.PageSize-1) {
		return s.add(0, uint64(size), false, false) // as the walk would: up to the size
	}
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
		if data >= hole {
			break
		}
		if err := s.add(uint64(data), uint64(hole-data), false, false); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// allocatedBytes is the storage f's blocks take (st_blocks), 0 when fstat
// fails: the caller then looks for holes.
func allocatedBytes(f *os.File) int64 {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	return st.Blocks * 512
}
