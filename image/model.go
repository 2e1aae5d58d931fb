package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// This file holds the in-memory description of a dumped process tree: what
// dump/ produces, what Writer encodes into CRIU images, what Reader decodes,
// and what restore/ consumes. It is plain data: no kernel calls.
//
// Page contents are not part of the description. They are streamed through
// PageWriter at dump and read back through Reader.Pages / Reader.ShmemPages.

// PageSize is the page size mmcr works with (x86-64).
const PageSize = 4096

// Tree is a whole dumped process tree.
type Tree struct {
	// Tasks in tree order: the root first, every parent before its children
	// (pre-order). Restore creates tasks and shared objects in this order.
	Tasks []*Task
	// Files are the files behind file-backed VMAs, the exe links, cwd/root
	// and regular-file descriptors. Each is referred to by its ID.
	Files []*File
	// SharedObjects are the MAP_SHARED anonymous (shmem) and memfd objects,
	// one per inode across all tasks. Their pages are in the shmem pagemaps.
	SharedObjects []*SharedObject
	// Pipes are the pipes whose ends the tree's tasks hold, with the bytes
	// unread in them at dump.
	Pipes []*Pipe
	// Sockets are the ends of the unix socket pairs the tree holds, with
	// what waits to be read at each.
	Sockets []*UnixSocket
	// InetSockets are the TCP sockets listening on an IPv4 or IPv6
	// address, and the UDP sockets, that the tree holds.
	InetSockets []*InetSocket
}

// Pipe is one pipe held by the tree: a pipefs inode, or a named pipe
// (a FIFO of a file system).
type Pipe struct {
	ID  uint32 // dense: Pipes[i].ID == i+1, numbered in order of first use
	Ino uint32 // its inode at dump, pipe:[Ino] for a pipe; CRIU's pipe_id
	// FileID is a FIFO's file (its path); 0 for a pipe.
	FileID uint32
	// Size is its capacity in bytes (F_GETPIPE_SZ).
	Size uint32
	// Data are the bytes written and not yet read, in order.
	Data []byte
}

// PipeByID returns the pipe with the given ID, or nil.
func (t *Tree) PipeByID(id uint32) *Pipe {
	if id == 0 || int(id) > len(t.Pipes) {
		return nil
	}
	return t.Pipes[id-1]
}

// Task is one process (thread group).
type Task struct {
	PID, PPID, PGID, SID int
	Comm                 string
	// Stopped: the task was in a job-control stop (SIGSTOP, SIGTSTP...)
	// at dump, CRIU's task_state TASK_STOPPED; restore leaves it stopped.
	Stopped bool
	// Zombie: the task had exited and its parent had not yet reaped it
	// (CRIU's task_state TASK_DEAD). All that is left of it is its pid,
	// its place in the tree and ExitStatus, which its parent's wait
	// collects: it has one thread (TID only), no memory, no fds, no
	// children, and is never the root.
	Zombie bool
	// ExitStatus is a zombie's status as wait reports it: the exit code
	// shifted left by 8, or the number of the signal that killed it
	// (0x80 added when it dumped core).
	ExitStatus int

	// Threads holds every thread; Threads[0] is the leader (TID == PID).
	Threads []*Thread

	Mm Mm
	// ChildSubreaper is prctl(PR_SET_CHILD_SUBREAPER): orphans below the
	// task are reparented to it rather than to init.
	ChildSubreaper bool
	// VMAs sorted by Start, not overlapping, as in /proc/PID/maps.
	VMAs []*VMA

	FDs []*FD
	// CwdFileID and RootFileID refer to directory entries of Tree.Files.
	CwdFileID, RootFileID uint32

	Creds       Creds
	Umask       uint32
	Personality uint32
	// Rlimits indexed by resource (RLIMIT_CPU = 0 ... RLIMIT_RTTIME = 15).
	Rlimits []unix.Rlimit
	// SigActions indexed by signal number - 1 (1..64); SIGKILL and SIGSTOP
	// entries are zero.
	SigActions []SigAction
	// Itimers: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
	Itimers [3]Itimer
	// PosixTimers are the task's POSIX timers, by ID.
	PosixTimers []PosixTimer
	// CoredumpFilter is /proc/PID/coredump_filter (which mappings a core
	// dump holds) when it differed from the default mmcr itself had; nil:
	// the default.
	CoredumpFilter *uint32
	// SharedPending are process-wide pending signals (raw siginfo).
	SharedPending []SigInfo

	// OomScoreAdj is /proc/PID/oom_score_adj, -1000..1000 (per process);
	// nil in images written before mmcr kept it: restore then leaves the
	// task's as it comes.
	OomScoreAdj *int

	// ParentPages are the pages of FromParent VMAs that were still shared
	// copy-on-write with the parent at dump (one physical page in both
	// tasks): their content is the parent's, stored once, in the parent's
	// pages. Sorted, not overlapping, page-aligned, each inside one
	// FromParent VMA, disjoint from the task's own dumped pages.
	ParentPages []Range
	// Guards are the task's guard regions (madvise MADV_GUARD_INSTALL):
	// pages of a VMA that raise SIGSEGV when touched, which glibc 2.42+
	// puts below every thread stack. Sorted, not overlapping,
	// page-aligned, each inside one VMA; they hold no dumped page.
	Guards []Range
}

// Range is the address range [Start, End), page-aligned.
type Range struct{ Start, End uint64 }

