package image

// The extension file mmcr-ext.json holds what CRIU's images cannot express.
// It is JSON (a single object), versioned by "format" and "version"; a
// reader refuses a version it does not know. See doc.go for the layout.

const (
	extFormat  = "mmcr-ext"
	extVersion = 1
	// extVersionCOW is written when a task shares memory copy-on-write
	// with its parent (from_parent VMAs, parent_pages): a reader of
	// version 1 would restore such a task with that memory missing.
	extVersionCOW = 2
	// extVersion3 is written when a task has guard regions ("guards") or
	// THP disabled but where advised ("thp_except_advised"): a reader of
	// an earlier version would restore those pages readable instead of
	// faulting, or that task with huge pages everywhere. It knows version 2.
	extVersion3 = 3
	// extVersion4 is written when a task locks its future mappings
	// ("mlock_future"), a shared object is hugetlb ("huge_page_size") or
	// a SysV segment ("sysv") or a thread has a NUMA memory policy
	// ("mempolicy"): a reader of an earlier version would
	// restore the task with its later memory unlocked, or the object as
	// shmem. It knows version 3.
	extVersion4 = 4
	// extVersion5 is written when a task holds a pipe or unix socket pair
	// ("pipe", "socket" fds) or an
	// fd shares its open file description with another (fdinfo entries
	// naming one file entry): a reader of an earlier version knows no
	// pipes and would part the sharers (their offset). It knows version 4.
	extVersion5 = 5
	// extVersion6 is written when the tree holds a zombie (a core whose
	// task_state is TASK_DEAD, and no mm, fs or fdinfo image for it) or a
	// thread with seccomp filters (seccomp.img), an fd holding a file
	// lock (filelocks.img), a task with POSIX timers (in its core) or a
	// thread kept to some CPUs ("cpus") or with an I/O priority ("ioprio"),
	// or a task's own coredump filter ("coredump_filter"): a
	// reader of an earlier version would refuse the zombie's task state
	// and the timers, and restore the thread without its filters or the
	// fd without its lock. It knows version 5.
	extVersion6 = 6
	// extVersion7 is written when a VMA has a NUMA memory policy of its
	// own (mbind; "mempolicy" in its ext VMA entry), a task registered
	// for membarrier commands ("membarrier") or a memfd with its seals,
	// mode and owner: a reader of an earlier version would restore the
	// range under the thread's policy, the task without the registrations
	// its barriers need, or the memfd unsealed. It knows version 6.
	extVersion7 = 7
	// extVersion8 is written when an epoll is shared by fds (a dup, or
	// inherited across fork: fdinfo entries naming one eventpoll file
	// entry), or a TCP listener is held (ext kind "inet", an INETSK file
	// entry): a reader of an earlier version would make one epoll per fd
	// and register the targets in each, and knows no "inet" fd. It knows
	// version 7.
	extVersion8 = 8
	// extVersion9 is written when an fd's open file description has an
	// owner or a signal set (F_SETOWN_EX, F_SETSIG; "owner"): a reader of
	// an earlier version would restore it without, and the owner would
	// get no SIGIO or SIGURG from it. It knows version 8.
	extVersion9 = 9
)

type extImage struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	RootPPID      int       `json:"root_ppid"`      // pstree.img says 0 for the root, as CRIU
	Files         []extFile `json:"files"`          // one per Tree.Files, same order
	SharedObjects []extShm  `json:"shared_objects"` // one per Tree.SharedObjects
	Tasks         []extTask `json:"tasks"`          // same order as pstree.img
}

// extFile completes a files.img entry (id <= len(files)) of a Tree file.
type extFile struct {
	ID        uint32 `json:"id"`
	Dev       uint64 `json:"dev"`
	Ino       uint64 `json:"ino"`
	MtimeNsec int64  `json:"mtime_nsec"`
	UID       uint32 `json:"uid"`
	GID       uint32 `json:"gid"`
	Deleted   bool   `json:"deleted,omitempty"`
	Renamed   bool   `json:"renamed,omitempty"`
}

// extShm is a shared anonymous or memfd object (CRIU has only its pagemap).
type extShm struct {
	ID    uint32 `json:"id"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  uint64 `json:"size"`
	Memfd bool   `json:"memfd,omitempty"`
	Name  string `json:"name,omitempty"`
	// HugePageSize is SharedObject.HugePageSize (version 4).
	HugePageSize uint64 `json:"huge_page_size,omitempty"`
	// SysV is SharedObject.SysV (version 4).
	SysV *extSysV `json:"sysv,omitempty"`
	// Seals, Mode, UID, GID and Length are a memfd's (version 7).
	Seals  uint32 `json:"seals,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	UID    uint32 `json:"uid,omitempty"`
	GID    uint32 `json:"gid,omitempty"`
	Length uint64 `json:"length,omitempty"`
}

