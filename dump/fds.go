package dump

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"unsafe"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/shmem"
	"golang.org/x/sys/unix"
)

// collectFDs describes every open descriptor of pid, refusing those
// restore cannot recreate. fds 0-2 that are ttys or named FIFOs are
// external: restore hands its own stdio in their place; pipes and sockets
// are decided once every task's fds are known (resolvePipes,
// resolveSockets).
func (d *dumper) collectFDs(pid int) ([]*image.FD, error) {
	fds, err := d.fs.FDs(pid)
	if err != nil {
		return nil, err
	}
	var out []*image.FD
	for _, fd := range fds {
		link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Num)
		refuse := func(what string) error {
			return fmt.Errorf("fd %d is %s (%s): %w", fd.Num, what, fd.Target, ErrUnsupported)
		}
		var st unix.Stat_t
		if err := unix.Stat(link, &st); err != nil {
			return nil, fmt.Errorf("stat fd %d (%s): %w", fd.Num, fd.Target, err)
		}
		e := &image.FD{Num: fd.Num, Flags: fd.Flags, Pos: fd.Pos}
		external := func(typ string) error {
			if fd.Num > 2 {
				return refuse("a " + typ)
			}
			e.Kind, e.ExternalType = image.FDExternal, typ
			return nil
		}
		var ferr error
		switch typ := st.Mode & unix.S_IFMT; {
		case fd.Target == "anon_inode:[eventfd]" && fd.Eventfd != nil:
			e.Kind = image.FDEventfd
			e.Eventfd = &image.Eventfd{Count: fd.Eventfd.Count, Semaphore: fd.Eventfd.Semaphore}
			d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
		case fd.Target == "anon_inode:[signalfd]" && fd.Signalfd != nil:
			e.Kind = image.FDSignalfd
			e.Signalfd = &image.Signalfd{Mask: *fd.Signalfd}
			d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
		case fd.Target == "anon_inode:[timerfd]" && fd.Timerfd != nil:
			ti := fd.Timerfd
			e.Kind = image.FDTimerfd
			e.Timerfd = &image.Timerfd{Clock: ti.Clock, Ticks: ti.Ticks, SettimeFlags: ti.SettimeFlags,
				ValueNsec: ti.ValueNsec, IntervalNsec: ti.IntervalNsec}
			d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
		case fd.Target == "anon_inode:inotify":
			e.Kind = image.FDInotify
			if e.Inotify, ferr = inotifyWatches(fd); ferr == nil {
				d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
			}
		case fd.Target == "anon_inode:[pidfd]" && fd.PidfdPID != nil:
			e.Kind, e.PidfdPID = image.FDPidfd, *fd.PidfdPID
			if ferr = d.pidfdTarget(fd.Num, e.PidfdPID); ferr == nil {
				d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
			}
		case fd.Target == "anon_inode:[eventpoll]":
			e.Kind = image.FDEpoll
			for _, tg := range fd.EpollTargets {
				e.Epoll = append(e.Epoll, image.EpollTarget{FD: tg.FD, Events: tg.Events, Data: tg.Data})
			}
			d.madeEnds = append(d.madeEnds, openEnd{pid: pid, fd: e, target: fd.Target})
			d.epolls = append(d.epolls, epollEnd{pid: pid, fd: fd, e: e})
		case strings.HasPrefix(fd.Target, "anon_inode:"):
			ferr = refuse("an " + fd.Target)
		case typ == unix.S_IFREG && strings.HasPrefix(fd.Target, "/memfd:"):
			// Restored as a shared object: one that no task maps is
			// made once every task's VMAs are known (addMemfdFDs).
			e.Kind = image.FDRegular
			var fs unix.Statfs_t
			ferr = unix.Statfs(link, &fs)
			d.memfdFDs = append(d.memfdFDs, memfdFD{pid: pid, num: fd.Num, target: fd.Target,
				key: shmem.Key{Dev: st.Dev, Ino: st.Ino}, size: st.Size, hugetlb: fs.Type == unix.HUGETLBFS_MAGIC})
		case typ == unix.S_IFREG:
			e.Kind = image.FDRegular
		case typ == unix.S_IFDIR:
			e.Kind = image.FDDir
		case typ == unix.S_IFCHR && isTTY(st.Rdev):
			ferr = external("tty")
		case typ == unix.S_IFCHR && isMemDev(st.Rdev):
			e.Kind = image.FDCharDev
		case typ == unix.S_IFCHR:
			ferr = refuse(fmt.Sprintf("a character device %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		case typ == unix.S_IFIFO && strings.HasPrefix(fd.Target, "pipe:["):
			// The tree's own, or its stdio's: resolvePipes decides.
			e.Kind = image.FDPipe
			d.pipeEnds = append(d.pipeEnds, pipeEnd{openEnd: openEnd{pid: pid, fd: e, target: fd.Target}, ino: st.Ino})
		case typ == unix.S_IFIFO:
			// A FIFO: as a pipe, with its path to open again.
			r, err := mapfiles.ResolveLink(link)
			switch {
			case err != nil:
				ferr = fmt.Errorf("resolve fd %d (%s): %w", fd.Num, fd.Target, err)
			case r.Deleted || r.Renamed:
				ferr = refuse("a FIFO removed or renamed since it was opened")
			default:
				e.Kind = image.FDPipe
				d.pipeEnds = append(d.pipeEnds, pipeEnd{openEnd: openEnd{pid: pid, fd: e, target: fd.Target}, ino: st.Ino,
					fifo: d.files.add(r, link).ID})
			}
		case typ == unix.S_IFSOCK:
			// A unix socket pair of the tree's, or its stdio's:
			// resolveSockets decides.
			e.Kind = image.FDSocket
			d.socketEnds = append(d.socketEnds, socketEnd{openEnd: openEnd{pid: pid, fd: e, target: fd.Target}, ino: st.Ino})
		default:
			ferr = refuse(fmt.Sprintf("of unsupported type %#o", typ))
		}
		if ferr == nil && len(fd.Locks) > 0 {
			e.Locks, ferr = fileLocks(pid, fd, e.Kind)
		}
		// An owner signals through sockets and pipes (SIGURG, and SIGIO
		// with O_ASYNC) and, with O_ASYNC, through other files too.
		if ferr == nil && (fd.Flags&unix.O_ASYNC != 0 || e.Kind == image.FDSocket || e.Kind == image.FDPipe) {
			e.Owner, ferr = fdOwner(pid, fd.Num)
		}
		if ferr != nil {
			return nil, ferr
		}
		if e.Kind <= image.FDCharDev {
			r, err := mapfiles.ResolveLink(link)
			if err != nil {
				return nil, fmt.Errorf("resolve fd %d (%s): %w", fd.Num, fd.Target, err)
			}
			e.FileID = d.files.add(r, link).ID
			d.fileEnds = append(d.fileEnds, openEnd{pid: pid, fd: e, target: fd.Target})
		}
		out = append(out, e)
	}
	return out, nil
}

// fdOwner reads the owner and signal of fd num's open file description
// (F_GETOWN_EX, F_GETSIG) through mmcr's copy of the fd (pidfd_getfd: the
// same description); nil when neither is set.
func fdOwner(pid, num int) (*image.FDOwner, error) {
	fd, err := takeFD(pid, num)
	if err != nil {
		return nil, fmt.Errorf("fd %d: read its owner: %w", num, err)
	}
	defer unix.Close(fd)
	var ex kernel.FOwnerEx
	if _, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&ex))); errno != 0 {
		return nil, fmt.Errorf("fd %d: read its owner (F_GETOWN_EX): %w", num, errno)
	}
	sig, err := unix.FcntlInt(uintptr(fd), unix.F_GETSIG, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: read its signal (F_GETSIG): %w", num, err)
	}
	if ex.PID == 0 && sig == 0 {
		return nil, nil
	}
	o := &image.FDOwner{Type: int(ex.Type), PID: int(ex.PID), Signal: sig}
	if ex.PID != 0 {
		var uids [2]uint32
		if _, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), kernel.FGetOwnerUIDs, uintptr(unsafe.Pointer(&uids))); errno != 0 {
			return nil, fmt.Errorf("fd %d: read its owner's uids (F_GETOWNER_UIDS): %w", num, errno)
		}
		o.UID, o.EUID = uids[0], uids[1]
	}
	return o, nil
}

