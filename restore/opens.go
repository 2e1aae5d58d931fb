package restore

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// pipeFlags are the status flags of a pipe's open file description that
// restore sets again (F_SETFL); the access mode comes with the end.
const pipeFlags = unix.O_NONBLOCK | unix.O_DIRECT

// makePipes makes every pipe of the image in mmcr, with its capacity and
// its unread bytes, and opens in mmcr each open file description the tree
// had of it, with its flags: a task's fd on it is then mmcr's, taken with
// pidfd_getfd (restoreFDs), and fds that shared a description share it
// again. An end no task held is closed: the pipe has no reader (or no
// writer) again. mmcr's own fds go with closeOpens.
func (rs *restorer) makePipes() error {
	if len(rs.tree.Pipes) == 0 {
		return nil
	}
	ends := make([][2]int, len(rs.tree.Pipes)) // mmcr's read and write end of each pipe
	for i, p := range rs.tree.Pipes {
		if err := rs.openPipe(p, &ends[i]); err != nil {
			return fmt.Errorf("%s: %w", rs.pipeName(p), err)
		}
		if err := fillPipe(ends[i][1], p); err != nil {
			return fmt.Errorf("%s: %w", rs.pipeName(p), err)
		}
	}
	used := make([][2]bool, len(rs.tree.Pipes))
	for _, t := range rs.tree.Tasks {
		for _, fd := range t.FDs {
			if fd.Kind != image.FDPipe || rs.opens[fd.OpenID] != 0 {
				continue
			}
			p := rs.tree.PipeByID(fd.PipeID)
			end := 0
			if fd.Flags&unix.O_ACCMODE == unix.O_WRONLY {
				end = 1
			}
			acc := fd.Flags & unix.O_ACCMODE
			mine := ends[p.ID-1][end]
			if p.FileID != 0 || acc == unix.O_RDWR || used[p.ID-1][end] {
				// A FIFO's description, one read-write, or another of this
				// end: a new open of the pipe (both ends are open in mmcr,
				// so it does not wait for a partner).
				path := fmt.Sprintf("/proc/self/fd/%d", mine)
				if p.FileID != 0 {
					path = rs.tree.FileByID(p.FileID).Path
				}
				var err error
				if mine, err = unix.Open(path, acc|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err != nil {
					return fmt.Errorf("%s: open a description of fd %d of task %d: %w", rs.pipeName(p), fd.Num, t.PID, err)
				}
				rs.openFDs[mine] = true
			} else {
				used[p.ID-1][end] = true
			}
			if _, err := unix.FcntlInt(uintptr(mine), unix.F_SETFL, fd.Flags&pipeFlags); err != nil {
				return fmt.Errorf("%s: flags %#o of fd %d of task %d: %w", rs.pipeName(p), fd.Flags&pipeFlags, fd.Num, t.PID, err)
			}
			rs.opens[fd.OpenID] = mine
		}
	}
	for i, p := range rs.tree.Pipes {
		for end := range 2 {
			if !used[i][end] && p.FileID == 0 {
				rs.closeOpenFD(ends[i][end])
			}
		}
	}
	return nil
}

// openPipe makes pipe p in mmcr: a new pipe, or a FIFO's path opened
// read-write (its one fd stands for both ends, and keeps it from waiting
// for a partner); ends gets the read and the write end.
func (rs *restorer) openPipe(p *image.Pipe, ends *[2]int) error {
	if p.FileID == 0 {
		if err := unix.Pipe2(ends[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return err
		}
		rs.openFDs[ends[0]], rs.openFDs[ends[1]] = true, true
		return nil
	}
	fd, err := unix.Open(rs.tree.FileByID(p.FileID).Path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	rs.openFDs[fd] = true
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return fmt.Errorf("not a FIFO any more (mode %#o)", st.Mode)
	}
	ends[0], ends[1] = fd, fd
	return nil
}

// pipeName names pipe p in errors: pipe:[ino], or a FIFO's path.
func (rs *restorer) pipeName(p *image.Pipe) string {
	if f := rs.tree.FileByID(p.FileID); f != nil {
		return "FIFO " + f.Path
	}
	return fmt.Sprintf("pipe:[%d]", p.Ino)
}

// fillPipe gives the pipe whose write end is w the dumped capacity and
// writes the dumped bytes into it (w is non-blocking: bytes that do not
// fit fail the restore rather than hang it).
func fillPipe(w int, p *image.Pipe) error {
	size, err := unix.FcntlInt(uintptr(w), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return err
	}
	if size != int(p.Size) {
		if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, int(p.Size)); err != nil {
			return fmt.Errorf("capacity of %d bytes (/proc/sys/fs/pipe-max-size): %w", p.Size, err)
		}
	}
	for done := 0; done < len(p.Data); {
		n, err := unix.Write(w, p.Data[done:])
		if err != nil {
			return fmt.Errorf("write its %d bytes: %d written: %w", len(p.Data), done, err)
		}
		done += n
	}
	return nil
}

// mmcrOpen returns mmcr's open of what fd is, for its task to take with
// pidfd_getfd: the open file description fd shares with others, made at
// its first use for a regular file, directory, device, eventfd or epoll
// (pipes and sockets are made by makePipes and makeSockets), which its
// holders then share again, offset and flags; or a new eventfd of fd's own
// (eventfds are made in mmcr, their counter written by mmcr).
func (rs *restorer) mmcrOpen(fd *image.FD) (int, error) {
	if mine, ok := rs.opens[fd.OpenID]; ok && fd.OpenID != 0 {
		return mine, nil
	}
	if fd.Kind == image.FDPipe || fd.Kind == image.FDSocket {
		return 0, fmt.Errorf("fd %d: %s has no open file %d", fd.Num, fd.Kind, fd.OpenID)
	}
	if madeByMmcr(fd.Kind) {
		var mine int
		var err error
		switch fd.Kind {
		case image.FDEventfd:
			mine, err = newEventfd(fd)
		case image.FDSignalfd:
			mine, err = newSignalfd(fd)
		case image.FDTimerfd:
			mine, err = newTimerfd(fd)
		case image.FDInotify:
			mine, err = newInotify(fd)
		case image.FDInet:
			mine, err = newInetSocket(rs.tree.InetByID(fd.InetID), fd.Flags)
		case image.FDPidfd:
			flags := 0
			if fd.Flags&unix.O_NONBLOCK != 0 {
				flags = unix.PIDFD_NONBLOCK
			}
			mine, err = unix.PidfdOpen(fd.PidfdPID, flags)
		}
		if err != nil {
			return 0, fmt.Errorf("fd %d (%s): %w", fd.Num, fd.Kind, err)
		}
		rs.openFDs[mine] = true
		if fd.OpenID != 0 {
			rs.opens[fd.OpenID] = mine
		}
		return mine, nil
	}
	if fd.Kind == image.FDEpoll {
		// Shared: made here, its targets added by its first holder
		// (fillEpolls).
		mine, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err == nil && fd.Flags&unix.O_NONBLOCK != 0 {
			_, err = unix.FcntlInt(uintptr(mine), unix.F_SETFL, unix.O_NONBLOCK)
		}
		if err != nil {
			return 0, fmt.Errorf("fd %d (epoll): %w", fd.Num, err)
		}
		rs.openFDs[mine], rs.opens[fd.OpenID] = true, mine
		return mine, nil
	}
	path, err := rs.fdPath(fd)
	if err != nil {
		return 0, err
	}
	mine, err := unix.Open(path, reopenFlags(fd.Flags), 0)
	if err != nil {
		return 0, fmt.Errorf("fd %d: open %s: %w", fd.Num, path, err)
	}
	rs.openFDs[mine], rs.opens[fd.OpenID] = true, mine
	if fd.Kind == image.FDRegular && fd.Pos != 0 {
		if _, err := unix.Seek(mine, fd.Pos, 0); err != nil {
			return 0, fmt.Errorf("fd %d: seek %s to %d: %w", fd.Num, path, fd.Pos, err)
		}
	}
	return mine, nil
}

// registersEpoll reports whether fd is an epoll fd whose task registers
// the epoll's targets: its only fd, or the first in tree order of a shared
// epoll's (the dump checked the targets' numbers there).
func (rs *restorer) registersEpoll(fd *image.FD) bool {
	if fd.Kind != image.FDEpoll || len(fd.Epoll) == 0 {
		return false
	}
	if fd.OpenID == 0 {
		return true
	}
	if rs.epollFirst == nil {
		rs.epollFirst = make(map[uint32]*image.FD)
		for _, t := range rs.tree.Tasks {
			for _, f := range t.FDs {
				if f.Kind == image.FDEpoll && f.OpenID != 0 && rs.epollFirst[f.OpenID] == nil {
					rs.epollFirst[f.OpenID] = f
				}
			}
		}
	}
	return rs.epollFirst[fd.OpenID] == fd
}

// closeOpenFD closes one of mmcr's opens and forgets it.
func (rs *restorer) closeOpenFD(fd int) {
	delete(rs.openFDs, fd)
	unix.Close(fd)
}

// closeOpens closes mmcr's opens of pipes and shared open file
// descriptions: once every task has taken its own, or on failure.
func (rs *restorer) closeOpens() {
	for fd := range rs.openFDs {
		unix.Close(fd)
	}
	clear(rs.openFDs)
	clear(rs.opens)
}

// madeByMmcr reports the fd kinds restore makes in mmcr and hands to the
// task (pidfd_getfd): eventfds, signalfds, timerfds, inotify instances,
// pidfds (of tasks of the tree, which exist by the time fds are made), TCP
// listeners and UDP sockets.
func madeByMmcr(k image.FDKind) bool {
	return k == image.FDEventfd || k == image.FDSignalfd || k == image.FDTimerfd || k == image.FDInotify ||
		k == image.FDPidfd || k == image.FDInet
}

// newInotify makes in mmcr an inotify instance with the dumped watches,
// each on its path with its events and its descriptor. The kernel hands
// descriptors out in turn from 1, so a gap (a watch removed before the
// dump) is filled by a watch of a file made for the while and removed
// once the real ones are in; the events that leaves are read off before
// a task gets the fd. Events queued at dump are not kept (nor by CRIU).
func newInotify(fd *image.FD) (_ int, err error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			unix.Close(ifd)
		}
	}()
	var spare string
	var fillers []int
	next := int32(1)
	for _, w := range fd.Inotify {
		for ; next < w.WD; next++ {
			if spare == "" {
				if spare, err = os.MkdirTemp("", "mmcr-inotify-"); err != nil {
					return 0, err
				}
				defer os.RemoveAll(spare)
			}
			p := filepath.Join(spare, strconv.Itoa(int(next)))
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return 0, err
			}
			wd, err := unix.InotifyAddWatch(ifd, p, unix.IN_ATTRIB)
			if err != nil || int32(wd) != next {
				return 0, fmt.Errorf("watch descriptor %d for a gap: got %d: %v", next, wd, err)
			}
			fillers = append(fillers, wd)
		}
		wd, err := unix.InotifyAddWatch(ifd, w.Path, w.Mask)
		if err != nil {
			return 0, fmt.Errorf("watch %d of %s (events %#x): %w", w.WD, w.Path, w.Mask, err)
		}
		if int32(wd) != w.WD {
			return 0, fmt.Errorf("watch of %s got descriptor %d, not the dumped %d (one inode watched twice?)", w.Path, wd, w.WD)
		}
		next++
	}
	for _, wd := range fillers {
		if _, err := unix.InotifyRmWatch(ifd, uint32(wd)); err != nil {
			return 0, fmt.Errorf("remove gap watch %d: %w", wd, err)
		}
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := unix.Read(ifd, buf); err != nil {
			if err != unix.EAGAIN {
				return 0, fmt.Errorf("read off the gap watches' events: %w", err)
			}
			break
		}
	}
	if fd.Flags&unix.O_NONBLOCK == 0 {
		if _, err := unix.FcntlInt(uintptr(ifd), unix.F_SETFL, 0); err != nil {
			return 0, err
		}
	}
	return ifd, nil
}

