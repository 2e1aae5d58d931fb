package restore

import (
	"fmt"
	"io"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/rawio"
	"github.com/mmcr/mmcr/ptrace"
)

// pageWindow is how much of a pages file is read at once.
const pageWindow = 2 << 20

// piece is a part of a page run that lies inside one VMA.
type piece struct {
	addr     uint64
	off      int64 // in the pages file
	n        uint64
	writable bool // the VMA is writable: process_vm_writev can fill it
}

// splitRuns cuts runs at VMA boundaries and at pageWindow, marking each
// piece writable or not. A run outside every VMA is an error.
func splitRuns(runs []image.PageRun, vmas []*image.VMA) ([]piece, error) {
	var out []piece
	for _, r := range runs {
		addr, off, end := r.Addr, r.Offset, r.Addr+r.Len
		for addr < end {
			i := sort.Search(len(vmas), func(i int) bool { return vmas[i].End > addr })
			if i == len(vmas) || vmas[i].Start > addr {
				return nil, fmt.Errorf("dumped page at %#x is in no VMA", addr)
			}
			v := vmas[i]
			n := min(end, v.End) - addr
			n = min(n, pageWindow)
			out = append(out, piece{addr: addr, off: off, n: n, writable: v.Prot&unix.PROT_WRITE != 0})
			addr += n
			off += int64(n)
		}
	}
	return out, nil
}

// writePages fills tk's private pages from the image once b ran (b holds
// the mappings they go to; the drops of inherited pages the task had not
// are added to it): runs that follow each other in the pages file are
// read in one window, then written with process_vm_writev (batched) where
// the VMA is writable and through /proc/PID/mem (FOLL_FORCE) where it is
// not. A helper goroutine reads
// (and checksums) the next windows while this one writes: on two cores the
// file's read overlaps the writes into the task.
func (rs *restorer) writePages(tk *task, b *batch) error {
	pid := tk.t.PID
	runs, pf, err := rs.img.OpenPages(pid)
	if err != nil {
		return fmt.Errorf("read pages of %d: %w", pid, err)
	}
	defer pf.Close()
	tk.runs = runs // its children's fileZaps need them
	pieces, err := splitRuns(runs, tk.t.VMAs)
	if err != nil {
		return fmt.Errorf("pages of %d: %w", pid, err)
	}
	zap := inheritedZaps(tk.t, runs)
	if tk.parent != nil {
		for i, v := range tk.t.VMAs {
			if tk.kept[i] && v.Kind == image.KindPrivateFile {
				zap = append(zap, fileZaps(v, tk.parent.runs, runs)...)
			}
		}
	}
	for _, z := range zap {
		b.add(fmt.Sprintf("drop inherited pages %#x-%#x", z.start, z.end), unix.SYS_MADVISE, z.start, z.len(), unix.MADV_DONTNEED)
	}
	if err := rs.runBatch(tk, b); err != nil {
		return err
	}
	if len(pieces) == 0 {
		return pf.Check()
	}
	mem, err := ptrace.OpenMem(pid, true)
	if err != nil {
		return err
	}
	defer mem.Close()
	err = rs.streamWindows(pf, pieces, func(ps []piece, start int64, buf []byte) error {
		var local [][]byte
		var remote []unix.RemoteIovec
		for _, p := range ps {
			b := buf[p.off-start : p.off-start+int64(p.n)]
			if !p.writable {
				if err := mem.Write(p.addr, b); err != nil {
					return err
				}
				continue
			}
			local = append(local, b)
			remote = append(remote, unix.RemoteIovec{Base: uintptr(p.addr), Len: len(b)})
		}
		if len(local) > 0 {
			return ptrace.WriteVMRaw(pid, local, remote)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pages of %d: %w", pid, err)
	}
	if err := pf.Check(); err != nil {
		return fmt.Errorf("pages of %d: %w", pid, err)
	}
	return nil
}

// windowBufs is how many windows are in flight: one being written, the
// others being read.
const windowBufs = 3

// streamWindows reads pieces (sorted by file offset) window by window,
// pieces contiguous in the file and pageWindow bytes at most, in a helper
// goroutine, and calls put for each window in order on a second one. It
// returns put's first error or a read error; both are done when it returns.
//
// The two goroutines read and write with raw syscalls and hand windows over
// with rawio.Recv (see internal/rawio): the caller, often the ptrace
// thread, locked to it, only waits for them.
func (rs *restorer) streamWindows(pf *image.PagesFile, pieces []piece, put func(ps []piece, start int64, buf []byte) error) error {
	type window struct {
		i, j       int
		start, end int64
	}
	var wins []window
	var size int64
	for i := 0; i < len(pieces); {
		start := pieces[i].off
		j, end := i, start
		for j < len(pieces) && pieces[j].off == end && end+int64(pieces[j].n)-start <= pageWindow {
			end += int64(pieces[j].n)
			j++
		}
		if j == i { // a piece alone larger than a window cannot happen (splitRuns)
			return fmt.Errorf("piece at %#x of %d bytes exceeds the page window", pieces[i].addr, pieces[i].n)
		}
		wins = append(wins, window{i, j, start, end})
		size = max(size, end-start)
		i = j
	}
	type filled struct {
		w   window
		buf []byte
		err error
	}
	free := make(chan []byte, windowBufs)
	for _, b := range rs.pageBufs(int(size)) {
		free <- b
	}
	out := make(chan filled, windowBufs)
	stop := make(chan struct{})
	go func() {
		defer close(out)
		// A panic here would end mmcr with half-made tasks detached:
		// make it the restore's error instead (Run then kills them).
		defer func() {
			if r := recover(); r != nil {
				out <- filled{err: fmt.Errorf("internal error reading pages: %v", r)}
			}
		}()
		for _, w := range wins {
			b, ok := rawio.RecvUnless(free, stop)
			if !ok {
				return
			}
			b = b[:w.end-w.start]
			err := readFull(pf, b, w.start)
			out <- filled{w, b, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for range out { // wait for the helper: pf is closed after us
		}
	}()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("internal error writing pages: %v", r)
			}
		}()
		for {
			f, ok := rawio.Recv(out)
			if !ok {
				break
			}
			if f.err != nil {
				done <- f.err
				return
			}
			if err := put(pieces[f.w.i:f.w.j], f.w.start, f.buf); err != nil {
				done <- err
				return
			}
			free <- f.buf[:cap(f.buf)]
		}
		done <- nil
	}()
	return <-done
}

// pageBufs returns windowBufs buffers of n bytes, reusing those of earlier
// tasks. They are mapped populated: a page fault costs here far more than
// the kernel's filling of the pages at mmap.
func (rs *restorer) pageBufs(n int) [][]byte {
	if len(rs.bufs) > 0 && len(rs.bufs[0]) >= n {
		return rs.bufs
	}
	rs.freeBufs()
	n = (n + image.PageSize - 1) &^ (image.PageSize - 1)
	for range windowBufs {
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			b = make([]byte, n)
		} else {
			rs.mapped = append(rs.mapped, b)
		}
		rs.bufs = append(rs.bufs, b)
	}
	return rs.bufs
}