// epollEnd is an epoll fd met while collecting fds.
type epollEnd struct {
	pid int
	fd  procfs.FD // its fdinfo, with the targets' inodes
	e   *image.FD
}

// checkEpolls checks the targets of each epoll in the first fd that holds
// it (in tree order): restore registers them again there, by number, and
// the other fds of a shared epoll (a dup, or inherited across fork) take
// that one epoll. A target a task added after the fork with an fd its
// parent lacks is refused (checkEpollTargets).
func (d *dumper) checkEpolls() error {
	holders := make(map[uint32]int)
	for _, ep := range d.epolls {
		holders[ep.e.OpenID]++
	}
	checked := make(map[uint32]bool)
	for _, ep := range d.epolls {
		if checked[ep.e.OpenID] {
			continue
		}
		checked[ep.e.OpenID] = true
		if err := checkEpollTargets(ep.pid, ep.fd, holders[ep.e.OpenID]); err != nil {
			return taskErr(ep.pid, "dump fds", err)
		}
	}
	return nil
}

// sameFile reports whether fd a of pid pa and fd b of pid pb are one open
// file (kcmp KCMP_FILE). All anonymous-inode files share one inode, so
// stat cannot tell.
func sameFile(pa, a, pb, b int) (bool, error) {
	const kcmpFile = 0
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pa), uintptr(pb), kcmpFile, uintptr(a), uintptr(b), 0)
	if e != 0 {
		return false, os.NewSyscallError("kcmp", e)
	}
	return r == 0, nil
}

