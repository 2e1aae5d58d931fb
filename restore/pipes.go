package restore

import (
	"fmt"

	"github.com/mmcr/mmcr/image"
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
// writer) again. mmcr's own fds go with closePipes.
func (rs *restorer) makePipes() error {
	if len(rs.tree.Pipes) == 0 {
		return nil
	}
	rs.pipeFDs = map[int]bool{}
	ends := make([][2]int, len(rs.tree.Pipes)) // mmcr's read and write end of each pipe
	for i, p := range rs.tree.Pipes {
		if err := unix.Pipe2(ends[i][:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return fmt.Errorf("pipe:[%d]: %w", p.Ino, err)
		}
		rs.pipeFDs[ends[i][0]], rs.pipeFDs[ends[i][1]] = true, true
		if err := fillPipe(ends[i][1], p); err != nil {
			return fmt.Errorf("pipe:[%d]: %w", p.Ino, err)
		}
	}
	used := make([][2]bool, len(rs.tree.Pipes))
	rs.pipeOpens = map[uint32]int{}
	for _, t := range rs.tree.Tasks {
		for _, fd := range t.FDs {
			if fd.Kind != image.FDPipe || rs.pipeOpens[fd.OpenID] != 0 {
				continue
			}
			p := rs.tree.PipeByID(fd.PipeID)
			end := 0
			if fd.Flags&unix.O_ACCMODE == unix.O_WRONLY {
				end = 1
			}
			mine := ends[p.ID-1][end]
			if used[p.ID-1][end] {
				// Another description of this end: a new open of the pipe
				// (the other end is open in mmcr, so a writer's does not
				// wait for a reader).
				var err error
				mine, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", mine), fd.Flags&unix.O_ACCMODE|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
				if err != nil {
					return fmt.Errorf("pipe:[%d]: open another description of fd %d of task %d: %w", p.Ino, fd.Num, t.PID, err)
				}
				rs.pipeFDs[mine] = true
			}
			used[p.ID-1][end] = true
			if _, err := unix.FcntlInt(uintptr(mine), unix.F_SETFL, fd.Flags&pipeFlags); err != nil {
				return fmt.Errorf("pipe:[%d]: flags %#o of fd %d of task %d: %w", p.Ino, fd.Flags&pipeFlags, fd.Num, t.PID, err)
			}
			rs.pipeOpens[fd.OpenID] = mine
		}
	}
	for i := range ends {
		for end := range 2 {
			if !used[i][end] {
				rs.closePipeFD(ends[i][end])
			}
		}
	}
	return nil
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

// closePipeFD closes one of mmcr's pipe fds and forgets it.
func (rs *restorer) closePipeFD(fd int) {
	delete(rs.pipeFDs, fd)
	unix.Close(fd)
}

// closePipes closes mmcr's pipe fds: once every task has taken its own,
// or on failure.
func (rs *restorer) closePipes() {
	for fd := range rs.pipeFDs {
		unix.Close(fd)
	}
	rs.pipeFDs, rs.pipeOpens = nil, nil
}
