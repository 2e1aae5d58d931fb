package image

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// Summary is what `mmcr show` prints: the tree, every VMA in
// /proc/PID/maps style with its kind, backing and dumped pages, and totals.
// It marshals to JSON as is (`mmcr show --json`).
type Summary struct {
	Dir           string          `json:"dir"`
	Tasks         []TaskSummary   `json:"tasks"`
	Files         []FileSummary   `json:"files"`
	SharedObjects []SharedSummary `json:"shared_objects"`
	Totals        Totals          `json:"totals"`
}

// TaskSummary describes one task.
type TaskSummary struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid"`
	PGID    int    `json:"pgid"`
	SID     int    `json:"sid"`
	Comm    string `json:"comm"`
	Stopped bool   `json:"stopped,omitempty"` // in a job-control stop at dump
	// Zombie: exited, not yet reaped by its parent; ExitStatus is what
	// its parent's wait will collect.
	Zombie     bool `json:"zombie,omitempty"`
	ExitStatus int  `json:"exit_status,omitempty"`
	Threads    int  `json:"threads"`
	// SeccompFilters counts the leader's seccomp filters.
	SeccompFilters int `json:"seccomp_filters,omitempty"`
	// PosixTimers counts the task's POSIX timers.
	PosixTimers int `json:"posix_timers,omitempty"`
	// Membarrier is the task's membarrier registrations (Mm.Membarrier).
	Membarrier uint32 `json:"membarrier,omitempty"`
	// Depth is the task's depth in the tree (the root is 0).
	Depth int          `json:"depth"`
	VMAs  []VMASummary `json:"vmas"`
	FDs   []FDSummary  `json:"fds"`
	Pages int64        `json:"pages"` // private pages dumped
	Bytes int64        `json:"bytes"`
}