// Thread is the per-thread state.
type Thread struct {
	TID int
	// Regs as PTRACE_GETREGS returned them at freeze. A task stopped inside
	// a syscall has OrigRax >= 0 and a -ERESTART* code or result in Rax;
	// restore turns that into a restart.
	Regs unix.PtraceRegs
	// Xsave is the raw NT_X86_XSTATE regset (FPU, SSE, AVX, ...).
	Xsave    []byte
	SigMask  uint64
	AltStack SigAltStack
	// Pending are this thread's private pending signals (raw siginfo).
	Pending []SigInfo
	Rseq    Rseq
	// Comm is the thread's own name (/proc/PID/task/TID/comm); "" in
	// images that lack it: the task's Comm then.
	Comm string
	// ClearTID is the thread's clear_child_tid address (set_tid_address,
	// CLONE_CHILD_CLEARTID): the word the kernel zeroes and futex-wakes
	// when the thread exits, which pthread_join waits on. 0: none.
	ClearTID uint64
	// RobustList is the thread's robust futex list head and its length
	// (set_robust_list), which the kernel walks when the thread dies
	// holding robust mutexes. Head 0: none registered.
	RobustList    uint64
	RobustListLen uint32
	// Seccomp are the thread's seccomp filters, the first installed
	// first; none: the thread is not in filter mode.
	Seccomp []SeccompFilter
	// IOPrio is the thread's I/O priority (ioprio_set: class << 13 |
	// level), 0 when it has none of its own (IOPRIO_CLASS_NONE).
	IOPrio uint32
	// CPUAffinity is the thread's CPU mask (sched_setaffinity), 64 CPUs
	// a word, when it was kept to some of the machine's online CPUs; nil:
	// any CPU.
	CPUAffinity []uint64
	// PdeathSig is the signal the thread gets when its parent dies
	// (prctl PR_SET_PDEATHSIG; per thread); 0: none.
	PdeathSig uint32
	// Sched is the thread's scheduling state; nil in images written
	// before mmcr kept it: restore then leaves the thread's as it comes.
	Sched *Sched
	// TimerSlackNs is the thread's timer slack (prctl PR_GET_TIMERSLACK):
	// how late the kernel may fire its timers to batch wakeups. 0: not
	// recorded (an older image) or none (a real-time thread).
	TimerSlackNs uint64
	// MemPolicy is the thread's NUMA memory policy (set_mempolicy), nil
	// for the default (MPOL_DEFAULT) or where the kernel has no NUMA.
	MemPolicy *MemPolicy
}

// MemPolicy is a NUMA memory policy as get_mempolicy tells it.
type MemPolicy struct {
	// Mode is MPOL_* with its MPOL_F_* flags.
	Mode uint32
	// Nodes is the node mask, 64 nodes a word (MemPolicyNodeWords words at
	// most).
	Nodes []uint64
}

// String says p as numa_maps does, "bind=static:0,2"; "" for nil.
func (p *MemPolicy) String() string {
	if p == nil {
		return ""
	}
	const static, relative, balancing = 1 << 15, 1 << 14, 1 << 13
	names := []string{"default", "prefer", "bind", "interleave", "local", "prefer-many", "weighted-interleave"}
	mode := p.Mode &^ (static | relative | balancing)
	s := fmt.Sprintf("mode%d", mode)
	if int(mode) < len(names) {
		s = names[mode]
	}
	var flags []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{static, "static"}, {relative, "relative"}, {balancing, "balancing"}} {
		if p.Mode&f.bit != 0 {
			flags = append(flags, f.name)
		}
	}
	if len(flags) > 0 {
		s += "=" + strings.Join(flags, "|")
	}
	var nodes []string
	for w, bits := range p.Nodes {
		for i := range 64 {
			if bits&(1<<i) != 0 {
				nodes = append(nodes, strconv.Itoa(64*w+i))
			}
		}
	}
	if len(nodes) > 0 {
		s += ":" + strings.Join(nodes, ",")
	}
	return s
}

// MemPolicyNodeWords is how many words of node mask an image may hold:
// 512 nodes.
const MemPolicyNodeWords = 8

// checkMemPolicy checks a memory policy: a mode up to MPOL_WEIGHTED_INTERLEAVE
// (6), the flags set_mempolicy takes, a mask of MemPolicyNodeWords words
// at most.
func checkMemPolicy(p *MemPolicy) error {
	if p == nil {
		return nil
	}
	const flags = 1<<15 | 1<<14 | 1<<13 // MPOL_F_STATIC_NODES, _RELATIVE_NODES, _NUMA_BALANCING
	if mode := p.Mode &^ flags; mode == 0 || mode > 6 || len(p.Nodes) > MemPolicyNodeWords {
		return fmt.Errorf("memory policy mode %#x with %d mask words", p.Mode, len(p.Nodes))
	}
	return nil
}

// Sched is a thread's scheduling state, as CRIU's thread core keeps it.
type Sched struct {
	// Policy is what sched_getscheduler reports: SCHED_OTHER, SCHED_FIFO,
	// SCHED_RR, SCHED_BATCH or SCHED_IDLE, with SCHED_RESET_ON_FORK OR'ed
	// in when the thread's children are not to inherit a real-time policy
	// or a negative nice value.
	Policy uint32
	// Prio is the real-time priority: 1..99 under SCHED_FIFO and
	// SCHED_RR, 0 under the others.
	Prio uint32
	// Nice is -20..19, under every policy: the kernel keeps it for a
	// real-time thread too, and uses it again if the thread leaves
	// real-time.
	Nice int32
}

