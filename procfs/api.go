// Package procfs reads the /proc files mmcr needs: maps and smaps, stat,
// status, auxv, task and children lists, fd and fdinfo, pagemap. Readers are
// built on a proc root so they can be tested against a fixture tree.
//
// Every parse failure wraps ErrParse and names the file; a missing process
// surfaces as the *fs.PathError of the file that could not be opened
// (errors.Is(err, fs.ErrNotExist)).
package procfs

import (
	"errors"
	"path/filepath"
	"strconv"
)

// ErrParse wraps every parse failure.
var ErrParse = errors.New("procfs: parse error")

// FS is a proc filesystem mounted at Root.
type FS struct{ Root string }

// Default is the host's /proc.
var Default = FS{Root: "/proc"}

// path joins the root, the pid and the file names: fs.path(42, "fd", "3").
func (fs FS) path(pid int, elem ...string) string {
	return filepath.Join(append([]string{fs.Root, strconv.Itoa(pid)}, elem...)...)
}

// Mapping is one entry of /proc/PID/smaps (maps line plus VmFlags and the
// counters mmcr uses).
type Mapping struct {
	Start, End uint64
	Prot       uint32 // PROT_READ|PROT_WRITE|PROT_EXEC from "rwx"
	Shared     bool   // 's' in perms, else 'p'
	Pgoff      uint64 // bytes
	DevMajor   uint32
	DevMinor   uint32
	Ino        uint64
	// Path is the pathname column: "", "[heap]", "[anon:name]",
	// "/x (deleted)", "/dev/zero (deleted)", ... A hint only: the kernel
	// writes a newline in a name as "\012" and escapes nothing else, so
	// the exact file comes from /proc/PID/map_files (package mapfiles).
	Path    string
	VmFlags []string // "rd", "wr", "gd", "dc", ...
	// Counters from smaps, in bytes (0 when the line is absent).
	Rss, Anonymous, Swap uint64
	// KernelPageSize is the size of the VMA's pages: 4096, or a huge page
	// size for hugetlb (0 when the line is absent).
	KernelPageSize uint64
}

// Stat holds the fields of /proc/PID/stat mmcr uses. The mm fields
// (StartCode ... EnvEnd) read as 0 unless the reader may ptrace pid.
type Stat struct {
	Comm               string
	State              byte
	PPID, PGID, SID    int
	Flags              uint32 // PF_* flags
	NumThreads         int
	StartTime          uint64 // clock ticks after boot: with pid, names a process uniquely
	StartCode, EndCode uint64
	StartStack         uint64
	StartData, EndData uint64
	StartBrk           uint64
	ArgStart, ArgEnd   uint64
	EnvStart, EnvEnd   uint64
	ExitSignal         int
	// ExitCode is a zombie's wait status (exit code << 8, or the fatal
	// signal); 0 unless the reader may ptrace pid.
	ExitCode int
}

// Status holds the fields of /proc/PID/status mmcr uses.
type Status struct {
	Name                   string
	State                  byte
	Tgid, PPid             int
	Umask                  uint32
	UID, GID               [4]uint32 // real, effective, saved, fs
	Groups                 []uint32
	NSpid                  []int // pid in each pid namespace, outermost first
	Threads                int
	SigPnd, ShdPnd         uint64
	SigBlk, SigIgn, SigCgt uint64
	CapInh, CapPrm, CapEff uint64
	CapBnd, CapAmb         uint64
	NoNewPrivs             bool
	Seccomp                int
	// THPDisabled: the "THP_enabled" line reads 0 (prctl PR_SET_THP_DISABLE).
	THPDisabled bool
	// VmLck is the task's locked memory in bytes (mlock, mlockall).
	VmLck uint64
}

// FD describes one entry of /proc/PID/fd with its fdinfo.
type FD struct {
	Num    int
	Target string // readlink of /proc/PID/fd/N
	Flags  int    // fdinfo "flags" (octal)
	Pos    int64  // fdinfo "pos"
	MntID  int
	Ino    uint64 // fdinfo "ino" (0 on kernels without it)

	// Eventfd is set for an eventfd ("eventfd-count" line).
	Eventfd *EventfdInfo
	// Signalfd is set for a signalfd ("sigmask" line): its mask.
	Signalfd *uint64
	// Timerfd is set for a timerfd ("clockid" line).
	Timerfd *TimerfdInfo
	// Inotify are an inotify fd's watches ("inotify wd:" lines).
	Inotify []InotifyMark
	// PidfdPID is set for a pidfd ("Pid" line): its process, -1 once it
	// has ended and been reaped.
	PidfdPID *int
	// EpollTargets are an epoll fd's "tfd:" lines, in order.
	EpollTargets []EpollTarget
	// Locks are the file locks on the fd's open file ("lock:" lines),
	// requests still waiting for one left out.
	Locks []FileLock
}

// FileLock is a lock on an open file, as fdinfo's "lock:" line tells it.
type FileLock struct {
	Kind  string // "FLOCK", "POSIX", "OFDLCK", "LEASE", "DELEG"...
	Write bool   // WRITE (exclusive); else READ (shared)
	PID   int    // the process that took it (0 for an OFD lock)
	Start int64
	End   int64 // the last byte, -1 for EOF (to the end of the file)
}

// InotifyMark is one watch of an inotify fd, as its fdinfo line tells it:
// "inotify wd:%x ino:%x sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x
// fhandle-type:%x f_handle:HEX".
type InotifyMark struct {
	WD          int32
	Ino         uint64
	Sdev        uint32 // the kernel's dev_t of the inode's filesystem (major<<20 | minor)
	Mask        uint32 // the events and IN_ONESHOT, IN_EXCL_UNLINK...
	IgnoredMask uint32
	HandleType  int32
	Handle      []byte // the inode's file handle (open_by_handle_at)
}

// TimerfdInfo is what a timerfd's fdinfo tells.
type TimerfdInfo struct {
	Clock        int32  // "clockid"
	Ticks        uint64 // "ticks": expirations not read yet
	SettimeFlags uint32 // "settime flags" (octal): TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET
	// ValueNsec is the time left to the next expiry ("it_value": 0 when
	// disarmed, or when a periodic timer expired and was not read since),
	// IntervalNsec its period ("it_interval").
	ValueNsec, IntervalNsec int64
}

// EventfdInfo is what an eventfd's fdinfo tells.
type EventfdInfo struct {
	Count     uint64 // "eventfd-count" (hex)
	Semaphore bool   // "eventfd-semaphore: 1" (Linux 6.6+; false before)
}

// EpollTarget is one "tfd: N events: HEX data: HEX pos:P ino:HEX sdev:HEX"
// line of an epoll fd's fdinfo: a registration of fd N of the owner.
type EpollTarget struct {
	FD     int
	Events uint32
	Data   uint64
	Ino    uint64 // the target file's inode, to tell a reused fd number
}

// PageRange is a run of pages [Start, End) of one category; addresses,
// page-aligned.
type PageRange struct {
	Start, End uint64
}