// VMASummary is one VMA, maps-style, plus what mmcr knows about it.
type VMASummary struct {
	Start  uint64 `json:"start"`
	End    uint64 `json:"end"`
	Perms  string `json:"perms"`  // "rw-p"
	Offset uint64 `json:"offset"` // pgoff in bytes
	Dev    string `json:"dev"`    // "MAJ:MIN" in hex, as maps
	Ino    uint64 `json:"ino"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	FileID uint32 `json:"file_id,omitempty"`
	Path   string `json:"path,omitempty"` // the file's path at dump
	ShmID  uint32 `json:"shm_id,omitempty"`
	Pages  int64  `json:"pages"` // private pages dumped inside this VMA
	Bytes  int64  `json:"bytes"`
	// ShmPages are the shared object's dumped pages in this VMA's window.
	ShmPages int64 `json:"shm_pages,omitempty"`
	// FromParent: inherited from the parent by fork at restore
	// (VMA.FromParent); ParentPages of its pages are the parent's.
	FromParent  bool  `json:"from_parent,omitempty"`
	ParentPages int64 `json:"parent_pages,omitempty"`
	// GuardPages are the pages of guard regions (Task.Guards) in the VMA.
	GuardPages int64 `json:"guard_pages,omitempty"`
	// HugePageSize is the page size of a hugetlb VMA (VMA.HugePageSize).
	HugePageSize uint64 `json:"huge_page_size,omitempty"`
	// MemPolicy is the range's own NUMA memory policy (VMA.MemPolicy):
	// "bind=static:0,2".
	MemPolicy string `json:"mempolicy,omitempty"`
}

// FDSummary is one file descriptor.
type FDSummary struct {
	FD           int    `json:"fd"`
	Kind         string `json:"kind"`
	FileID       uint32 `json:"file_id,omitempty"`
	Path         string `json:"path,omitempty"`
	Flags        int    `json:"flags"`
	Pos          int64  `json:"pos"`
	ExternalType string `json:"external_type,omitempty"`
	// OpenID is FD.OpenID: the fds sharing an open file description
	// share it.
	OpenID uint32 `json:"open_id,omitempty"`
	// Locks counts the file locks held through the fd.
	Locks int `json:"locks,omitempty"`
	// A pipe end's pipe (its inode at dump: pipe:[PipeIno]; a FIFO's path
	// is Path), the bytes
	// unread in it and its capacity.
	PipeIno   uint32 `json:"pipe_ino,omitempty"`
	PipeBytes int    `json:"pipe_bytes,omitempty"`
	PipeSize  uint32 `json:"pipe_size,omitempty"`
	// A unix socket's inode at dump, its type, its peer's inode, and the
	// messages and bytes waiting to be read at it.
	SocketIno      uint32 `json:"socket_ino,omitempty"`
	SocketType     string `json:"socket_type,omitempty"`
	SocketPeerIno  uint32 `json:"socket_peer_ino,omitempty"`
	SocketMessages int    `json:"socket_messages,omitempty"`
	SocketBytes    int    `json:"socket_bytes,omitempty"`
	// SocketName is what a bound socket is bound to (an abstract name
	// with a leading "@"), SocketBacklog a listener's backlog.
	SocketName    string `json:"socket_name,omitempty"`
	SocketBacklog uint32 `json:"socket_backlog,omitempty"`
	// State says what a signalfd, timerfd, inotify fd or pidfd holds:
	// "mask 0x4200", "clock 1, 1500000000 ns left, every 2000000000 ns, 3
	// ticks", "2 watches", "of pid 22482".
	State string `json:"state,omitempty"`
}

// fdState says what a signalfd, timerfd, inotify fd or pidfd holds.
func fdState(fd *FD) string {
	switch {
	case fd.Signalfd != nil:
		return fmt.Sprintf("mask %#x", fd.Signalfd.Mask)
	case fd.Timerfd != nil:
		t := fd.Timerfd
		return fmt.Sprintf("clock %d, %d ns left, every %d ns, %d ticks", t.Clock, t.ValueNsec, t.IntervalNsec, t.Ticks)
	case fd.Kind == FDInotify:
		return fmt.Sprintf("%d watches", len(fd.Inotify))
	case fd.Kind == FDPidfd:
		return fmt.Sprintf("of pid %d", fd.PidfdPID)
	case fd.Kind == FDEpoll:
		var b strings.Builder
		fmt.Fprintf(&b, "%d targets", len(fd.Epoll))
		for i, tg := range fd.Epoll {
			sep := ", "
			if i == 0 {
				sep = ": "
			}
			fmt.Fprintf(&b, "%sfd %d (events %#x, data %#x)", sep, tg.FD, tg.Events, tg.Data)
		}
		return b.String()
	}
	return ""
}

// inetState describes a TCP listener or UDP socket for mmcr show.
func inetState(s *InetSocket) string {
	st := fmt.Sprintf("socket:[%d] TCP listening on %s, backlog %d", s.Ino, s.Addr, s.Backlog)
	if s.UDP {
		st = fmt.Sprintf("socket:[%d] UDP", s.Ino)
		if s.Addr.Port() != 0 {
			st += " bound to " + s.Addr.String()
		}
		if s.Peer.IsValid() {
			st += ", connected to " + s.Peer.String()
		}
	}
	if s.ReuseAddr {
		st += ", SO_REUSEADDR"
	}
	if s.ReusePort {
		st += ", SO_REUSEPORT"
	}
	if s.V6Only {
		st += ", IPV6_V6ONLY"
	}
	return st
}

// FileSummary is one file of the tree.
type FileSummary struct {
	ID      uint32 `json:"id"`
	Path    string `json:"path"`
	Dev     string `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	Deleted bool   `json:"deleted,omitempty"`
	Renamed bool   `json:"renamed,omitempty"`
}