// newSignalfd makes in mmcr a signalfd of the dumped mask and mode. Its
// reads take the signals of the task that reads, not mmcr's.
func newSignalfd(fd *image.FD) (int, error) {
	flags := unix.SFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.SFD_NONBLOCK
	}
	mask := unix.Sigset_t{Val: [16]uint64{fd.Signalfd.Mask}}
	return unix.Signalfd(-1, &mask, flags)
}

// newTimerfd makes in mmcr a timerfd on the dumped clock, armed with the
// time it had left at dump and its period, with its expirations not read
// yet. A periodic timer that expired and was not read since has no time
// left (the kernel re-arms it at the read): it is armed for one period.
// An absolute one (TFD_TIMER_ABSTIME) is set absolute again, its time
// left from now.
func newTimerfd(fd *image.FD) (int, error) {
	t := fd.Timerfd
	flags := unix.TFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.TFD_NONBLOCK
	}
	tfd, err := unix.TimerfdCreate(int(t.Clock), flags)
	if err != nil {
		return 0, fmt.Errorf("timerfd_create on clock %d: %w", t.Clock, err)
	}
	value := t.ValueNsec
	if value == 0 && t.IntervalNsec != 0 && t.Ticks > 0 {
		value = t.IntervalNsec
	}
	// A disarmed timer keeps its period too (timerfd_gettime tells it).
	if value != 0 || t.IntervalNsec != 0 {
		its := unix.ItimerSpec{Interval: unix.NsecToTimespec(t.IntervalNsec), Value: unix.NsecToTimespec(value)}
		setFlags := 0
		if value != 0 && t.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0 {
			var now unix.Timespec
			if err := unix.ClockGettime(t.Clock, &now); err != nil {
				unix.Close(tfd)
				return 0, fmt.Errorf("clock %d: %w", t.Clock, err)
			}
			its.Value = unix.NsecToTimespec(now.Nano() + value)
			setFlags = int(t.SettimeFlags)
		}
		if err := unix.TimerfdSettime(tfd, setFlags, &its, nil); err != nil {
			unix.Close(tfd)
			return 0, fmt.Errorf("timerfd_settime %d ns, every %d ns: %w", value, t.IntervalNsec, err)
		}
	}
	if t.Ticks > 0 {
		ticks := t.Ticks
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(tfd), kernel.TfdIocSetTicks, uintptr(unsafe.Pointer(&ticks))); errno != 0 {
			unix.Close(tfd)
			return 0, fmt.Errorf("%d expirations not read (TFD_IOC_SET_TICKS): %w", t.Ticks, errno)
		}
	}
	return tfd, nil
}

// newEventfd makes in mmcr an eventfd with the dumped counter and mode.
func newEventfd(fd *image.FD) (int, error) {
	flags := unix.EFD_CLOEXEC
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.EFD_NONBLOCK
	}
	if fd.Eventfd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	// eventfd2 takes an unsigned int; a larger count is written on top.
	initval := min(fd.Eventfd.Count, math.MaxUint32)
	efd, err := unix.Eventfd(uint(initval), flags)
	if err != nil {
		return 0, err
	}
	if rest := fd.Eventfd.Count - initval; rest > 0 {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], rest)
		if _, err := unix.Write(efd, b[:]); err != nil {
			unix.Close(efd)
			return 0, fmt.Errorf("count %d: %w", fd.Eventfd.Count, err)
		}
	}
	return efd, nil
}
