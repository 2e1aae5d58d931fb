package restore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
)

// makeZombie makes t, a zombie at dump, again: a fork of its restored
// parent that joins its session or group, takes its name and ends the way
// it ended (its exit code, or its fatal signal), then waits as a zombie
// for the parent's wait. The parent's SIGCHLD for it is taken back: the
// parent had its own at dump, delivered or (in the image) pending.
func (rs *restorer) makeZombie(t *image.Task) error {
	parent := rs.byPID[t.PPID]
	if parent == nil {
		return fmt.Errorf("zombie %d: parent %d not restored before it", t.PID, t.PPID)
	}
	// An ignored SIGCHLD (SIG_IGN, inherited from whoever ran mmcr) would
	// have the kernel reap the child at once. The parent's own action
	// comes back with the rest of its state.
	if err := rs.defaultAction(parent.r, unix.SIGCHLD); err != nil {
		return fmt.Errorf("zombie %d: default SIGCHLD action in parent %d: %w", t.PID, t.PPID, err)
	}
	if err := rs.clone(parent.r, t.PID, 0); err != nil {
		return err
	}
	rs.created = append(rs.created, t.PID)
	if _, err := ptrace.Wait(t.PID); err != nil {
		return fmt.Errorf("first stop of new task %d: %w", t.PID, err)
	}
	r, err := ptrace.NewRemote(t.PID, rs.area)
	if err != nil {
		return err
	}
	if err := rs.zombieIdentity(r, t); err != nil {
		return fmt.Errorf("zombie %d: %w", t.PID, err)
	}
	if err := rs.endTask(r, t.ExitStatus); err != nil {
		return fmt.Errorf("zombie %d: end with status %#x: %w", t.PID, t.ExitStatus, err)
	}
	// The kernel told the parent when mmcr, the tracer, collected the
	// exit: the zombie is now the parent's to wait for.
	st, err := procfs.Default.Stat(t.PID)
	if err != nil {
		return fmt.Errorf("zombie %d: %w", t.PID, err)
	}
	if st.State != 'Z' || st.ExitCode&^coreDumped != t.ExitStatus&^coreDumped {
		return fmt.Errorf("zombie %d: state %c, exit status %#x after its end, want a zombie with %#x",
			t.PID, st.State, st.ExitCode, t.ExitStatus)
	}
	// (The scratch area's arguments are written anew for each call: the
	// clone above wrote its own there.)
	s := rs.newScratch()
	chld := s.u64s(ptrace.SigBit(unix.SIGCHLD))
	now := s.u64s(0, 0) // struct timespec: no wait
	if err := s.write(parent.t.PID); err != nil {
		return err
	}
	if _, err := parent.sys(unix.SYS_RT_SIGTIMEDWAIT, chld, 0, now, 8); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("zombie %d: take back its SIGCHLD from parent %d: %w", t.PID, t.PPID, err)
	}
	rs.log.Debug("zombie made", "pid", t.PID, "ppid", t.PPID, "exit status", t.ExitStatus)
	return nil
}

// coreDumped is the wait status bit of a death that dumped core.
const coreDumped = 0x80

// zombieIdentity gives the zombie-to-be its session or process group and
// its name: what ps shows of a zombie, and what a kill of its group
// reaches.
func (rs *restorer) zombieIdentity(r *ptrace.Remote, t *image.Task) error {
	if t.SID == t.PID {
		if _, err := r.Syscall(unix.SYS_SETSID); err != nil {
			return err
		}
	} else if pgid, _ := unix.Getpgid(t.PID); pgid != t.PGID {
		// Its own group (t.PGID == t.PID), or one led by a task made
		// before it (zombies come after every live task).
		if _, err := r.Syscall(unix.SYS_SETPGID, 0, uint64(t.PGID)); err != nil {
			rs.log.Warn("cannot restore process group", "pid", t.PID, "pgid", t.PGID, "err", err)
		}
	}
	s := rs.newScratch()
	name := s.str(t.Comm)
	if err := s.write(t.PID); err != nil {
		return err
	}
	_, err := r.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, name)
	return err
}

// endTask makes the stopped task behind r end with wait status ws: it
// calls exit_group with the code, or takes the signal with its default
// action, undumpable so that no core file is written (a death that dumped
// core comes back without the core bit). The tracer collects the end,
// which hands the zombie to the task's parent.
func (rs *restorer) endTask(r *ptrace.Remote, ws int) error {
	status := unix.WaitStatus(ws)
	tid := r.TID
	if status.Exited() {
		_, err := r.Syscall(unix.SYS_EXIT_GROUP, uint64(status.ExitStatus()))
		return ended(err)
	}
	sig := status.Signal()
	if sig != unix.SIGKILL {
		if err := rs.defaultAction(r, sig); err != nil {
			return err
		}
		if _, err := r.Syscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0); err != nil {
			return err
		}
	}
	if _, err := r.Syscall(unix.SYS_KILL, uint64(tid), uint64(sig)); err != nil {
		return ended(err) // SIGKILL: dead before the syscall returns
	}
	// Remote syscalls run with every signal blocked: let this one in.
	// Leaving the syscall the thread meets it, and its delivery stop
	// comes to the tracer, which passes it on.
	if err := ptrace.SetSigMask(tid, ^ptrace.SigBit(sig)); err != nil {
		return err
	}
	for range 8 {
		if err := ptrace.Cont(tid, 0); err != nil {
			return err
		}
		st, err := ptrace.Wait(tid)
		if err != nil {
			return ended(err)
		}
		if st.IsSignalDelivery() && st.Signal() == sig {
			if err := ptrace.Cont(tid, int(sig)); err != nil {
				return err
			}
			_, err := ptrace.Wait(tid)
			return ended(err)
		}
	}
	return fmt.Errorf("task %d did not take signal %d", tid, sig)
}

// defaultAction sets the action of sig to SIG_DFL in the task behind r.
func (rs *restorer) defaultAction(r *ptrace.Remote, sig unix.Signal) error {
	s := rs.newScratch()
	dfl := s.u64s(0, 0, 0, 0) // struct sigaction: SIG_DFL, no flags, no restorer, empty mask
	if err := s.write(r.TID); err != nil {
		return err
	}
	_, err := r.Syscall(unix.SYS_RT_SIGACTION, uint64(sig), dfl, 0, 8)
	return err
}

// ended turns the error of a wait that saw the task end into nil.
func ended(err error) error {
	if errors.Is(err, ptrace.ErrExited) {
		return nil
	}
	if err == nil {
		return errors.New("the task did not end")
	}
	return err
}
