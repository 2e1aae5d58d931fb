// Package kernel is mmcr's one choke point for kernel ABI that
// golang.org/x/sys/unix does not carry: the PAGEMAP_SCAN and PROCMAP_QUERY
// ioctls with their structs, the -ERESTART* codes a task interrupted in
// a syscall leaves in rax, ioprio_get/set, PR_TIMER_CREATE_RESTORE_IDS, and
// a seccomp filter interpreter (seccomp.go). Layouts follow include/uapi/linux/fs.h (Linux
// 6.7+ for PAGEMAP_SCAN, 6.11+ for PROCMAP_QUERY, build_id since 6.11 too);
// Debian 12's headers lack both, so they are defined here and checked by
// size in the tests.
//
// Callers use the typed wrappers; nothing outside this package issues these
// ioctls by number.
package kernel

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Restart codes the kernel leaves (negated) in rax of a task stopped inside
// an interrupted syscall. They never reach user space on their own: restore
// turns them into a restart of the syscall, or -EINTR for
// ERESTART_RESTARTBLOCK (whose restart_block cannot be recreated).
const (
	ERESTARTSYS           = 512
	ERESTARTNOINTR        = 513
	ERESTARTNOHAND        = 514
	ERESTART_RESTARTBLOCK = 516
)

// PAGE_IS_* categories, as PmScanArg masks and PageRegion.Categories.
const (
	PageIsWPAllowed = 1 << 0
	PageIsWritten   = 1 << 1
	PageIsFile      = 1 << 2 // page-cache page or shared anon (shmem) page
	PageIsPresent   = 1 << 3
	PageIsSwapped   = 1 << 4
	PageIsPFNZero   = 1 << 5 // the shared zero page
	PageIsHuge      = 1 << 6
	PageIsSoftDirty = 1 << 7
	PageIsGuard     = 1 << 8 // a guard marker (MADV_GUARD_INSTALL; Linux 6.15+)
)

// Guard regions (madvise MADV_GUARD_INSTALL, Linux 6.13+): page table
// markers that make an access raise SIGSEGV, inside an ordinary VMA.
// glibc 2.42+ puts one at the low end of every thread stack.
const (
	MADV_GUARD_INSTALL = 102
	MADV_GUARD_REMOVE  = 103
)

// PAGEMAP_SCAN flags.
const (
	PMScanWPMatching   = 1 << 0 // write-protect the matched pages
	PMScanCheckWPAsync = 1 << 1 // abort on a page without async WP
)

// PageRegion is struct page_region: one run of pages [Start, End) whose
// categories (masked by return_mask) are all equal.
type PageRegion struct {
	Start, End uint64
	Categories uint64
}

// PmScanArg is struct pm_scan_arg (96 bytes).
type PmScanArg struct {
	Size     uint64 // sizeof(PmScanArg); filled by PagemapScan
	Flags    uint64
	Start    uint64
	End      uint64
	WalkEnd  uint64 // out: where the walk stopped; == End when complete
	Vec      uint64 // address of []PageRegion; filled by PagemapScan
	VecLen   uint64 // filled by PagemapScan
	MaxPages uint64 // 0: no limit
	// CategoryInverted lists categories that match when 0 instead of 1.
	CategoryInverted uint64
	// CategoryMask: a page is skipped unless every category in it matches.
	CategoryMask uint64
	// CategoryAnyofMask: a page is skipped unless one category in it matches.
	CategoryAnyofMask uint64
	// ReturnMask: categories reported in PageRegion.Categories (and the
	// ones that split regions).
	ReturnMask uint64
}

// PROCMAP_QUERY query flags.
const (
	ProcmapQueryVMAReadable     = 0x01
	ProcmapQueryVMAWritable     = 0x02
	ProcmapQueryVMAExecutable   = 0x04
	ProcmapQueryVMAShared       = 0x08
	ProcmapQueryCoveringOrNext  = 0x10 // the VMA covering QueryAddr, or the next one
	ProcmapQueryFileBackedVMA   = 0x20
	procmapQueryVMAFlagsAllMask = 0x0f
)

// ProcmapQuery is struct procmap_query (104 bytes).
type ProcmapQuery struct {
	Size        uint64 // filled by ProcmapQueryIoctl
	QueryFlags  uint64 // in
	QueryAddr   uint64 // in
	VMAStart    uint64 // out
	VMAEnd      uint64 // out
	VMAFlags    uint64 // out: ProcmapQueryVMA* bits
	VMAPageSize uint64 // out
	VMAOffset   uint64 // out: bytes
	Inode       uint64 // out
	DevMajor    uint32 // out
	DevMinor    uint32 // out
	VMANameSize uint32 // in/out: buffer size in, name length incl. NUL out
	BuildIDSize uint32 // in/out
	VMANameAddr uint64 // in
	BuildIDAddr uint64 // in
}

// Ioctl request numbers: _IOWR('f', nr, size).
var (
	PAGEMAP_SCAN  = iowr('f', 16, unsafe.Sizeof(PmScanArg{}))
	PROCMAP_QUERY = iowr('f', 17, unsafe.Sizeof(ProcmapQuery{}))
)

func iowr(typ, nr, size uintptr) uintptr {
	const (
		nrShift   = 0
		typeShift = 8
		sizeShift = 16
		dirShift  = 30
		dirRW     = 3
	)
	return dirRW<<dirShift | size<<sizeShift | typ<<typeShift | nr<<nrShift
}

