package image

import (
	"fmt"
	"reflect"
	"slices"
)

// sharesOpen says whether fds of kind k may share an open file
// description in an image (FD.OpenID): pipes and sockets always have one;
// regular files, directories, devices, eventfds, signalfds, timerfds,
// inotify instances, pidfds and epolls when shared. The fds of a shared
// epoll all list its targets; restore registers them in the first.
func sharesOpen(k FDKind) bool {
	return k == FDPipe || k == FDSocket || k == FDRegular || k == FDDir || k == FDCharDev || k == FDEventfd ||
		k == FDSignalfd || k == FDTimerfd || k == FDInotify || k == FDPidfd || k == FDEpoll || k == FDInet
}

// checkOpens checks the fds' open file descriptions: OpenIDs only on kinds
// that share them, numbered in order of first use, and the fds sharing one
// alike in what belongs to the description (kind, file or pipe, flags
// other than FD_CLOEXEC, offset, an eventfd's counter).
func checkOpens(t *Tree) error {
	var opens []*FD // by OpenID-1
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.OpenID == 0 {
				continue
			}
			if !sharesOpen(fd.Kind) {
				return fmt.Errorf("task %d: fd %d: open file %d on a %s fd", task.PID, fd.Num, fd.OpenID, fd.Kind)
			}
			switch {
			case fd.OpenID == uint32(len(opens)+1):
				opens = append(opens, fd)
			case fd.OpenID > uint32(len(opens)):
				return fmt.Errorf("task %d: fd %d: open file %d out of order", task.PID, fd.Num, fd.OpenID)
			default:
				if o := opens[fd.OpenID-1]; o.Kind != fd.Kind || o.FileID != fd.FileID || o.PipeID != fd.PipeID || o.SocketID != fd.SocketID ||
					o.Flags&^oCloexec != fd.Flags&^oCloexec || o.Pos != fd.Pos ||
					(o.Eventfd != nil) != (fd.Eventfd != nil) || o.Eventfd != nil && *o.Eventfd != *fd.Eventfd ||
					(o.Signalfd != nil) != (fd.Signalfd != nil) || o.Signalfd != nil && *o.Signalfd != *fd.Signalfd ||
					(o.Timerfd != nil) != (fd.Timerfd != nil) || o.Timerfd != nil && *o.Timerfd != *fd.Timerfd ||
					!reflect.DeepEqual(o.Inotify, fd.Inotify) || o.PidfdPID != fd.PidfdPID ||
					!slices.Equal(o.Epoll, fd.Epoll) || o.InetID != fd.InetID {
					return fmt.Errorf("task %d: fd %d: open file %d shared with fd %d of another file or other flags or offset",
						task.PID, fd.Num, fd.OpenID, o.Num)
				}
			}
		}
	}
	return nil
}

// NumberOpens renumbers the tree's OpenIDs, which may be any values
// standing for open file descriptions, as an image has them: 1, 2... in
// order of first use, and 0 for a regular file, directory, device or
// eventfd fd no other fd shares its description with.
func NumberOpens(t *Tree) {
	users := map[uint32]int{}
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.OpenID != 0 {
				users[fd.OpenID]++
			}
		}
	}
	dense := map[uint32]uint32{}
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			switch {
			case fd.OpenID == 0:
			case users[fd.OpenID] < 2 && fd.Kind != FDPipe && fd.Kind != FDSocket:
				fd.OpenID = 0
			default:
				if dense[fd.OpenID] == 0 {
					dense[fd.OpenID] = uint32(len(dense) + 1)
				}
				fd.OpenID = dense[fd.OpenID]
			}
		}
	}
}