type extSysV struct {
	Key  int32  `json:"key"`
	ID   int32  `json:"id"`
	Mode uint32 `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Size uint64 `json:"size"`
}

type extTask struct {
	PID        int    `json:"pid"`
	CapAmb     uint64 `json:"cap_amb"`
	NoNewPrivs bool   `json:"no_new_privs,omitempty"`
	MDWE       uint32 `json:"mdwe,omitempty"`      // Mm.MDWE (CRIU's mm image has no field)
	MergeAny   bool   `json:"merge_any,omitempty"` // Mm.MergeAny (neither has CRIU)
	// THPExceptAdvised is Mm.THPExceptAdvised (version 3).
	THPExceptAdvised bool `json:"thp_except_advised,omitempty"`
	// MlockFuture is Mm.MlockFuture (version 4).
	MlockFuture uint32 `json:"mlock_future,omitempty"`
	// Membarrier is Mm.Membarrier (version 7).
	Membarrier uint32 `json:"membarrier,omitempty"`
	// CoredumpFilter is Task.CoredumpFilter (version 6).
	CoredumpFilter *uint32     `json:"coredump_filter,omitempty"`
	Threads        []extThread `json:"threads"` // same order as pstree threads
	VMAs           []extVMA    `json:"vmas"`    // same order as mm-PID.img vmas
	FDs            []extFD     `json:"fds"`     // same order as fdinfo-PID.img
	// ParentPages are Task.ParentPages as [start, end) pairs.
	ParentPages [][2]uint64 `json:"parent_pages,omitempty"`
	// Guards are Task.Guards as [start, end) pairs (CRIU keeps guard
	// regions its own way).
	Guards [][2]uint64 `json:"guards,omitempty"`
}

type extThread struct {
	TID   int    `json:"tid"`
	Xsave []byte `json:"xsave"` // the raw NT_X86_XSTATE regset, base64
	// TimerSlackNs is Thread.TimerSlackNs (CRIU keeps no timer slack).
	TimerSlackNs uint64 `json:"timer_slack_ns,omitempty"`
	// MemPolicy is Thread.MemPolicy (version 4; nor has CRIU one).
	MemPolicy *extMemPolicy `json:"mempolicy,omitempty"`
	// CPUs is Thread.CPUAffinity (version 6; CRIU keeps none).
	CPUs []uint64 `json:"cpus,omitempty"`
	// IOPrio is Thread.IOPrio (version 6; nor has CRIU one).
	IOPrio uint32 `json:"ioprio,omitempty"`
}

type extMemPolicy struct {
	Mode  uint32   `json:"mode"`
	Nodes []uint64 `json:"nodes"`
}

type extVMA struct {
	Name       string   `json:"name,omitempty"`
	VmFlags    []string `json:"vmflags"`
	VvarVclock bool     `json:"vvar_vclock,omitempty"` // [vvar_vclock]: CRIU status says VVAR
	// FileID/ShmID when not already carried by vma_entry.shmid.
	FileID uint32 `json:"file_id,omitempty"`
	ShmID  uint32 `json:"shm_id,omitempty"`
	// FromParent is VMA.FromParent (version 2).
	FromParent bool `json:"from_parent,omitempty"`
	// MemPolicy is VMA.MemPolicy (version 7).
	MemPolicy *extMemPolicy `json:"mempolicy,omitempty"`
}

type extFD struct {
	Num          int    `json:"fd"`
	Kind         string `json:"kind"` // fdKindNames
	FileID       uint32 `json:"file_id,omitempty"`
	ExternalType string `json:"external_type,omitempty"`
	// Flags and Pos of an external fd (files.img has no place for them).
	Flags int   `json:"flags,omitempty"`
	Pos   int64 `json:"pos,omitempty"`
	// EventfdSemaphore is Eventfd.Semaphore (CRIU's eventfd entry has no
	// place for EFD_SEMAPHORE).
	EventfdSemaphore bool `json:"eventfd_semaphore,omitempty"`
	// PidfdPID is FD.PidfdPID (version 7; CRIU's fd types have no pidfd:
	// files.img has an ext entry for it).
	PidfdPID int `json:"pidfd_pid,omitempty"`
	// Owner is FD.Owner (version 9; mmcr writes CRIU's fown entries as
	// zeros).
	Owner *extOwner `json:"owner,omitempty"`
}

type extOwner struct {
	Type   int    `json:"type"` // F_OWNER_TID 0, F_OWNER_PID 1, F_OWNER_PGRP 2
	PID    int    `json:"pid"`
	Signal int    `json:"signal,omitempty"`
	UID    uint32 `json:"uid,omitempty"`
	EUID   uint32 `json:"euid,omitempty"`
}

// fdKindByName is FDKind.String's inverse (the ext file stores kind names).
func fdKindByName(s string) (FDKind, bool) {
	for k := FDRegular; k <= lastFDKind; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}
