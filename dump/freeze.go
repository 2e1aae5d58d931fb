package dump

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// maxFreezePasses bounds the freeze loop: a tree still growing after this
// many passes is forking faster than it can be frozen.
const maxFreezePasses = 64

// freeze seizes every thread of every task in the tree, pass after pass,
// until a pass seizes nothing new: a thread or child created while an
// earlier pass ran is caught by the next one, and once every thread is
// stopped nothing can create more. The last pass's walk is the tree.
func (d *dumper) freeze() error {
	for pass := 0; pass < maxFreezePasses; pass++ {
		if err := d.canceled(); err != nil {
			return err
		}
		grew, err := d.scan()
		if err != nil {
			return err
		}
		if !grew {
			return nil
		}
	}
	return fmt.Errorf("task %d: tree still growing after %d freeze passes", d.opts.PID, maxFreezePasses)
}

// scan walks the tree from the root in tree order (pre-order, children by
// pid), seizing every thread not yet seized. It rebuilds d.order and
// d.threads and reports whether it seized anything.
func (d *dumper) scan() (grew bool, err error) {
	d.order = d.order[:0]
	d.zombies = d.zombies[:0]
	clear(d.threads)
	visited := make(map[int]bool)

	var visit func(pid int) error
	visit = func(pid int) error {
		visited[pid] = true
		tids, err := d.fs.Threads(pid)
		if err != nil {
			if pid != d.opts.PID && processGone(pid) {
				return nil // a child reaped at once (SIGCHLD ignored) while we looked
			}
			return taskErr(pid, "list threads", err)
		}
		// Leader first, then by tid.
		slices.Sort(tids)
		if i := slices.Index(tids, pid); i > 0 {
			tids = append(append([]int{pid}, tids[:i]...), tids[i+1:]...)
		} else if i < 0 {
			return taskErr(pid, "list threads", errors.New("thread group leader has exited"))
		}
		var live []int
		for _, tid := range tids {
			if !d.seizedSet[tid] {
				// A thread another process traces refuses the seize with
				// EPERM at once (explainSeize names the tracer): no wait.
				st, err := ptrace.SeizeStop(tid)
				if err != nil {
					if tid != pid && threadGone(pid, tid) {
						continue // exited while we looked: nothing to dump
					}
					if tid == pid && pid != d.opts.PID && processGone(pid) {
						return nil
					}
					if tid == pid && pid != d.opts.PID && len(tids) == 1 {
						if z, ok := d.zombie(pid); ok {
							d.zombies = append(d.zombies, z)
							return nil
						}
					}
					return taskErr(pid, "seize thread "+strconv.Itoa(tid), d.explainSeize(pid, tid, err))
				}
				d.seizedSet[tid] = true
				d.seized = append(d.seized, tid)
				grew = true
				d.log.Debug("seized", "pid", pid, "tid", tid, "stop", st.String(), "group-stop", st.IsGroupStop())
				if tid == pid && st.IsGroupStop() {
					d.jobStopped[pid] = true
				}
			}
			live = append(live, tid)
		}
		d.threads[pid] = live
		d.order = append(d.order, pid)

		var kids []int
		for _, tid := range live {
			c, err := d.fs.Children(pid, tid)
			if err != nil {
				if threadGone(pid, tid) {
					continue
				}
				return taskErr(pid, fmt.Sprintf("list children of thread %d", tid), err)
			}
			kids = append(kids, c...)
		}
		slices.Sort(kids)
		kids = slices.Compact(kids)
		for _, k := range kids {
			if !visited[k] {
				if err := visit(k); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return grew, visit(d.opts.PID)
}

// zombie returns the task of pid if it is a zombie: a child that has
// exited and waits for its parent's wait (which its frozen parent cannot
// call). It has no threads, memory or children left; restore makes it
// again and lets it end the same way.
func (d *dumper) zombie(pid int) (*image.Task, bool) {
	st, err := d.fs.Stat(pid)
	if err != nil || st.State != 'Z' || image.CheckExitStatus(st.ExitCode) != nil {
		return nil, false
	}
	d.log.Debug("zombie", "pid", pid, "ppid", st.PPID, "exit status", st.ExitCode)
	return &image.Task{PID: pid, PPID: st.PPID, PGID: st.PGID, SID: st.SID, Comm: st.Comm,
		Zombie: true, ExitStatus: st.ExitCode, Threads: []*image.Thread{{TID: pid}}}, true
}

// explainSeize turns the usual seize failures into something a user can
// act on.
func (d *dumper) explainSeize(pid, tid int, err error) error {
	if st, serr := d.fs.Stat(pid); serr == nil && st.State == 'Z' {
		if tids, terr := d.fs.Threads(pid); terr == nil && len(tids) > 1 {
			return fmt.Errorf("its main thread has exited while other threads (%d) still run: %w", len(tids)-1, ErrUnsupported)
		}
		return fmt.Errorf("task is a zombie (its parent has not reaped it): %w", err)
	}
	if errors.Is(err, unix.EPERM) {
		if tp, terr := tracerOf(pid, tid); terr == nil && tp != 0 {
			return fmt.Errorf("pid %d is already traced by %d (another mmcr?): %w", tid, processOf(tp), err)
		}
		return explainDenied(pid, err)
	}
	return err
}

// threadGone reports whether thread tid of pid no longer exists.
func threadGone(pid, tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return errors.Is(err, fs.ErrNotExist)
}

// processGone reports whether pid no longer exists (not even as a zombie).
func processGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, fs.ErrNotExist)
}

// detachAll detaches every seized thread, leaving it to run on (or stay
// in the group-stop it was in), the last seized first: children before
// their parents, so that no parent runs while a child it may kill or wait
// for is still traced (a traced child's exit goes to its tracer, and its
// parent's wait would hang until the tracer let go of it). A thread that
// exited anyway is collected, which hands its exit to its parent. It
// returns the first real failure.
func (d *dumper) detachAll() error {
	var first error
	for i := len(d.seized) - 1; i >= 0; i-- {
		tid := d.seized[i]
		err := ptrace.Detach(tid)
		if errors.Is(err, unix.ESRCH) {
			var ws unix.WaitStatus
			unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
			continue
		}
		if err != nil {
			d.log.Warn("detach", "tid", tid, "err", err)
			if first == nil {
				first = fmt.Errorf("detach thread %d: %w", tid, err)
			}
		}
	}
	d.seized = nil
	clear(d.seizedSet)
	return first
}

// killAll ends the dumped tree: SIGKILL to every task, and waits until
// each one is exiting (it was stopped, so it runs no code of its own on
// the way). The rest of the exit, freeing the task's memory (~120 ms per
// GiB here), goes on without holding up the dump: a goroutine collects
// each thread's exit as its tracer so the real parent sees the death at
// once. A thread that does not report within a few seconds (stuck in an
// uninterruptible sleep) is left to the kernel, as is every thread when
// the process ends first (the kernel detaches its tracees).
func (d *dumper) killAll() {
	for _, pid := range d.order {
		if err := ptrace.Kill(pid); err != nil && !errors.Is(err, unix.ESRCH) {
			d.log.Warn("kill", "pid", pid, "err", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range d.order {
		d.waitExiting(pid, deadline)
	}
	// Non-leader threads first: a leader is reported only once its
	// threads are gone. wait4 from any thread of mmcr collects a tracee.
	var tids []int
	for _, pid := range d.order {
		ts := d.threads[pid]
		for i := len(ts) - 1; i >= 0; i-- {
			tids = append(tids, ts[i])
		}
	}
	go func() {
		for _, tid := range tids {
			reapTraced(tid, deadline)
		}
	}()
	d.seized = nil
	clear(d.seizedSet)
}

// pfExiting is PF_EXITING of /proc/PID/stat's flags: do_exit has begun.
const pfExiting = 0x4

// waitExiting waits until pid is exiting or gone, up to deadline.
func (d *dumper) waitExiting(pid int, deadline time.Time) {
	for time.Now().Before(deadline) {
		st, err := d.fs.Stat(pid)
		if err != nil || st.Flags&pfExiting != 0 || st.State == 'Z' || st.State == 'X' {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// reapTraced waits (as tracer) for tid's exit, up to deadline.
func reapTraced(tid int, deadline time.Time) {
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil: // ECHILD: already reaped or not ours
			return
		case wpid == tid && (ws.Exited() || ws.Signaled()):
			return
		case wpid == tid:
			continue // a stop reported before the kill landed
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