// SharedSummary is one shared anonymous or memfd object.
type SharedSummary struct {
	ID    uint32 `json:"id"`
	Dev   string `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  uint64 `json:"size"`
	Memfd bool   `json:"memfd,omitempty"`
	Name  string `json:"name,omitempty"`
	Pages int64  `json:"pages"`
	Bytes int64  `json:"bytes"`
	// HugePageSize is SharedObject.HugePageSize; SysVID and SysVKey name
	// a SysV segment (SharedObject.SysV), SysVRemoved says it was removed.
	HugePageSize uint64 `json:"huge_page_size,omitempty"`
	SysVID       *int32 `json:"sysv_id,omitempty"`
	SysVKey      int32  `json:"sysv_key,omitempty"`
	SysVRemoved  bool   `json:"sysv_removed,omitempty"`
	SysVLocked   bool   `json:"sysv_locked,omitempty"`
	// Seals, Mode, UID and GID are a memfd's (SharedObject.Seals...).
	Seals uint32 `json:"seals,omitempty"`
	Mode  uint32 `json:"mode,omitempty"`
	UID   uint32 `json:"uid,omitempty"`
	GID   uint32 `json:"gid,omitempty"`
}

// Totals sums the image.
type Totals struct {
	Tasks         int   `json:"tasks"`
	Threads       int   `json:"threads"`
	VMAs          int   `json:"vmas"`
	Files         int   `json:"files"`
	SharedObjects int   `json:"shared_objects"`
	PrivatePages  int64 `json:"private_pages"`
	PrivateBytes  int64 `json:"private_bytes"`
	SharedPages   int64 `json:"shared_pages"`
	SharedBytes   int64 `json:"shared_bytes"`
	ImageFiles    int   `json:"image_files"`
	ImageBytes    int64 `json:"image_bytes"` // sum of all files in the manifest
}

func devString(dev uint64) string {
	return fmt.Sprintf("%02x:%02x", unix.Major(dev), unix.Minor(dev))
}

func perms(v *VMA) string {
	b := []byte("---p")
	if v.Prot&unix.PROT_READ != 0 {
		b[0] = 'r'
	}
	if v.Prot&unix.PROT_WRITE != 0 {
		b[1] = 'w'
	}
	if v.Prot&unix.PROT_EXEC != 0 {
		b[2] = 'x'
	}
	if v.Flags&unix.MAP_SHARED != 0 {
		b[3] = 's'
	}
	return string(b)
}

// Summarize decodes the tree and the pagemaps of r.
func Summarize(r *Reader) (*Summary, error) {
	tree, err := r.Tree()
	if err != nil {
		return nil, err
	}
	s := &Summary{Dir: r.Dir()}
	shmRuns := map[uint32][]PageRun{}
	for _, so := range tree.SharedObjects {
		runs, f, err := r.ShmemPages(so.ID)
		if err != nil {
			return nil, err
		}
		f.Close()
		shmRuns[so.ID] = runs
	}
	depth := map[int]int{}
	for _, t := range tree.Tasks {
		d := 0
		if pd, ok := depth[t.PPID]; ok {
			d = pd + 1
		}
		depth[t.PID] = d
		ts := TaskSummary{PID: t.PID, PPID: t.PPID, PGID: t.PGID, SID: t.SID, Comm: t.Comm,
			Stopped: t.Stopped, Zombie: t.Zombie, ExitStatus: t.ExitStatus, Threads: len(t.Threads), Depth: d,
			SeccompFilters: len(t.Threads[0].Seccomp), PosixTimers: len(t.PosixTimers), Membarrier: t.Mm.Membarrier}
		if t.Zombie {
			s.Totals.Threads += ts.Threads
			s.Tasks = append(s.Tasks, ts)
			continue
		}
		for _, fd := range t.FDs {
			fs := FDSummary{FD: fd.Num, Kind: fd.Kind.String(), FileID: fd.FileID, Flags: fd.Flags, Pos: fd.Pos,
				ExternalType: fd.ExternalType, OpenID: fd.OpenID, Locks: len(fd.Locks)}
			if f := tree.FileByID(fd.FileID); f != nil {
				fs.Path = f.Path
			}
			fs.State = fdState(fd)
			if sk := tree.InetByID(fd.InetID); sk != nil && fd.Kind == FDInet {
				fs.State = inetState(sk)
			}
			if p := tree.PipeByID(fd.PipeID); p != nil {
				fs.PipeIno, fs.PipeBytes, fs.PipeSize = p.Ino, len(p.Data), p.Size
				if f := tree.FileByID(p.FileID); f != nil {
					fs.Path = f.Path // a FIFO's
				}
			}
			if sk := tree.SocketByID(fd.SocketID); sk != nil {
				fs.SocketIno, fs.SocketType, fs.SocketMessages = sk.Ino, socketTypeName(sk.Type), len(sk.Queue)
				if p := tree.SocketByID(sk.Peer); p != nil {
					fs.SocketPeerIno = p.Ino
				}
				for _, m := range sk.Queue {
					fs.SocketBytes += len(m)
				}
				if len(sk.Name) > 0 {
					fs.SocketName, fs.SocketBacklog = string(sk.Name), sk.Backlog
					if sk.Name[0] == 0 {
						fs.SocketName = "@" + string(sk.Name[1:])
					}
				}
			}
			ts.FDs = append(ts.FDs, fs)
		}
		runs, f, err := r.Pages(t.PID)
		if err != nil {
			return nil, err
		}
		f.Close()
		for _, v := range t.VMAs {
			vs := VMASummary{Start: v.Start, End: v.End, Perms: perms(v), Offset: v.Pgoff, Dev: "00:00",
				Name: v.Name, Kind: v.Kind.String(), FileID: v.FileID, ShmID: v.ShmID}
			if f := tree.FileByID(v.FileID); f != nil {
				vs.Dev, vs.Ino, vs.Path = devString(f.Dev), f.Ino, f.Path
			} else if so := tree.SharedObjectByID(v.ShmID); so != nil {
				vs.Dev, vs.Ino = devString(so.Dev), so.Ino
			}
			vs.Bytes = int64(overlap(runs, v.Start, v.End))
			vs.FromParent = v.FromParent
			vs.ParentPages = rangePages(t.ParentPages, v)
			vs.GuardPages = rangePages(t.Guards, v)
			vs.HugePageSize = v.HugePageSize()
			vs.MemPolicy = v.MemPolicy.String()
			vs.Pages = vs.Bytes / PageSize
			if runs, ok := shmRuns[v.ShmID]; ok {
				vs.ShmPages = int64(overlap(runs, v.Pgoff, v.Pgoff+v.Len()) / PageSize)
			}
			ts.VMAs = append(ts.VMAs, vs)
		}
		// The task's count is over all runs, so pages outside every VMA
		// (a dump bug) still show.
		var all uint64
		for _, run := range runs {
			all += run.Len
		}
		ts.Bytes = int64(all)
		ts.Pages = ts.Bytes / PageSize
		s.Totals.Threads += ts.Threads
		s.Totals.VMAs += len(ts.VMAs)
		s.Totals.PrivatePages += ts.Pages
		s.Totals.PrivateBytes += ts.Bytes
		s.Tasks = append(s.Tasks, ts)
	}
	for _, f := range tree.Files {
		s.Files = append(s.Files, FileSummary{ID: f.ID, Path: f.Path, Dev: devString(f.Dev), Ino: f.Ino,
			Size: f.Size, Deleted: f.Deleted, Renamed: f.Renamed})
	}
	for _, so := range tree.SharedObjects {
		runs := shmRuns[so.ID]
		ss := SharedSummary{ID: so.ID, Dev: devString(so.Dev), Ino: so.Ino, Size: so.Size, Memfd: so.Memfd, Name: so.Name,
			HugePageSize: so.HugePageSize, Seals: so.Seals, Mode: so.Mode, UID: so.UID, GID: so.GID}
		if sv := so.SysV; sv != nil {
			ss.SysVID, ss.SysVKey, ss.SysVRemoved, ss.SysVLocked = &sv.ID, sv.Key, sv.Removed(), sv.Locked()
		}
		for _, run := range runs {
			ss.Bytes += int64(run.Len)
		}
		ss.Pages = ss.Bytes / PageSize
		s.Totals.SharedPages += ss.Pages
		s.Totals.SharedBytes += ss.Bytes
		s.SharedObjects = append(s.SharedObjects, ss)
	}
	s.Totals.Tasks, s.Totals.Files, s.Totals.SharedObjects = len(s.Tasks), len(s.Files), len(s.SharedObjects)
	for _, mf := range r.files {
		s.Totals.ImageFiles++
		s.Totals.ImageBytes += mf.Size
	}
	return s, nil
}

// overlap is how many bytes of runs (sorted by Addr) fall in [start, end).
func overlap(runs []PageRun, start, end uint64) uint64 {
	var n uint64
	for _, r := range runs {
		lo, hi := max(r.Addr, start), min(r.Addr+r.Len, end)
		if lo < hi {
			n += hi - lo
		}
	}
	return n
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// WriteText prints the summary for humans.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	t := &s.Totals
	fmt.Fprintf(&b, "image %s: %d tasks, %d threads, %d VMAs, %d files, %d shared objects\n",
		s.Dir, t.Tasks, t.Threads, t.VMAs, t.Files, t.SharedObjects)
	fmt.Fprintf(&b, "pages: %d private (%s), %d shared (%s); %d image files, %s\n",
		t.PrivatePages, humanBytes(t.PrivateBytes), t.SharedPages, humanBytes(t.SharedBytes),
		t.ImageFiles, humanBytes(t.ImageBytes))
	b.WriteString("\ntree:\n")
	for _, ts := range s.Tasks {
		stopped := ""
		if ts.Stopped {
			stopped = ", stopped"
		}
		if ts.SeccompFilters > 0 {
			stopped += fmt.Sprintf(", %d seccomp filters", ts.SeccompFilters)
		}
		if ts.PosixTimers > 0 {
			stopped += fmt.Sprintf(", %d POSIX timers", ts.PosixTimers)
		}
		if ts.Membarrier != 0 {
			stopped += fmt.Sprintf(", membarrier registrations %#x", ts.Membarrier)
		}
		if ts.Zombie {
			fmt.Fprintf(&b, "  %s%d %s (ppid %d, pgid %d, sid %d), zombie: %s\n",
				strings.Repeat("  ", ts.Depth), ts.PID, ts.Comm, ts.PPID, ts.PGID, ts.SID, describeExit(ts.ExitStatus))
			continue
		}
		fmt.Fprintf(&b, "  %s%d %s (ppid %d, pgid %d, sid %d%s), %d threads, %d fds, %d pages (%s)\n",
			strings.Repeat("  ", ts.Depth), ts.PID, ts.Comm, ts.PPID, ts.PGID, ts.SID, stopped, ts.Threads, len(ts.FDs),
			ts.Pages, humanBytes(ts.Bytes))
	}
	for _, ts := range s.Tasks {
		if ts.Zombie {
			continue
		}
		fmt.Fprintf(&b, "\ntask %d (%s):\n", ts.PID, ts.Comm)
		for _, v := range ts.VMAs {
			fmt.Fprintf(&b, "  %08x-%08x %s %08x %s %-8d %-40s %s", v.Start, v.End, v.Perms, v.Offset, v.Dev, v.Ino,
				v.Name, v.Kind)
			if v.FileID != 0 {
				fmt.Fprintf(&b, " file %d %s", v.FileID, v.Path)
			}
			if v.ShmID != 0 {
				fmt.Fprintf(&b, " shm %d (%d pages in window)", v.ShmID, v.ShmPages)
			}
			if v.FromParent {
				fmt.Fprintf(&b, " from parent (%d pages shared)", v.ParentPages)
			}
			if v.GuardPages != 0 {
				fmt.Fprintf(&b, " guard pages %d", v.GuardPages)
			}
			if v.HugePageSize != 0 {
				fmt.Fprintf(&b, " hugetlb (%s pages)", humanBytes(int64(v.HugePageSize)))
			}
			if v.MemPolicy != "" {
				fmt.Fprintf(&b, " policy %s", v.MemPolicy)
			}
			fmt.Fprintf(&b, " pages %d (%s)\n", v.Pages, humanBytes(v.Bytes))
		}
		for _, fd := range ts.FDs {
			fmt.Fprintf(&b, "  fd %d: %s", fd.FD, fd.Kind)
			if fd.State != "" {
				fmt.Fprintf(&b, " %s", fd.State)
			}
			if fd.ExternalType != "" {
				fmt.Fprintf(&b, " (%s)", fd.ExternalType)
			}
			if fd.Locks > 0 {
				fmt.Fprintf(&b, " (%d locks held)", fd.Locks)
			}
			if fd.FileID != 0 {
				fmt.Fprintf(&b, " file %d %s", fd.FileID, fd.Path)
			}
			if fd.PipeIno != 0 {
				end := "read end"
				switch fd.Flags & unix.O_ACCMODE {
				case unix.O_WRONLY:
					end = "write end"
				case unix.O_RDWR:
					end = "both ends"
				}
				name := fmt.Sprintf("pipe:[%d]", fd.PipeIno)
				if fd.Path != "" {
					name = "FIFO " + fd.Path
				}
				fmt.Fprintf(&b, " %s %s, %d bytes unread of %s", name, end, fd.PipeBytes, humanBytes(int64(fd.PipeSize)))
			}
			switch {
			case fd.SocketName != "" && fd.SocketBacklog != 0:
				fmt.Fprintf(&b, " socket:[%d] %s listening on %s, backlog %d", fd.SocketIno, fd.SocketType, fd.SocketName, fd.SocketBacklog)
			case fd.SocketName != "":
				fmt.Fprintf(&b, " socket:[%d] %s bound to %s", fd.SocketIno, fd.SocketType, fd.SocketName)
			case fd.SocketIno != 0:
				fmt.Fprintf(&b, " socket:[%d] %s, peer socket:[%d], %d messages (%s) queued", fd.SocketIno, fd.SocketType,
					fd.SocketPeerIno, fd.SocketMessages, humanBytes(int64(fd.SocketBytes)))
			}
			if fd.OpenID != 0 {
				fmt.Fprintf(&b, " (open file %d)", fd.OpenID)
			}
			fmt.Fprintf(&b, " flags %#o pos %d\n", fd.Flags, fd.Pos)
		}
	}
	if len(s.Files) > 0 {
		b.WriteString("\nfiles:\n")
		for _, f := range s.Files {
			fmt.Fprintf(&b, "  %d %s %s %d size %d", f.ID, f.Path, f.Dev, f.Ino, f.Size)
			if f.Deleted {
				b.WriteString(" (deleted)")
			}
			if f.Renamed {
				b.WriteString(" (renamed)")
			}
			b.WriteByte('\n')
		}
	}
	if len(s.SharedObjects) > 0 {
		b.WriteString("\nshared objects:\n")
		for _, so := range s.SharedObjects {
			kind := "shmem"
			switch {
			case so.Memfd:
				kind = "memfd:" + so.Name
				if so.Mode != 0 {
					kind += fmt.Sprintf(" mode %#o owner %d:%d seals %#x", so.Mode, so.UID, so.GID, so.Seals)
				}
			case so.SysVID != nil:
				kind = fmt.Sprintf("sysv id %d key %#x", *so.SysVID, uint32(so.SysVKey))
				switch {
				case so.SysVRemoved && so.SysVLocked:
					kind += " (removed, locked)"
				case so.SysVRemoved:
					kind += " (removed)"
				case so.SysVLocked:
					kind += " (locked)"
				}
			}
			if so.HugePageSize != 0 {
				kind += fmt.Sprintf(" hugetlb (%s pages)", humanBytes(int64(so.HugePageSize)))
			}
			fmt.Fprintf(&b, "  %d %s %s %d size %s, pages %d (%s)\n", so.ID, kind, so.Dev, so.Ino,
				humanBytes(int64(so.Size)), so.Pages, humanBytes(so.Bytes))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// rangePages counts the pages of rs inside v.
func rangePages(rs []Range, v *VMA) int64 {
	var n int64
	for _, r := range rs {
		if r.Start < v.End && v.Start < r.End {
			n += int64(min(r.End, v.End)-max(r.Start, v.Start)) / PageSize
		}
	}
	return n
}

// socketTypeName names a socket type as socket(2) does.
func socketTypeName(t int) string {
	switch t {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "datagram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	}
	return fmt.Sprintf("type %d", t)
}

// describeExit says how a zombie ended, from its wait status.
func describeExit(ws int) string {
	if ws&0x7f == 0 {
		return fmt.Sprintf("exited with %d", ws>>8)
	}
	d := fmt.Sprintf("killed by signal %d (%v)", ws&0x7f, unix.Signal(ws&0x7f))
	if ws&0x80 != 0 {
		d += ", core dumped"
	}
	return d
}
