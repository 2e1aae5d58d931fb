// Package procfs reads the /proc files mmcr needs: maps and smaps, stat,
// status, auxv, task and children lists, fd and fdinfo, pagemap. Readers are
// built on a proc root so they can be tested against a fixture tree.
package procfs

import "errors"

// API contract (implemented by the procfs owner).

var errTODO = errors.New("procfs: not implemented yet")

// ErrParse wraps every parse failure.
var ErrParse = errors.New("procfs: parse error")

// FS is a proc filesystem mounted at Root.
type FS struct{ Root string }

// Default is the host's /proc.
var Default = FS{Root: "/proc"}

// Mapping is one line of /proc/PID/smaps (maps line plus VmFlags).
type Mapping struct {
	Start, End uint64
	Prot       uint32 // PROT_READ|PROT_WRITE|PROT_EXEC from "rwx"
	Shared     bool   // 's' in perms, else 'p'
	Pgoff      uint64 // bytes
	DevMajor   uint32
	DevMinor   uint32
	Ino        uint64
	Path       string   // pathname column, may be "", "[heap]", "/x (deleted)", ...
	VmFlags    []string // "rd", "wr", "gd", "dc", ...
}

// Mappings reads /proc/PID/smaps.
func (fs FS) Mappings(pid int) ([]Mapping, error) { return nil, errTODO }

// Stat holds the fields of /proc/PID/stat mmcr uses.
type Stat struct {
	Comm               string
	State              byte
	PPID, PGID, SID    int
	StartCode, EndCode uint64
	StartStack         uint64
	StartData, EndData uint64
	StartBrk           uint64
	ArgStart, ArgEnd   uint64
	EnvStart, EnvEnd   uint64
	ExitSignal         int
}

// Stat reads /proc/PID/stat.
func (fs FS) Stat(pid int) (Stat, error) { return Stat{}, errTODO }

// Status holds the fields of /proc/PID/status mmcr uses.
type Status struct {
	Tgid                   int
	Umask                  uint32
	UID, GID               [4]uint32 // real, effective, saved, fs
	Groups                 []uint32
	CapInh, CapPrm, CapEff uint64
	CapBnd, CapAmb         uint64
	NoNewPrivs             bool
	Seccomp                int
}

// Status reads /proc/PID/status.
func (fs FS) Status(pid int) (Status, error) { return Status{}, errTODO }

// Threads lists /proc/PID/task.
func (fs FS) Threads(pid int) ([]int, error) { return nil, errTODO }

// Children reads /proc/PID/task/TID/children.
func (fs FS) Children(pid, tid int) ([]int, error) { return nil, errTODO }

// Auxv reads /proc/PID/auxv as 64-bit words.
func (fs FS) Auxv(pid int) ([]uint64, error) { return nil, errTODO }

// Personality reads /proc/PID/personality.
func (fs FS) Personality(pid int) (uint32, error) { return 0, errTODO }

// FD describes one entry of /proc/PID/fd with its fdinfo.
type FD struct {
	Num    int
	Target string // readlink of /proc/PID/fd/N
	Flags  int    // fdinfo "flags" (octal)
	Pos    int64  // fdinfo "pos"
	MntID  int
}

// FDs lists the open descriptors of pid with their fdinfo.
func (fs FS) FDs(pid int) ([]FD, error) { return nil, errTODO }

// PageRange is a run of pages [Start, End) of one category.
type PageRange struct {
	Start, End uint64
}

// AnonPages returns the runs of pages in [start, end) of pid's address space
// that hold private data: present or swapped, not the zero page, and not a
// page-cache (file) page; i.e. private anonymous pages and the COW copies in
// private file mappings. It uses the PAGEMAP_SCAN ioctl on /proc/PID/pagemap
// and falls back to reading pagemap entries when the kernel lacks it.
func (fs FS) AnonPages(pid int, start, end uint64) ([]PageRange, error) { return nil, errTODO }
