package restore

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/procfs"
)

// restoreSched gives tk's threads their dumped scheduling state and the
// task its oom_score_adj. mmcr sets them from outside (setpriority,
// sched_setattr, /proc/PID/oom_score_adj) while the task is stopped for
// the last time, just before release detaches it: no task runs the
// restore's own remote syscalls at a real-time priority, or starved under
// SCHED_IDLE. What the image lacks (written before mmcr kept it) is left
// as the task has it.
func (rs *restorer) restoreSched(tk *task) error {
	for _, thr := range tk.threads {
		if s := thr.th.Sched; s != nil {
			if err := rs.setSched(tk.t.PID, thr.tid, s); err != nil {
				return err
			}
		}
		if cpus := thr.th.CPUAffinity; len(cpus) > 0 {
			rs.setAffinity(tk.t.PID, thr.tid, cpus)
		}
		if v := thr.th.IOPrio; v != 0 {
			if err := kernel.IOPrioSet(thr.tid, v); err != nil {
				rs.log.Warn("I/O priority not restored", "pid", tk.t.PID, "tid", thr.tid, "ioprio", fmt.Sprintf("%#x", v), "err", err)
			}
		}
	}
	if v := tk.t.CoredumpFilter; v != nil {
		path := fmt.Sprintf("/proc/%d/coredump_filter", tk.t.PID)
		if err := os.WriteFile(path, fmt.Appendf(nil, "%#x", *v), 0); err != nil {
			rs.log.Warn("coredump_filter not restored", "pid", tk.t.PID, "coredump_filter", fmt.Sprintf("%#x", *v), "err", err)
		}
	}
	if v := tk.t.OomScoreAdj; v != nil {
		return rs.setOomScoreAdj(tk.t.PID, *v)
	}
	return nil
}

// setSched sets thread tid's nice value, then its policy, real-time
// priority and reset-on-fork flag. The nice value goes first and by
// setpriority: sched_setattr sets it under SCHED_OTHER and SCHED_BATCH
// only, and the kernel keeps it under the other policies too.
//
// A refusal for want of rights (a lower nice value, or a real-time
// policy, without CAP_SYS_NICE or an RLIMIT_NICE/RLIMIT_RTPRIO of the
// task that allows it) leaves that part as the thread has it, with a
// warning; any other failure is an error.
func (rs *restorer) setSched(pid, tid int, s *image.Sched) error {
	nice := int(s.Nice)
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		if !isPermission(err) {
			return fmt.Errorf("task %d: thread %d: set nice %d: %w", pid, tid, nice, os.NewSyscallError("setpriority", err))
		}
		prio, gerr := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if gerr != nil {
			return fmt.Errorf("task %d: thread %d: read nice: %w", pid, tid, os.NewSyscallError("getpriority", gerr))
		}
		// What the thread has is what sched_setattr must ask for, or it
		// is refused the policy too.
		kept := 20 - prio
		rs.log.Warn("nice value not restored", "pid", pid, "tid", tid, "nice", nice, "kept", kept, "err", err)
		nice = kept
	}
	attr := unix.SchedAttr{Policy: s.Policy &^ image.SchedResetOnFork, Priority: s.Prio, Nice: int32(nice)}
	if s.Policy&image.SchedResetOnFork != 0 {
		attr.Flags = unix.SCHED_FLAG_RESET_ON_FORK
	}
	if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
		if !isPermission(err) {
			return fmt.Errorf("task %d: thread %d: set %s priority %d: %w", pid, tid, policyName(s.Policy), s.Prio,
				os.NewSyscallError("sched_setattr", err))
		}
		kept := "unknown"
		if cur, gerr := unix.SchedGetAttr(tid, 0); gerr == nil {
			p := cur.Policy
			if cur.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0 {
				p |= image.SchedResetOnFork
			}
			kept = fmt.Sprintf("%s priority %d", policyName(p), cur.Priority)
		}
		rs.log.Warn("scheduling policy not restored", "pid", pid, "tid", tid, "policy", policyName(s.Policy),
			"priority", s.Prio, "kept", kept, "err", err)
	}
	return nil
}

// setOomScoreAdj writes task pid's oom_score_adj. The task has the
// stub's, so mmcr's, until here; going below the lowest value someone
// with CAP_SYS_RESOURCE set for it (inherited too) takes CAP_SYS_RESOURCE,
// which root in a container often lacks: such a refusal is a warning.
func (rs *restorer) setOomScoreAdj(pid, v int) error {
	cur, err := procfs.Default.OomScoreAdj(pid)
	if err != nil {
		return fmt.Errorf("task %d: read oom_score_adj: %w", pid, err)
	}
	if cur == v {
		return nil
	}
	name := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = &os.PathError{Op: "open", Path: name, Err: err}
	} else {
		_, werr := unix.Write(fd, []byte(strconv.Itoa(v)))
		unix.Close(fd)
		if werr != nil {
			err = &os.PathError{Op: "write", Path: name, Err: werr}
		}
	}
	if err == nil {
		return nil
	}
	if !isPermission(err) {
		return fmt.Errorf("task %d: set oom_score_adj %d: %w", pid, v, err)
	}
	rs.log.Warn("oom_score_adj not restored", "pid", pid, "oom_score_adj", v, "kept", cur, "err", err)
	return nil
}

// isPermission says whether the kernel refused for want of rights.
func isPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// policyName names a scheduling policy as sched_getscheduler reports it.
func policyName(p uint32) string {
	names := map[uint32]string{image.SchedOther: "SCHED_OTHER", image.SchedFIFO: "SCHED_FIFO",
		image.SchedRR: "SCHED_RR", image.SchedBatch: "SCHED_BATCH", image.SchedIdle: "SCHED_IDLE"}
	n, ok := names[p&^image.SchedResetOnFork]
	if !ok {
		n = fmt.Sprintf("policy %d", p&^image.SchedResetOnFork)
	}
	if p&image.SchedResetOnFork != 0 {
		n += "|SCHED_RESET_ON_FORK"
	}
	return n
}

// setAffinity keeps thread tid on the dumped CPUs. Where none of them is
// online here (another machine), the thread stays free, with a warning.
func (rs *restorer) setAffinity(pid, tid int, cpus []uint64) {
	var set unix.CPUSet
	for i := 0; i < len(cpus) && i < len(set); i++ {
		for b := range 64 {
			if cpus[i]&(1<<b) != 0 {
				set.Set(64*i + b)
			}
		}
	}
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		rs.log.Warn("CPU affinity not restored", "pid", pid, "tid", tid, "cpus", fmt.Sprintf("%#x", cpus), "err", err)
	}
}