// checkEpollTargets refuses an epoll whose registration names an fd
// number that does not hold the registered file in pid (the file was
// dup'd, then that number closed or reused; or, for an epoll shared
// across fork, the registration was made by another of its holders):
// restore adds targets by number.
// holders is how many fds hold the epoll: more than one, the target may
// be one another holder added with an fd of its own.
func checkEpollTargets(pid int, fd procfs.FD, holders int) error {
	for _, tg := range fd.EpollTargets {
		var st unix.Stat_t
		err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, tg.FD), &st)
		if err != nil || (tg.Ino != 0 && st.Ino != tg.Ino) {
			hint := ""
			if holders > 1 {
				hint = fmt.Sprintf(" (the epoll is shared by %d fds: another holder may have added it with an fd of its own)", holders)
			}
			return fmt.Errorf("epoll fd %d watches a file no longer open as fd %d%s: %w", fd.Num, tg.FD, hint, ErrUnsupported)
		}
	}
	return nil
}

// isTTY reports terminal devices: /dev/ttyN and serial (4), /dev/tty,
// console and ptmx (5), pty slaves (136-143).
func isTTY(rdev uint64) bool {
	switch maj := unix.Major(rdev); {
	case maj == 4 || maj == 5:
		return true
	case maj >= 136 && maj <= 143:
		return true
	}
	return false
}

// isMemDev reports the stateless memory devices a restore can simply
// reopen: /dev/null, zero, full, random, urandom.
func isMemDev(rdev uint64) bool {
	if unix.Major(rdev) != 1 {
		return false
	}
	switch unix.Minor(rdev) {
	case 3, 5, 7, 8, 9:
		return true
	}
	return false
}

// pidfdTarget checks that a pidfd refers to a task of the tree, which
// restore makes again with its pid: of a process outside the tree, pid
// reuse could give it another's; one that has ended and been reaped (-1)
// no restore can make.
func (d *dumper) pidfdTarget(num, target int) error {
	if target == -1 {
		return fmt.Errorf("fd %d is a pidfd of a process that has ended and been reaped: %w", num, ErrUnsupported)
	}
	if slices.Contains(d.order, target) || slices.ContainsFunc(d.zombies, func(z *image.Task) bool { return z.PID == target }) {
		return nil
	}
	return fmt.Errorf("fd %d is a pidfd of process %d, outside the tree: %w", num, target, ErrUnsupported)
}

// memfdFD is an open memfd met while collecting fds.
type memfdFD struct {
	pid     int
	num     int
	target  string
	key     shmem.Key
	size    int64 // st_size
	hugetlb bool  // of a hugetlbfs mount (MFD_HUGETLB)
}

// addMemfdFDs makes a shared object of each memfd the tree holds only by
// descriptors (no task maps it shared): restore recreates every memfd as
// a shared object, whose fds reopen that very object; its pages are read
// through the first descriptor met. A hugetlb one is refused: no VMA
// tells its page size.
func (d *dumper) addMemfdFDs() error {
	for _, m := range d.memfdFDs {
		if d.shm.Lookup(m.key) != nil {
			continue
		}
		if m.hugetlb {
			return taskErr(m.pid, "dump fds", fmt.Errorf("fd %d is a hugetlb memfd (%s) that no task maps: %w",
				m.num, m.target, ErrUnsupported))
		}
		o, _ := d.shm.Add(m.key, uint64(max(m.size, 0)), 0, 0, true, memfdName(m.target))
		d.shmSrc[o.ID] = vmaRef{pid: m.pid, viaFD: true, fd: m.num}
	}
	return nil
}

// fileLocks turns the locks fdinfo shows on fd of task pid into the
// task's: its flock and OFD locks (the open file description's, whoever
// took them) and the POSIX locks it took itself (another process's,
// taken through a shared description, are that process's to dump). A
// lease, or a lock on anything but a regular file, is refused.
func fileLocks(pid int, fd procfs.FD, kind image.FDKind) ([]image.FileLock, error) {
	var out []image.FileLock
	for _, l := range fd.Locks {
		var k image.LockKind
		switch l.Kind {
		case "FLOCK":
			k = image.LockFlock
		case "OFDLCK":
			k = image.LockOFD
		case "POSIX":
			if l.PID != pid {
				continue
			}
			k = image.LockPOSIX
		default:
			return nil, fmt.Errorf("fd %d (%s) holds a %s, which is not dumped: %w", fd.Num, fd.Target, l.Kind, ErrUnsupported)
		}
		if kind != image.FDRegular {
			return nil, fmt.Errorf("fd %d (%s, a %s) holds a %s lock: %w", fd.Num, fd.Target, kind, l.Kind, ErrUnsupported)
		}
		fl := image.FileLock{Kind: k, Write: l.Write}
		if k != image.LockFlock {
			fl.Start = l.Start
			if l.End >= 0 {
				fl.Len = l.End - l.Start + 1
			}
		}
		out = append(out, fl)
	}
	return out, nil
}
