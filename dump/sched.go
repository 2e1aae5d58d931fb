package dump

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// readSched reads thread tid's scheduling state. Neither call needs
// ptrace, nor a right over the thread: collectProc makes them.
//
// The policy, its reset-on-fork flag and the real-time priority come from
// sched_getattr. The nice value comes from getpriority: sched_getattr
// reports 0 for a real-time thread, whose nice the kernel still keeps.
// SCHED_DEADLINE (runtime, deadline, period) and sched_ext are refused,
// naming the thread and its task: restore could not give them back.
func readSched(pid, tid int) (*image.Sched, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return nil, taskErr(pid, "read scheduling state of thread "+strconv.Itoa(tid), os.NewSyscallError("sched_getattr", err))
	}
	switch attr.Policy {
	case image.SchedOther, image.SchedFIFO, image.SchedRR, image.SchedBatch, image.SchedIdle:
	case unix.SCHED_DEADLINE:
		return nil, fmt.Errorf("thread %d of task %d runs SCHED_DEADLINE: %w", tid, pid, ErrUnsupported)
	case unix.SCHED_EXT:
		return nil, fmt.Errorf("thread %d of task %d runs SCHED_EXT: %w", tid, pid, ErrUnsupported)
	default:
		return nil, fmt.Errorf("thread %d of task %d runs scheduling policy %d: %w", tid, pid, attr.Policy, ErrUnsupported)
	}
	// The raw syscall returns 20 - nice, so that no nice reads as an error.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return nil, taskErr(pid, "read nice value of thread "+strconv.Itoa(tid), os.NewSyscallError("getpriority", err))
	}
	s := &image.Sched{Policy: attr.Policy, Prio: attr.Priority, Nice: int32(20 - prio)}
	if attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0 {
		s.Policy |= image.SchedResetOnFork
	}
	return s, nil
}