// ioctl issues an ioctl whose argument is a pointer, retrying EINTR.
// buf is the user buffer the argument struct points to (or 0): passing it
// here as a converted pointer makes the compiler keep it on the heap and
// alive for the call, since the struct only holds its address as a number.
//
//go:uintptrescapes
func ioctl(fd, req, arg, buf uintptr) (int, error) {
	for {
		r1, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(r1), nil
	}
}

// PagemapScan runs PAGEMAP_SCAN on f (an open /proc/PID/pagemap) with the
// regions written into vec. It returns how many regions the kernel filled.
// arg.WalkEnd tells where the walk stopped: a full vec stops it early, and
// the caller continues from there. Errors are *os.SyscallError("ioctl
// PAGEMAP_SCAN"); ENOTTY or EINVAL from a kernel without it.
func PagemapScan(f *os.File, arg *PmScanArg, vec []PageRegion) (int, error) {
	arg.Size = uint64(unsafe.Sizeof(*arg))
	arg.VecLen = uint64(len(vec))
	var buf unsafe.Pointer
	if len(vec) > 0 {
		buf = unsafe.Pointer(&vec[0])
	}
	arg.Vec = uint64(uintptr(buf))
	n, err := ioctl(f.Fd(), PAGEMAP_SCAN, uintptr(unsafe.Pointer(arg)), uintptr(buf))
	runtime.KeepAlive(f)
	if err != nil {
		return 0, os.NewSyscallError("ioctl PAGEMAP_SCAN", err)
	}
	return n, nil
}

// ProcmapQueryIoctl runs PROCMAP_QUERY on f (an open /proc/PID/maps). When
// name is non-empty it receives the VMA's name (NUL-terminated; the length
// with the NUL is in q.VMANameSize). No VMA at or after the address
// (with ProcmapQueryCoveringOrNext) is ENOENT.
func ProcmapQueryIoctl(f *os.File, q *ProcmapQuery, name []byte) error {
	q.Size = uint64(unsafe.Sizeof(*q))
	q.VMANameSize = uint32(len(name))
	var buf unsafe.Pointer
	if len(name) > 0 {
		buf = unsafe.Pointer(&name[0])
	}
	q.VMANameAddr = uint64(uintptr(buf))
	q.BuildIDSize, q.BuildIDAddr = 0, 0
	_, err := ioctl(f.Fd(), PROCMAP_QUERY, uintptr(unsafe.Pointer(q)), uintptr(buf))
	runtime.KeepAlive(f)
	if err != nil {
		return os.NewSyscallError("ioctl PROCMAP_QUERY", err)
	}
	return nil
}

// unsupported says whether an ioctl error means "this kernel lacks it".
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}

var (
	forcePagemapFallback atomic.Bool
	forceProcmapFallback atomic.Bool
)

var pagemapScanProbe = sync.OnceValue(func() bool { return scanOwnPage(PageIsPresent) })

// scanOwnPage runs PAGEMAP_SCAN for categories over one page of ours that
// is mapped, and says whether the kernel took the call.
func scanOwnPage(categories uint64) bool {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false
	}
	defer f.Close()
	var page [1]byte
	start := uint64(uintptr(unsafe.Pointer(&page[0]))) &^ 4095
	arg := PmScanArg{Start: start, End: start + 4096, CategoryAnyofMask: categories, ReturnMask: categories}
	var vec [1]PageRegion
	_, err = PagemapScan(f, &arg, vec[:])
	return err == nil
}

// HavePagemapGuard says whether PAGEMAP_SCAN knows PageIsGuard (Linux
// 6.15+; older kernels refuse an unknown category with EINVAL). Probed once.
var HavePagemapGuard = sync.OnceValue(func() bool { return pagemapScanProbe() && scanOwnPage(PageIsGuard) })

var procmapQueryProbe = sync.OnceValue(func() bool {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false
	}
	defer f.Close()
	q := ProcmapQuery{QueryFlags: ProcmapQueryCoveringOrNext}
	err = ProcmapQueryIoctl(f, &q, nil)
	return err == nil || !unsupported(err)
})

// HavePagemapScan says whether PAGEMAP_SCAN works here (probed once) and is
// not forced off by ForcePagemapFallback.
func HavePagemapScan() bool {
	return !forcePagemapFallback.Load() && pagemapScanProbe()
}

// HaveProcmapQuery says whether PROCMAP_QUERY works here (probed once) and
// is not forced off by ForceProcmapFallback.
func HaveProcmapQuery() bool {
	return !forceProcmapFallback.Load() && procmapQueryProbe()
}

// ForcePagemapFallback makes HavePagemapScan report false (on == true) so
// tests and users can exercise the /proc/PID/pagemap reader. It returns the
// previous setting.
func ForcePagemapFallback(on bool) bool { return forcePagemapFallback.Swap(on) }

// ForceProcmapFallback makes HaveProcmapQuery report false (on == true). It
// returns the previous setting.
func ForceProcmapFallback(on bool) bool { return forceProcmapFallback.Swap(on) }

// RestartCode returns the ERESTART* code held in a syscall's return value
// (rax as the kernel left it at a stop: the code negated), or 0 when rax
// holds none.
func RestartCode(rax uint64) int {
	switch v := -int64(rax); v {
	case ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK:
		return int(v)
	}
	return 0
}