// freeBufs unmaps the page buffers.
func (rs *restorer) freeBufs() {
	for _, b := range rs.mapped {
		unix.Munmap(b)
	}
	rs.bufs, rs.mapped = nil, nil
}

func readFull(f *image.PagesFile, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d of %s: %w", len(b), off, f.Name(), err)
}

// inheritedZaps returns the ranges of t's FromParent VMAs that hold
// neither one of its own dumped pages (runs, sorted) nor a page it shared
// with its parent (ParentPages): pages the parent has there but the task
// had not (never touched, dropped, or all zeros) must go after the fork.
func inheritedZaps(t *image.Task, runs []image.PageRun) []span {
	keep := runSpans(runs)
	for _, r := range t.ParentPages {
		keep = append(keep, span{r.Start, r.End})
	}
	keep = mergeSpans(keep)
	var out []span
	for _, v := range t.VMAs {
		if v.FromParent && v.Kind != image.KindAIORing { // a ring is shared: the parent's
			out = append(out, subtractSpans(span{v.Start, v.End}, keep)...)
		}
	}
	return out
}

// fileZaps returns the ranges of private file VMA v, kept from the
// parent's copy (forkKept), where the parent has private pages of its own
// (parentRuns: its dumped pages, all it has there once restored) and the
// task has none (runs): the task must see the file there, as after a new
// mapping. Where both have a page, the task's is written over the
// parent's.
func fileZaps(v *image.VMA, parentRuns, runs []image.PageRun) []span {
	own := mergeSpans(runSpans(runs))
	var out []span
	for _, r := range parentRuns {
		s := span{max(r.Addr, v.Start), min(r.Addr+r.Len, v.End)}
		if s.start < s.end {
			out = append(out, subtractSpans(s, own)...)
		}
	}
	return out
}

func runSpans(runs []image.PageRun) []span {
	out := make([]span, 0, len(runs))
	for _, r := range runs {
		out = append(out, span{r.Addr, r.Addr + r.Len})
	}
	return out
}

// mergeSpans sorts spans and merges overlapping ones, as subtractSpans
// wants them; it reuses s.
func mergeSpans(s []span) []span {
	sort.Slice(s, func(i, j int) bool { return s[i].start < s[j].start })
	merged := s[:0]
	for _, k := range s {
		if n := len(merged); n > 0 && k.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, k.end)
			continue
		}
		merged = append(merged, k)
	}
	return merged
}