// Scheduling policies an image may hold (linux/sched.h). SCHED_DEADLINE
// and SCHED_EXT are not among them: dump refuses them.
const (
	SchedOther       = 0
	SchedFIFO        = 1
	SchedRR          = 2
	SchedBatch       = 3
	SchedIdle        = 5
	SchedResetOnFork = 0x40000000
)

// check reports what makes s a state no thread can have, or nil.
func (s *Sched) check() error {
	switch s.Policy &^ SchedResetOnFork {
	case SchedFIFO, SchedRR:
		if s.Prio < 1 || s.Prio > 99 {
			return fmt.Errorf("real-time priority %d under policy %d, want 1..99", s.Prio, s.Policy&^SchedResetOnFork)
		}
	case SchedOther, SchedBatch, SchedIdle:
		if s.Prio != 0 {
			return fmt.Errorf("real-time priority %d under policy %d, want 0", s.Prio, s.Policy&^SchedResetOnFork)
		}
	default:
		return fmt.Errorf("scheduling policy %#x", s.Policy)
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("nice %d, want -20..19", s.Nice)
	}
	return nil
}

// checkOomScoreAdj reports an oom_score_adj outside the kernel's range.
func checkOomScoreAdj(v int) error {
	if v < -1000 || v > 1000 {
		return fmt.Errorf("oom_score_adj %d, want -1000..1000", v)
	}
	return nil
}

// SigInfo is a raw 128-byte kernel siginfo_t, as PTRACE_PEEKSIGINFO gives it.
type SigInfo [128]byte

// SigAction is a kernel struct sigaction (rt_sigaction ABI, x86-64).
type SigAction struct {
	Handler  uint64 // SIG_DFL = 0, SIG_IGN = 1, or an address
	Flags    uint64 // SA_*
	Restorer uint64
	Mask     uint64
}

// SigAltStack is a stack_t.
type SigAltStack struct {
	SP    uint64
	Flags int32
	Size  uint64
}

// Rseq is the thread's rseq registration; Addr == 0 means none.
type Rseq struct {
	Addr uint64
	Len  uint32
	Sig  uint32
}

// Itimer is a struct itimerval in microseconds.
type Itimer struct {
	IntervalUsec, ValueUsec int64
}

// PosixTimer is a POSIX timer of the task (timer_create), as restore
// makes it again: with its id, clock, how it notifies, and its interval
// and time left (nanoseconds; ValueNsec 0: disarmed) at dump.
type PosixTimer struct {
	ID    int32
	Clock int32
	// Notify is sigev_notify: SigevSignal, SigevNone or SigevThreadID
	// (to thread NotifyTID), with Signo and the sigev_value SigValue.
	Notify    int32
	Signo     int32
	SigValue  uint64
	NotifyTID int32
	// Overrun is the overrun count of the expiry whose signal is pending.
	Overrun                 int32
	IntervalNsec, ValueNsec int64
}

// Creds are a task's credentials.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32
	CapInh, CapPrm, CapEff uint64
	CapBnd, CapAmb         uint64
	NoNewPrivs             bool
	// Securebits is prctl(PR_GET_SECUREBITS): SECBIT_NOROOT and friends,
	// with their lock bits.
	Securebits uint32
}

// Mm holds the mm_struct fields restore sets with PR_SET_MM_MAP.
type Mm struct {
	StartCode, EndCode uint64
	StartData, EndData uint64
	StartBrk, Brk      uint64 // Brk is the current brk (brk(0) in the task)
	StartStack         uint64
	ArgStart, ArgEnd   uint64
	EnvStart, EnvEnd   uint64
	Auxv               []uint64 // pairs of (type, value), ending with AT_NULL
	ExeFileID          uint32
	Dumpable           int32
	// THPDisabled is prctl(PR_SET_THP_DISABLE, 1): no transparent huge
	// pages for the task (status THP_enabled: 0). THPExceptAdvised is the
	// Linux 6.18 variant (PR_THP_DISABLE_EXCEPT_ADVISED): none but where
	// madvise(MADV_HUGEPAGE) asked; THPDisabled is then false.
	THPDisabled      bool
	THPExceptAdvised bool
	// MDWE is prctl(PR_GET_MDWE): memory-deny-write-execute flags the
	// task set on itself (Linux 6.3+; 0 on older kernels).
	MDWE uint32
	// MergeAny is prctl(PR_GET_MEMORY_MERGE): KSM may merge every
	// mergeable mapping of the task, those it makes later included (false
	// on kernels without KSM).
	MergeAny bool
	// AIORings are the task's AIO contexts (io_setup), one per KindAIORing
	// VMA but those inherited from the parent (FromParent), in address
	// order.
	AIORings []AIORing
	// MlockFuture is the mlockall(2) flags that lock the task's later
	// mappings: MCL_FUTURE, with MCL_ONFAULT when they lock only the pages
	// faulted in; 0 when the task never asked. (MCL_CURRENT leaves no state
	// of its own: the VMAs it locked say "lo".)
	MlockFuture uint32
	// Membarrier is the membarrier(2) registrations of the task's memory
	// (MEMBARRIER_CMD_GET_REGISTRATIONS): a mask of the
	// MEMBARRIER_CMD_REGISTER_* commands it issued, without which the
	// matching expedited barriers fail with EPERM.
	Membarrier uint32
}

