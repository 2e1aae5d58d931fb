package procfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

const pageSize = 4096

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	PagemapPresent   = 1 << 63
	PagemapSwapped   = 1 << 62
	PagemapFile      = 1 << 61 // page-cache page or shared anon (shmem) page
	PagemapExclusive = 1 << 56 // mapped by this process only
	PagemapGuard     = 1 << 58 // a guard region marker (Linux 6.15+)
	PagemapPFNMask   = 1<<55 - 1
)

// PFN returns the page frame number of a present pagemap entry (0 when the
// reader lacks CAP_SYS_ADMIN, or the page is not present).
func PFN(entry uint64) uint64 {
	if entry&PagemapPresent == 0 {
		return 0
	}
	return entry & PagemapPFNMask
}

// AnonPages returns the runs of pages in [start, end) of pid's address space
// that hold private data: present or swapped, not the zero page, and not a
// page-cache (file) page; i.e. private anonymous pages and the COW copies in
// private file mappings. Adjacent runs are merged; the result is sorted.
//
// It uses the PAGEMAP_SCAN ioctl on /proc/PID/pagemap and falls back to
// reading pagemap entries when the kernel lacks it (or
// kernel.ForcePagemapFallback is on). Call it per VMA whose content is
// dumped: pfnmap areas such as [vvar] have present pages that are neither
// anon nor file, and would be reported.
func (fs FS) AnonPages(pid int, start, end uint64) ([]PageRange, error) {
	p, err := fs.OpenPagemap(pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.AnonPages(start, end)
}

// AnonPages is FS.AnonPages on an open pagemap: a caller scanning every
// VMA of a task opens its pagemap once.
func (p *Pagemap) AnonPages(start, end uint64) ([]PageRange, error) {
	anon, _, err := p.PrivatePages(start, end)
	return anon, err
}

// PrivatePages is AnonPages that also returns the guard regions in
// [start, end) (MADV_GUARD_INSTALL), which AnonPages leaves out: a guard
// marker is not a present page, and reads as swapped to kernels that do
// not know it (Linux before 6.15), which report no guards.
func (p *Pagemap) PrivatePages(start, end uint64) (anon, guards []PageRange, err error) {
	if start%pageSize != 0 || end%pageSize != 0 || end < start {
		return nil, nil, fmt.Errorf("anon pages of %d: bad range %x-%x", p.pid, start, end)
	}
	if start == end {
		return nil, nil, nil
	}
	if kernel.HavePagemapScan() {
		if p.vec == nil {
			p.vec = make([]kernel.PageRegion, 512)
		}
		anon, guards, err = scanAnon(p.f, start, end, p.vec)
	} else {
		anon, guards, err = readAnon(p.f, start, end)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("anon pages of %d in %x-%x: %w", p.pid, start, end, err)
	}
	return anon, guards, nil
}

// appendRange adds [s, e) to rs, merging it with the last run when they touch.
func appendRange(rs []PageRange, s, e uint64) []PageRange {
	if n := len(rs); n > 0 && rs[n-1].End == s {
		rs[n-1].End = e
		return rs
	}
	return append(rs, PageRange{s, e})
}

// scanAnon asks PAGEMAP_SCAN for pages that are (PRESENT or SWAPPED) and
// neither FILE nor PFNZERO, and, where the kernel knows them, for guard
// markers, returned apart. vec receives the regions of one ioctl.
func scanAnon(f *os.File, start, end uint64, vec []kernel.PageRegion) (anon, guards []PageRange, err error) {
	var guard uint64
	if kernel.HavePagemapGuard() {
		guard = kernel.PageIsGuard
	}
	for start < end {
		arg := kernel.PmScanArg{
			Start:             start,
			End:               end,
			CategoryInverted:  kernel.PageIsFile | kernel.PageIsPFNZero,
			CategoryMask:      kernel.PageIsFile | kernel.PageIsPFNZero,
			CategoryAnyofMask: kernel.PageIsPresent | kernel.PageIsSwapped | guard,
			ReturnMask:        kernel.PageIsPresent | kernel.PageIsSwapped | guard,
		}
		n, err := kernel.PagemapScan(f, &arg, vec)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range vec[:n] {
			if r.Categories&guard != 0 {
				guards = appendRange(guards, r.Start, r.End)
			} else {
				anon = appendRange(anon, r.Start, r.End)
			}
		}
		if arg.WalkEnd <= start {
			return nil, nil, fmt.Errorf("PAGEMAP_SCAN made no progress at %x", start)
		}
		start = arg.WalkEnd
	}
	return anon, guards, nil
}

// readAnon is scanAnon from raw pagemap entries.
func readAnon(f *os.File, start, end uint64) (anon, guards []PageRange, err error) {
	zero := zeroPFN()
	err = walkPagemap(f, start, end, func(addr, e uint64) {
		if e&PagemapGuard != 0 {
			guards = appendRange(guards, addr, addr+pageSize)
			return
		}
		if e&(PagemapPresent|PagemapSwapped) == 0 || e&PagemapFile != 0 {
			return
		}
		if zero != 0 && e&PagemapPresent != 0 && e&PagemapPFNMask == zero {
			return
		}
		anon = appendRange(anon, addr, addr+pageSize)
	})
	return anon, guards, err
}

// walkPagemap calls fn with every page address in [start, end) and its
// pagemap entry, reading f in batches.
func walkPagemap(f *os.File, start, end uint64, fn func(addr, entry uint64)) error {
	const batch = 4096 // entries per read: 32 KiB
	buf := make([]byte, batch*8)
	for addr := start; addr < end; {
		n := min((end-addr)/pageSize, batch)
		b := buf[:n*8]
		got, err := f.ReadAt(b, int64(addr/pageSize*8))
		if err != nil && !(err == io.EOF && got == len(b)) {
			return fmt.Errorf("read pagemap at %x: %w", addr, err)
		}
		for i := 0; i < got/8; i++ {
			fn(addr, binary.LittleEndian.Uint64(b[i*8:]))
			addr += pageSize
		}
	}
	return nil
}

// PagemapEntries returns the raw pagemap entry of every page in [start, end).
func (fs FS) PagemapEntries(pid int, start, end uint64) ([]uint64, error) {
	if start%pageSize != 0 || end%pageSize != 0 || end < start {
		return nil, fmt.Errorf("pagemap of %d: bad range %x-%x", pid, start, end)
	}
	f, err := openProc(fs.path(pid, "pagemap"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]uint64, 0, (end-start)/pageSize)
	err = walkPagemap(f, start, end, func(_, e uint64) { out = append(out, e) })
	if err != nil {
		return nil, fmt.Errorf("pagemap of %d in %x-%x: %w", pid, start, end, err)
	}
	return out, nil
}

// PagePFNs returns the PFN of every page in [start, end) of pid: 0 for a
// page that is not present. Two tasks whose private pages have one PFN
// still share them copy-on-write. PFNs read as 0 without CAP_SYS_ADMIN.
func (fs FS) PagePFNs(pid int, start, end uint64) ([]uint64, error) {
	es, err := fs.PagemapEntries(pid, start, end)
	if err != nil {
		return nil, err
	}
	for i, e := range es {
		es[i] = PFN(e)
	}
	return es, nil
}

// Pagemap is an open /proc/PID/pagemap, for callers that read many ranges
// of one task.
type Pagemap struct {
	pid int
	f   *os.File
	buf []byte              // PFNs' read buffer
	vec []kernel.PageRegion // AnonPages' PAGEMAP_SCAN regions
}

// OpenPagemap opens pid's pagemap.
func (fs FS) OpenPagemap(pid int) (*Pagemap, error) {
	f, err := openProc(fs.path(pid, "pagemap"))
	if err != nil {
		return nil, err
	}
	return &Pagemap{pid: pid, f: f}, nil
}

// Close closes the pagemap file.
func (p *Pagemap) Close() error { return p.f.Close() }

// PFNs appends to dst the PFN of every page in [start, end) (0: not
// present, or PFNs hidden without CAP_SYS_ADMIN) and returns it.
func (p *Pagemap) PFNs(dst []uint64, start, end uint64) ([]uint64, error) {
	if start%pageSize != 0 || end%pageSize != 0 || end < start {
		return dst, fmt.Errorf("pagemap of %d: bad range %x-%x", p.pid, start, end)
	}
	const batch = 8192 // entries per read: 64 KiB
	if p.buf == nil {
		p.buf = make([]byte, batch*8)
	}
	for addr := start; addr < end; {
		n := min((end-addr)/pageSize, batch)
		b := p.buf[:n*8]
		got, err := p.f.ReadAt(b, int64(addr/pageSize*8))
		if got < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dst, fmt.Errorf("pagemap of %d at %x: %w", p.pid, addr, err)
		}
		for i := 0; i < got; i += 8 {
			dst = append(dst, PFN(binary.LittleEndian.Uint64(b[i:])))
		}
		addr += n * pageSize
	}
	return dst, nil
}

