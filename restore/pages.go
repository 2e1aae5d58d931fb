package restore

import (
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
)

// pageWindow is how much of a pages file is read at once.
const pageWindow = 8 << 20

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

// writePages fills tk's private pages from the image: runs that follow
// each other in the pages file are read in one window, then written with
// process_vm_writev (batched) where the VMA is writable and through
// /proc/PID/mem (FOLL_FORCE) where it is not.
func (rs *restorer) writePages(tk *task) error {
	pid := tk.t.PID
	runs, pf, err := rs.img.Pages(pid)
	if err != nil {
		return fmt.Errorf("read pages of %d: %w", pid, err)
	}
	defer pf.Close()
	pieces, err := splitRuns(runs, tk.t.VMAs)
	if err != nil {
		return fmt.Errorf("pages of %d: %w", pid, err)
	}
	if zap := inheritedZaps(tk.t, runs); len(zap) > 0 {
		b := &batch{}
		for _, z := range zap {
			b.add(fmt.Sprintf("drop inherited pages %#x-%#x", z.start, z.end), unix.SYS_MADVISE, z.start, z.len(), unix.MADV_DONTNEED)
		}
		if err := rs.runBatch(tk, b); err != nil {
			return err
		}
	}
	mem, err := ptrace.OpenMem(pid, true)
	if err != nil {
		return err
	}
	defer mem.Close()
	var total uint64
	for _, p := range pieces {
		total += p.n
	}
	buf := rs.pageBuf(min(total, pageWindow))
	for i := 0; i < len(pieces); {
		// A window: pieces contiguous in the file, pageWindow at most.
		start := pieces[i].off
		j, end := i, start
		for j < len(pieces) && pieces[j].off == end && end+int64(pieces[j].n)-start <= pageWindow {
			end += int64(pieces[j].n)
			j++
		}
		if err := readFull(pf, buf[:end-start], start); err != nil {
			return fmt.Errorf("pages of %d: %w", pid, err)
		}
		var local [][]byte
		var remote []unix.RemoteIovec
		for _, p := range pieces[i:j] {
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
			if err := ptrace.WriteVM(pid, local, remote); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// pageBuf returns a buffer of n bytes, reusing the one of earlier tasks.
func (rs *restorer) pageBuf(n uint64) []byte {
	if uint64(cap(rs.buf)) < n {
		rs.buf = make([]byte, n)
	}
	return rs.buf[:n]
}

func readFull(f *os.File, b []byte, off int64) error {
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
	var keep []span
	for _, r := range runs {
		keep = append(keep, span{r.Addr, r.Addr + r.Len})
	}
	for _, r := range t.ParentPages {
		keep = append(keep, span{r.Start, r.End})
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].start < keep[j].start })
	// Merge overlaps so subtractSpans sees sorted, disjoint spans.
	merged := keep[:0]
	for _, k := range keep {
		if n := len(merged); n > 0 && k.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, k.end)
			continue
		}
		merged = append(merged, k)
	}
	var out []span
	for _, v := range t.VMAs {
		if v.FromParent {
			out = append(out, subtractSpans(span{v.Start, v.End}, merged)...)
		}
	}
	return out
}