// AIORing is an AIO context: its ring is mapped at Addr (which is also the
// context's id, aio_context_t), Len bytes; NrReq is the io_setup request
// count that makes a ring of that size (CRIU's aio_ring_entry).
type AIORing struct {
	Addr, Len uint64
	NrReq     uint32
}

// checkAIORings checks that t's AIO contexts and its own KindAIORing VMAs
// (not a fork's copies of its parent's, FromParent) are one to one, with
// the same bounds.
func checkAIORings(t *Task) error {
	var vmas []*VMA
	for _, v := range t.VMAs {
		if v.Kind == KindAIORing && !v.FromParent {
			vmas = append(vmas, v)
		}
	}
	if len(vmas) != len(t.Mm.AIORings) {
		return fmt.Errorf("task %d: %d AIO ring VMAs for %d AIO contexts", t.PID, len(vmas), len(t.Mm.AIORings))
	}
	for i, r := range t.Mm.AIORings {
		if v := vmas[i]; r.Addr != v.Start || r.Len != v.Len() || r.NrReq == 0 || r.Len > 1<<32-1 {
			return fmt.Errorf("task %d: AIO context %#x (%d bytes, %d requests) does not match its ring VMA %#x-%#x",
				t.PID, r.Addr, r.Len, r.NrReq, v.Start, v.End)
		}
	}
	return nil
}

// checkMembarrier checks Mm.Membarrier.
func checkMembarrier(m uint32) error {
	if m&^kernel.MembarrierRegisterCmds != 0 {
		return fmt.Errorf("membarrier registrations %#x hold more than the register commands", m)
	}
	return nil
}

// checkMlockFuture checks Mm.MlockFuture: mlockall would take other bits
// (MCL_CURRENT) as a request to lock what the task has now.
func checkMlockFuture(f uint32) error {
	if f != 0 && f != unix.MCL_FUTURE && f != unix.MCL_FUTURE|unix.MCL_ONFAULT {
		return fmt.Errorf("mlock_future %#x is not MCL_FUTURE, with or without MCL_ONFAULT", f)
	}
	return nil
}

// VMAKind says what backs a VMA and how restore recreates it.
type VMAKind int

const (
	KindPrivateAnon VMAKind = iota // MAP_PRIVATE|MAP_ANONYMOUS, incl. [anon:name]
	KindSharedAnon                 // MAP_SHARED|MAP_ANONYMOUS: "/dev/zero (deleted)"; ShmID set
	KindMemfd                      // MAP_SHARED of a memfd: "/memfd:NAME (deleted)"; ShmID set
	KindPrivateFile                // MAP_PRIVATE of a file; FileID set
	KindSharedFile                 // MAP_SHARED of a file; FileID set
	KindHeap                       // [heap]
	KindStack                      // [stack]
	KindVDSO                       // [vdso]
	KindVVAR                       // [vvar]
	KindVVARVclock                 // [vvar_vclock]
	KindVsyscall                   // [vsyscall]: not restored, it is the kernel's
	KindAIORing                    // "/[aio] (deleted)": an io_setup ring; Mm.AIORings has its context
)

var kindNames = [...]string{"private-anon", "shared-anon", "memfd", "private-file", "shared-file",
	"heap", "stack", "vdso", "vvar", "vvar_vclock", "vsyscall", "aio-ring"}

