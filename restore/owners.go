package restore

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
)

// restoreOwners gives every open file description its owner and signal
// again (F_SETOWN_EX, F_SETSIG), through mmcr's copy of one task's fd on
// it (pidfd_getfd: the same description), and O_ASYNC, through that fd in
// the task (setAsync). It runs once every task and thread exists:
// F_SETOWN_EX needs its owner alive. The owner's credentials, which the
// kernel checks before it signals, become mmcr's (root's). External fds
// (the stdio restore hands over) are left alone.
func (rs *restorer) restoreOwners() error {
	done := map[uint32]bool{}
	for _, tk := range rs.tasks {
		for _, fd := range tk.t.FDs {
			if fd.Kind == image.FDExternal || fd.Owner == nil && fd.Flags&unix.O_ASYNC == 0 {
				continue
			}
			if fd.OpenID != 0 {
				if done[fd.OpenID] {
					continue
				}
				done[fd.OpenID] = true
			}
			if err := setOwner(tk.t.PID, fd); err != nil {
				return fmt.Errorf("task %d: fd %d: %w", tk.t.PID, fd.Num, err)
			}
			if fd.Flags&unix.O_ASYNC != 0 {
				if err := setAsync(tk, fd.Num); err != nil {
					return fmt.Errorf("task %d: fd %d: set O_ASYNC: %w", tk.t.PID, fd.Num, err)
				}
			}
		}
	}
	return nil
}

// setOwner sets fd's owner and signal on task pid's fd.
func setOwner(pid int, fd *image.FD) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	mine, err := unix.PidfdGetfd(pidfd, fd.Num, 0)
	if err != nil {
		return os.NewSyscallError("pidfd_getfd", err)
	}
	defer unix.Close(mine)
	if o := fd.Owner; o != nil && o.PID != 0 {
		ex := kernel.FOwnerEx{Type: int32(o.Type), PID: int32(o.PID)}
		if _, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(mine), unix.F_SETOWN_EX, uintptr(unsafe.Pointer(&ex))); errno != 0 {
			return fmt.Errorf("set its owner (F_SETOWN_EX) to %d: %w", o.PID, errno)
		}
	}
	if o := fd.Owner; o != nil && o.Signal != 0 {
		if _, err := unix.FcntlInt(uintptr(mine), unix.F_SETSIG, o.Signal); err != nil {
			return fmt.Errorf("set its signal (F_SETSIG) to %d: %w", o.Signal, err)
		}
	}
	return nil
}

// setAsync sets O_ASYNC on the task's fd num with a remote fcntl: the
// kernel records the number of the fd that set it and puts it in the
// signal's si_fd, which must be the task's, not mmcr's copy's.
func setAsync(tk *task, num int) error {
	fl, err := tk.sys(unix.SYS_FCNTL, uint64(num), unix.F_GETFL)
	if err == nil {
		_, err = tk.sys(unix.SYS_FCNTL, uint64(num), unix.F_SETFL, fl|unix.O_ASYNC)
	}
	return err
}