// ZeroPFN returns the PFN of the kernel's shared zero page, or 0 when there
// is none to learn: pagemap hides PFNs without CAP_SYS_ADMIN, and some
// kernels never map the zero page (e.g. booted with pvm_no_zero_page=1:
// every read fault of anonymous memory then gets a fresh zeroed page).
func ZeroPFN() uint64 { return zeroPFN() }

// zeroPFN maps two anonymous pages in this process and reads both: where
// the kernel uses the zero page, both entries are present, not exclusive
// (the zero page is no normal page) and share one PFN. Anything else means
// no zero page here, and a PFN learned from it would be a real page's.
var zeroPFN = sync.OnceValue(func() uint64 {
	mem, err := unix.Mmap(-1, 0, 2*pageSize, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0
	}
	defer unix.Munmap(mem)
	if *(*byte)(unsafe.Pointer(&mem[0])) != 0 || *(*byte)(unsafe.Pointer(&mem[pageSize])) != 0 {
		return 0
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0
	}
	defer f.Close()
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	var b [16]byte
	if _, err := f.ReadAt(b[:], int64(addr/pageSize*8)); err != nil {
		return 0
	}
	e0, e1 := binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	if e0&PagemapPresent == 0 || e0&(PagemapExclusive|PagemapFile) != 0 || PFN(e0) != PFN(e1) {
		return 0
	}
	return PFN(e0)
})