func (k VMAKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// VMA is one virtual memory area.
type VMA struct {
	Start, End uint64 // page-aligned, Start < End
	// Pgoff is the offset into the file or shared object, in bytes.
	Pgoff uint64
	Prot  uint32 // PROT_*
	Flags uint32 // MAP_PRIVATE or MAP_SHARED, plus MAP_ANONYMOUS, MAP_GROWSDOWN, MAP_HUGETLB with its MAP_HUGE_* size, ...
	Kind  VMAKind
	// Madv is a bitmap of madvise advice that must be reapplied: bit N set
	// means madvise(MADV = N) (MADV_DONTFORK, MADV_DONTDUMP, MADV_HUGEPAGE,
	// MADV_NOHUGEPAGE, MADV_MERGEABLE, MADV_WIPEONFORK, MADV_SEQUENTIAL,
	// MADV_RANDOM), as CRIU's vma_entry.madv.
	Madv uint64
	// VmFlags are the two-letter flags of smaps ("rd", "wr", "gd", ...),
	// kept for show and checks.
	VmFlags []string
	// FileID refers to Tree.Files for file-backed kinds; 0 otherwise.
	FileID uint32
	// ShmID refers to Tree.SharedObjects for KindSharedAnon/KindMemfd; 0 otherwise.
	ShmID uint32
	// Name is the pathname column of /proc/PID/maps: a hint only.
	Name string
	// FromParent says the task's parent (in the tree) has a VMA this one
	// can be the fork's copy of (Inheritable: private anonymous, same or
	// a part of its range, same attributes, kept across fork) and the
	// task still shared some of its pages with the parent at dump.
	// Restore then makes the task by fork once the parent's memory is in
	// place, keeps this range of the inherited VMA, with the parent's
	// pages where Task.ParentPages says so, writes the task's own dumped
	// pages over it and discards (MADV_DONTNEED) every other page: memory
	// that was shared copy-on-write is shared again, and stored once.
	FromParent bool
	// MemPolicy is the NUMA memory policy of the range (mbind), nil for
	// none (the thread's policy applies). For shared memory it is the
	// object's policy at the VMA's start.
	MemPolicy *MemPolicy
}

// Len is the VMA's length in bytes.
func (v *VMA) Len() uint64 { return v.End - v.Start }

// HugePageSize is the size of the pages of a hugetlb VMA (MAP_HUGETLB, with
// the size's log2 in the MAP_HUGE_* bits of Flags; a memfd's VMA has them
// too, though mmap needs them only for anonymous memory); 0 for any other
// VMA.
func (v *VMA) HugePageSize() uint64 {
	if v.Flags&unix.MAP_HUGETLB == 0 {
		return 0
	}
	return 1 << (v.Flags >> unix.MAP_HUGE_SHIFT & unix.MAP_HUGE_MASK)
}

// checkHugetlb checks a VMA against hugetlb (so, the shared object it
// maps, or nil): anonymous memory, private or shared, or a memfd (the
// hugetlb dump takes), of pages of a size between 64 KiB and 16 GiB that
// its bounds and offset are aligned to, and, shared, of an object of that
// page size; and no VMA of a hugetlb object without it.
func checkHugetlb(v *VMA, so *SharedObject) error {
	objSize := uint64(0)
	if so != nil {
		objSize = so.HugePageSize
	}
	if v.Flags&unix.MAP_HUGETLB == 0 {
		if objSize != 0 {
			return fmt.Errorf("VMA %#x-%#x maps hugetlb object %d without hugetlb flags", v.Start, v.End, so.ID)
		}
		return nil
	}
	shift := v.Flags >> unix.MAP_HUGE_SHIFT & unix.MAP_HUGE_MASK
	if (v.Kind != KindPrivateAnon && v.Kind != KindSharedAnon && v.Kind != KindMemfd) || shift < 16 || shift > 34 {
		return fmt.Errorf("VMA %#x-%#x: hugetlb flags %#x on a %s VMA", v.Start, v.End, v.Flags, v.Kind)
	}
	size := v.HugePageSize()
	if v.Start%size != 0 || v.End%size != 0 || v.Pgoff%size != 0 {
		return fmt.Errorf("VMA %#x-%#x: not aligned to its %d-byte huge pages", v.Start, v.End, size)
	}
	if v.Kind != KindPrivateAnon && objSize != size {
		return fmt.Errorf("VMA %#x-%#x of %d-byte huge pages maps an object of %d-byte pages", v.Start, v.End, size, objSize)
	}
	return nil
}

// checkSharedHugetlb checks a shared object's huge page size: 0, or a
// power of two between 64 KiB and 16 GiB that the object's size is a
// multiple of.
func checkSharedHugetlb(so *SharedObject) error {
	h := so.HugePageSize
	if h == 0 {
		return nil
	}
	if h&(h-1) != 0 || h < 1<<16 || h > 1<<34 || so.Size%h != 0 {
		return fmt.Errorf("shared object %d: huge page size %d for an object of %d bytes", so.ID, h, so.Size)
	}
	return nil
}

// File is a file's identity at dump time, as fstat of the very inode
// (through /proc/PID/map_files or /proc/PID/fd) reported it.
type File struct {
	ID   uint32 // >= 1; Tree.Files[ID-1]
	Path string // absolute path at dump, without a " (deleted)" suffix
	Dev  uint64 // st_dev
	Ino  uint64
	Mode uint32 // st_mode (type and permission bits)
	Size int64
	// Mtime in nanoseconds since the epoch.
	MtimeNsec int64
	UID, GID  uint32
	// Deleted: st_nlink was 0. Its content is in the image (a ghost file),
	// and restore recreates it.
	Deleted bool
	// Renamed: the path no longer names this inode (it names another file,
	// or nothing) although the inode is still linked somewhere.
	Renamed bool
}

// SharedObject is a shmem inode mapped MAP_SHARED by one or more VMAs of
// one or more tasks.
type SharedObject struct {
	ID   uint32 // >= 1; Tree.SharedObjects[ID-1]
	Dev  uint64 // at dump
	Ino  uint64 // at dump
	Size uint64 // st_size in bytes; every VMA maps [Pgoff, Pgoff+Len) of it
	// Memfd is set for memfd objects; Name is then the memfd name (without
	// the "memfd:" prefix).
	Memfd bool
	Name  string
	// HugePageSize is the page size of a hugetlb object (shared anonymous
	// memory of MAP_HUGETLB, a memfd of MFD_HUGETLB), 0 for shmem. Every
	// VMA of the object has it (VMA.HugePageSize).
	HugePageSize uint64
	// SysV is set for a SysV shared memory segment (shmget): its VMAs are
	// attachments of it (shmat), whole ones.
	SysV *SysVSegment
	// Seals are a memfd's seals (F_GET_SEALS: F_SEAL_SEAL, _SHRINK,
	// _GROW, _WRITE, _FUTURE_WRITE, _EXEC), Mode its permission bits and
	// UID, GID its owner; all 0 for other objects and in images of
	// mmcr-ext version 6 and before (then none is restored).
	Seals    uint32
	Mode     uint32
	UID, GID uint32
	// Length is a memfd's st_size at dump (Size rounds it up to whole
	// pages and covers every mapping); 0 where not recorded.
	Length uint64
}

// memfdSeals are the F_SEAL_* bits a memfd can hold.
const memfdSeals = 0x3f

// checkMemfdInode checks a shared object's seals, mode and owner: seals
// and permission bits only, and only on a memfd.
func checkMemfdInode(so *SharedObject) error {
	if !so.Memfd && (so.Seals != 0 || so.Mode != 0 || so.UID != 0 || so.GID != 0 || so.Length != 0) {
		return fmt.Errorf("shared object %d is no memfd but has seals %#x, mode %#o or owner %d:%d", so.ID, so.Seals, so.Mode, so.UID, so.GID)
	}
	if so.Seals&^memfdSeals != 0 || so.Mode&^0o7777 != 0 || so.Length > so.Size {
		return fmt.Errorf("memfd object %d: seals %#x, mode %#o, length %d of %d", so.ID, so.Seals, so.Mode, so.Length, so.Size)
	}
	return nil
}

// SysVSegment is what restore needs to attach a SysV segment again, or to
// make it again with the same id when it is gone.
type SysVSegment struct {
	Key int32 // IPC_PRIVATE (0) once removed
	ID  int32
	// Mode is the permission bits, with SHM_DEST (01000) when the segment
	// was removed (IPC_RMID) and lives on only while attached, and
	// SHM_LOCKED (02000) when it is locked in memory (shmctl SHM_LOCK).
	Mode     uint32
	UID, GID uint32
	// Size is the segment's size as shmget was asked (a hugetlb one's
	// object, SharedObject.Size, is whole huge pages).
	Size uint64
}

// shmDest and shmLocked are SHM_DEST and SHM_LOCKED of SysVSegment.Mode.
const (
	shmDest   = 0o1000
	shmLocked = 0o2000
)

// Removed reports a segment removed with IPC_RMID (SHM_DEST).
func (s *SysVSegment) Removed() bool { return s.Mode&shmDest != 0 }

// Locked reports a segment locked in memory (shmctl SHM_LOCK: SHM_LOCKED).
func (s *SysVSegment) Locked() bool { return s.Mode&shmLocked != 0 }

// checkSysV checks a shared object's SysV segment: an id, permission bits
// and SHM_DEST only, not a memfd, and a size that fills the object but for
// less than a page (of its huge pages for hugetlb).
func checkSysV(so *SharedObject) error {
	s := so.SysV
	if s == nil {
		return nil
	}
	page := uint64(PageSize)
	if so.HugePageSize != 0 {
		page = so.HugePageSize
	}
	if s.ID < 0 || s.Mode&^(0o777|shmDest|shmLocked) != 0 || so.Memfd || s.Size == 0 || s.Size > so.Size || so.Size-s.Size >= page {
		return fmt.Errorf("shared object %d of %d bytes: SysV segment %+v (memfd %v)", so.ID, so.Size, *s, so.Memfd)
	}
	return nil
}

// FDOwner is the owner of an open file description (fcntl F_GETOWN_EX and
// F_GETSIG): a thread, a process or a process group of the tree.
type FDOwner struct {
	Type   int // kernel.FOwnerTID, FOwnerPID or FOwnerPGRP
	PID    int // 0: no owner (a signal set alone)
	Signal int // F_SETSIG's signal; 0: SIGIO, without siginfo
	// UID and EUID are the credentials of whoever set the owner
	// (F_GETOWNER_UIDS), which the kernel checks before it signals;
	// CRIU's fown_entry keeps them. Restore sets the owner as mmcr.
	UID, EUID uint32
}

// FDKind says how restore recreates a file descriptor.
type FDKind int

const (
	FDRegular  FDKind = iota // a regular file; FileID set
	FDDir                    // a directory; FileID set
	FDCharDev                // a /dev/null-like character device; FileID set
	FDExternal               // fd 0-2 that is a pipe, tty or socket: restore gives its own stdio
	FDEventfd                // an eventfd: Eventfd set
	FDEpoll                  // an epoll instance: Epoll lists what it watches
	FDPipe                   // an end of one of Tree.Pipes: PipeID and OpenID set
	FDSocket                 // one of Tree.Sockets: SocketID and OpenID set
	FDSignalfd               // a signalfd: Signalfd set
	FDTimerfd                // a timerfd: Timerfd set
	FDInotify                // an inotify instance: Inotify lists its watches
	FDPidfd                  // a pidfd of a task of the tree: PidfdPID set
	FDInet                   // one of Tree.InetSockets, a TCP listener or UDP socket: InetID set
)

// lastFDKind is the highest FDKind a valid image holds.
const lastFDKind = FDInet

// Eventfd is an eventfd's state (fdinfo "eventfd-count", "eventfd-semaphore").
type Eventfd struct {
	Count     uint64
	Semaphore bool // EFD_SEMAPHORE
}

// Signalfd is a signalfd's state: the signals it reads (fdinfo "sigmask").
type Signalfd struct {
	Mask uint64
}

// Timerfd is a timerfd's state (its fdinfo).
type Timerfd struct {
	Clock int32 // CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME or an _ALARM one
	// Ticks are the expirations not read yet.
	Ticks uint64
	// SettimeFlags are TFD_TIMER_ABSTIME and TFD_TIMER_CANCEL_ON_SET.
	SettimeFlags uint32
	// ValueNsec is the time left to the next expiry at dump (0: disarmed,
	// or a periodic timer expired and not read since), IntervalNsec its
	// period (0: one-shot).
	ValueNsec, IntervalNsec int64
}

// InotifyWatch is one watch of an inotify instance: its descriptor, the
// events and flags it asks (IN_ONESHOT, IN_EXCL_UNLINK...), and the
// watched inode: its identity and file handle as the kernel gives them,
// and the path dump found it by.
type InotifyWatch struct {
	WD          int32
	Mask        uint32
	IgnoredMask uint32
	Ino         uint64
	Sdev        uint32 // the kernel's dev_t of its filesystem (major<<20 | minor)
	HandleType  int32
	Handle      []byte
	Path        string
}

// maxFileHandle is MAX_HANDLE_SZ: the largest file handle.
const maxFileHandle = 128

// checkInotify checks an inotify instance's watches: descriptors from 1,
// ascending, each on a path (absolute) with a file handle.
func checkInotify(ws []InotifyWatch) error {
	prev := int32(0)
	for _, w := range ws {
		if w.WD <= prev || !strings.HasPrefix(w.Path, "/") || len(w.Handle) == 0 || len(w.Handle) > maxFileHandle {
			return fmt.Errorf("inotify watch %d (after %d) on %q with a %d-byte handle", w.WD, prev, w.Path, len(w.Handle))
		}
		prev = w.WD
	}
	return nil
}

// checkTimerfd checks a timerfd's state: a clock timerfd_create takes,
// settime flags it knows, times that are not negative.
func checkTimerfd(t *Timerfd) error {
	switch t.Clock {
	case unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_REALTIME_ALARM, unix.CLOCK_BOOTTIME_ALARM:
	default:
		return fmt.Errorf("timerfd on clock %d", t.Clock)
	}
	if t.SettimeFlags&^3 != 0 || t.ValueNsec < 0 || t.IntervalNsec < 0 {
		return fmt.Errorf("timerfd settime flags %#x, value %d ns, interval %d ns", t.SettimeFlags, t.ValueNsec, t.IntervalNsec)
	}
	return nil
}

// EpollTarget is one registration of an epoll instance (fdinfo "tfd:"
// line): the watched fd of the same task, its event mask (EPOLLET,
// EPOLLONESHOT... included) and the user data epoll_wait hands back.
type EpollTarget struct {
	FD     int
	Events uint32
	Data   uint64
}

// FD is one open file descriptor.
type FD struct {
	Num    int
	Kind   FDKind
	FileID uint32
	Flags  int   // open flags from fdinfo (O_ACCMODE, O_APPEND, O_CLOEXEC, ...)
	Pos    int64 // file position
	// ExternalType names what an external fd was ("pipe", "tty", "socket").
	ExternalType string
	// Eventfd is set for FDEventfd, Signalfd for FDSignalfd, Timerfd for
	// FDTimerfd: the kinds restore makes in mmcr, whose fds the task then
	// takes (pidfd_getfd).
	Eventfd  *Eventfd
	Signalfd *Signalfd
	Timerfd  *Timerfd
	// Inotify are an FDInotify's watches, by ascending descriptor (also
	// made in mmcr).
	Inotify []InotifyWatch
	// PidfdPID is the task of the tree an FDPidfd refers to (made in
	// mmcr too, once the task exists).
	PidfdPID int
	// Epoll are an FDEpoll's registrations, each naming another fd of the
	// task, in fdinfo order. Restore adds them once every other fd is open.
	Epoll []EpollTarget
	// PipeID names the pipe of an FDPipe. Its end is Flags' access mode.
	PipeID uint32
	// SocketID names the socket of an FDSocket.
	SocketID uint32
	// InetID names the socket of an FDInet.
	InetID uint32
	// Owner is who the fd's open file description signals (F_SETOWN_EX,
	// F_SETSIG): with O_ASYNC in Flags, SIGIO when it becomes ready; a
	// socket's owner also gets SIGURG. Nil: no owner and no signal set.
	Owner *FDOwner
	// OpenID numbers the fd's open file description among the tree's when
	// other fds may share it: the fds (of any task) that share one (dup,
	// fork) have its OpenID, and share it again at restore, with its
	// offset and flags (O_NONBLOCK, O_APPEND). Every pipe or socket fd has one; a
	// regular file, directory, device or eventfd fd has one when it
	// shares its description, 0 when it is the description's only fd. OpenIDs are
	// numbered 1, 2... in order of first use (tasks in tree order, fds in
	// order): an image has one way to say it (NumberOpens).
	OpenID uint32
	// Locks are the file locks the fd's task holds through it (a regular
	// file's): flock and OFD locks (its open file description's) and the
	// task's own POSIX record locks.
	Locks []FileLock
}

// LockKind is how a file lock was taken, with CRIU's numbers (FL_*).
type LockKind uint32

const (
	LockPOSIX LockKind = 1 // fcntl F_SETLK, lockf: the process's
	LockFlock LockKind = 2 // flock: the open file description's
	LockOFD   LockKind = 4 // fcntl F_OFD_SETLK: the open file description's
)

// FileLock is one lock: shared or exclusive (Write), on bytes [Start,
// Start+Len), Len 0 meaning to the end of the file (a flock is whole).
type FileLock struct {
	Kind       LockKind
	Write      bool
	Start, Len int64
}

// TaskByPID returns the task of pid, or nil.
func (t *Tree) TaskByPID(pid int) *Task {
	for _, task := range t.Tasks {
		if task.PID == pid {
			return task
		}
	}
	return nil
}

// FileByID returns the file with the given ID, or nil. IDs are dense:
// Files[i].ID == i+1.
func (t *Tree) FileByID(id uint32) *File {
	if id == 0 || int(id) > len(t.Files) {
		return nil
	}
	return t.Files[id-1]
}

// SharedObjectByID returns the shared object with the given ID, or nil. IDs
// are dense: SharedObjects[i].ID == i+1.
func (t *Tree) SharedObjectByID(id uint32) *SharedObject {
	if id == 0 || int(id) > len(t.SharedObjects) {
		return nil
	}
	return t.SharedObjects[id-1]
}

var fdKindStrings = [...]string{"regular", "dir", "chardev", "external", "eventfd", "epoll", "pipe", "socket", "signalfd", "timerfd", "inotify", "pidfd", "inet"}

func (k FDKind) String() string {
	if k >= 0 && int(k) < len(fdKindStrings) {
		return fdKindStrings[k]
	}
	return "unknown"
}

// CheckExitStatus checks a zombie's wait status: an exit code (0-255),
// or a signal whose default action ends a task (with or without a core
// dump); a signal that stops, continues or is ignored cannot have.
func CheckExitStatus(ws int) error {
	sig := ws & 0x7f
	switch {
	case ws < 0 || ws > 0xffff:
	case sig == 0 && ws&0xff == 0:
		return nil
	case ws&^0xff == 0 && sig < 65 && !nonFatalSignals[sig]:
		return nil
	}
	return fmt.Errorf("exit status %#x is neither an exit code nor a fatal signal", ws)
}

// nonFatalSignals are those whose default action does not end a task.
var nonFatalSignals = map[int]bool{
	int(unix.SIGCHLD): true, int(unix.SIGCONT): true, int(unix.SIGSTOP): true, int(unix.SIGTSTP): true,
	int(unix.SIGTTIN): true, int(unix.SIGTTOU): true, int(unix.SIGURG): true, int(unix.SIGWINCH): true,
}

// checkZombies checks what a zombie may be: not the root, one thread, no
// memory or fds, a valid exit status, nobody's parent (a task's children
// go to a reaper as it exits).
func checkZombies(t *Tree) error {
	zombies := map[int]bool{}
	for i, task := range t.Tasks {
		if !task.Zombie {
			continue
		}
		switch {
		case i == 0:
			return fmt.Errorf("task %d: the root is a zombie", task.PID)
		case len(task.Threads) != 1 || len(task.VMAs) != 0 || len(task.FDs) != 0 || task.Stopped:
			return fmt.Errorf("zombie %d has threads, memory, fds or a stop", task.PID)
		}
		if err := CheckExitStatus(task.ExitStatus); err != nil {
			return fmt.Errorf("zombie %d: %w", task.PID, err)
		}
		zombies[task.PID] = true
	}
	for _, task := range t.Tasks {
		if zombies[task.PPID] {
			return fmt.Errorf("task %d: its parent %d is a zombie", task.PID, task.PPID)
		}
	}
	return nil
}

// SeccompFilter is one seccomp filter: its classic BPF program, an array
// of struct sock_filter (8 bytes each), and its SECCOMP_FILTER_FLAG_*
// flags (only LOG is kept by the kernel).
type SeccompFilter struct {
	Prog  []byte
	Flags uint32
}

// maxSeccompPath is the kernel's limit on the instructions of one
// thread's filters together (MAX_INSNS_PER_PATH, counting 4 more per
// filter).
const maxSeccompPath = 32768

// checkSeccomp checks a thread's filters as seccomp(2) would take them.
func checkSeccomp(fs []SeccompFilter) error {
	total := 0
	for i, f := range fs {
		n := len(f.Prog) / 8
		if len(f.Prog)%8 != 0 || n == 0 || n > 4096 {
			return fmt.Errorf("seccomp filter %d: %d bytes is not a program of 1 to 4096 instructions", i, len(f.Prog))
		}
		if f.Flags&^2 != 0 {
			return fmt.Errorf("seccomp filter %d: flags %#x (only LOG, 2, is kept)", i, f.Flags)
		}
		total += n + 4
	}
	if total > maxSeccompPath {
		return fmt.Errorf("seccomp filters of %d instructions in all, over the kernel's %d", total, maxSeccompPath)
	}
	return nil
}

// The sigev_notify values a POSIX timer may have (x/sys/unix lacks them):
// signal the process, nothing, or signal one thread.
const (
	SigevSignal   = 0
	SigevNone     = 1
	SigevThreadID = 4
)

// checkPosixTimers checks what timer_create and timer_settime would take.
func checkPosixTimers(task *Task) error {
	var prev int32 = -1
	for _, pt := range task.PosixTimers {
		if pt.ID <= prev {
			return fmt.Errorf("POSIX timer %d out of order", pt.ID)
		}
		prev = pt.ID
		okNotify := pt.Notify == SigevSignal || pt.Notify == SigevNone || pt.Notify == SigevThreadID
		if !okNotify || pt.Notify != SigevNone && (pt.Signo < 1 || pt.Signo > 64) || pt.Clock < 0 || pt.Clock > 11 ||
			pt.IntervalNsec < 0 || pt.ValueNsec < 0 || pt.Overrun < 0 {
			return fmt.Errorf("POSIX timer %d: notify %d, signal %d, clock %d, interval %d ns, value %d ns",
				pt.ID, pt.Notify, pt.Signo, pt.Clock, pt.IntervalNsec, pt.ValueNsec)
		}
		if pt.Notify == SigevThreadID && !task.hasThread(int(pt.NotifyTID)) {
			return fmt.Errorf("POSIX timer %d notifies thread %d, not one of the task's", pt.ID, pt.NotifyTID)
		}
	}
	return nil
}

func (t *Task) hasThread(tid int) bool {
	for _, th := range t.Threads {
		if th.TID == tid {
			return true
		}
	}
	return false
}
