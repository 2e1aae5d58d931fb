package ptrace

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stop describes why a tracee stopped (from wait4 with __WALL).
type Stop struct {
	TID    int
	Status unix.WaitStatus
}

// Signal is the stop signal (SIGTRAP|0x80 for a syscall stop).
func (s Stop) Signal() unix.Signal { return s.Status.StopSignal() }

// Event is the PTRACE_EVENT_* in bits 16..23 of the status, 0 for none.
func (s Stop) Event() int { return int(uint32(s.Status)>>16) & 0xff }

// IsSyscall reports a syscall-entry or -exit stop (needs TRACESYSGOOD).
func (s Stop) IsSyscall() bool {
	return s.Status.Stopped() && s.Event() == 0 && int(s.Signal()) == sysGood
}

// IsEventStop reports a PTRACE_EVENT_STOP: an interrupt or, for a seized
// task, a group-stop (then Signal is the stopping signal).
func (s Stop) IsEventStop() bool { return s.Status.Stopped() && s.Event() == eventStop }

// IsGroupStop reports a PTRACE_EVENT_STOP caused by job control: the task
// was (or became) stopped by SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU and stays
// stopped after Detach.
func (s Stop) IsGroupStop() bool {
	if !s.IsEventStop() {
		return false
	}
	switch s.Signal() {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return true
	}
	return false
}

// IsSignalDelivery reports a signal-delivery-stop: the task is about to
// take Signal; resuming with sig 0 discards it.
func (s Stop) IsSignalDelivery() bool {
	return s.Status.Stopped() && s.Event() == 0 && int(s.Signal()) != sysGood
}

func (s Stop) String() string {
	w := s.Status
	switch {
	case w.Exited():
		return fmt.Sprintf("exited with status %d", w.ExitStatus())
	case w.Signaled():
		return fmt.Sprintf("killed by %v", w.Signal())
	case s.IsSyscall():
		return "syscall stop"
	case s.Event() != 0:
		return fmt.Sprintf("event %d stop (%v)", s.Event(), s.Signal())
	case w.Stopped():
		return fmt.Sprintf("signal-delivery stop (%v)", s.Signal())
	}
	return fmt.Sprintf("status %#x", uint32(w))
}

// maxSeizeSignals bounds how many racing signal-delivery-stops Seize lets
// through before giving up on a task that is being flooded with signals.
const maxSeizeSignals = 64

// Seize attaches to thread tid with PTRACE_SEIZE (option TRACESYSGOOD;
// add TRACECLONE etc. with SetOptions, EXITKILL never) and interrupts it
// with PTRACE_INTERRUPT, waiting until it is stopped. ESRCH becomes an
// error naming tid.
func Seize(tid int) error {
	_, err := SeizeStop(tid)
	return err
}

// SeizeStop is Seize returning the PTRACE_EVENT_STOP it waited for; its
// IsGroupStop tells whether the task was stopped by job control.
//
// A signal-delivery-stop may be reported before the interrupt trap (the
// task had already dequeued a signal when it was seized). Like CRIU, Seize
// lets the task take that signal at once and waits again: the interrupt
// stays pending and traps right after, so the frozen state is as if the
// signal had arrived just before the freeze, and no signal is lost when
// the dumped task is killed. A fatal signal ends the task: ErrExited.
func SeizeStop(tid int) (Stop, error) {
	if _, err := req("PTRACE_SEIZE", reqSeize, tid, 0, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return Stop{TID: tid}, err
	}
	if err := Interrupt(tid); err != nil {
		return Stop{TID: tid}, err
	}
	for i := 0; ; i++ {
		st, err := waitTimeout(tid, seizeTimeout)
		if err != nil {
			return st, err
		}
		if st.IsEventStop() {
			return st, nil
		}
		if i >= maxSeizeSignals || !st.IsSignalDelivery() {
			return st, unexpectedStop(tid, st)
		}
		seizeSignals.Add(1)
		if err := Cont(tid, int(st.Signal())); err != nil {
			return st, err
		}
	}
}

// Interrupt sends PTRACE_INTERRUPT to a seized thread; it stops with a
// PTRACE_EVENT_STOP that Wait collects.
func Interrupt(tid int) error {
	_, err := req("PTRACE_INTERRUPT", reqInterrupt, tid, 0, 0)
	return err
}

// Detach detaches from a stopped thread, letting it run on (a task in a
// group-stop stays stopped).
func Detach(tid int) error { return DetachSignal(tid, 0) }

// DetachSignal is Detach from a signal-delivery-stop that delivers sig
// instead of the stop's own signal (0: none): SIGSTOP leaves the thread in
// a group stop.
func DetachSignal(tid, sig int) error {
	_, err := req("PTRACE_DETACH", unix.PTRACE_DETACH, tid, 0, uintptr(sig))
	return err
}

// SetOptions sets ptrace options (PTRACE_O_*) on an attached thread. It
// replaces the options: include PTRACE_O_TRACESYSGOOD, which Remote needs.
func SetOptions(tid int, options int) error {
	_, err := req("PTRACE_SETOPTIONS", unix.PTRACE_SETOPTIONS, tid, 0, uintptr(options))
	return err
}

// Cont resumes a stopped thread with PTRACE_CONT, delivering sig (0: none).
func Cont(tid int, sig int) error {
	_, err := req("PTRACE_CONT", unix.PTRACE_CONT, tid, 0, uintptr(sig))
	return err
}

// GetEventMsg returns PTRACE_GETEVENTMSG: the new pid after a
// clone/fork/vfork event stop, the exit status after an exit event.
func GetEventMsg(tid int) (uint64, error) {
	var msg uint64
	_, err := reqPtr("PTRACE_GETEVENTMSG", unix.PTRACE_GETEVENTMSG, tid, 0, unsafe.Pointer(&msg))
	return msg, err
}

// GetSigInfo returns the siginfo of the signal that caused the current
// stop (PTRACE_GETSIGINFO).
func GetSigInfo(tid int) (unix.Siginfo, error) {
	var si unix.Siginfo
	_, err := reqPtr("PTRACE_GETSIGINFO", unix.PTRACE_GETSIGINFO, tid, 0, unsafe.Pointer(&si))
	return si, err
}

// Kill sends SIGKILL to the thread group of tid (kill(2) with a thread id
// targets the whole process). It does not reap: Wait for it afterwards.
func Kill(tid int) error {
	if err := unix.Kill(tid, unix.SIGKILL); err != nil {
		return &TaskError{TID: tid, Op: "kill", Err: os.NewSyscallError("kill", err)}
	}
	return nil
}

// SeizeTimeout bounds how long Seize waits for the interrupt to stop the
// task. A task in uninterruptible sleep (D state, or a vfork parent
// waiting for its child) does not stop until it leaves it; Seize then
// fails with ErrNotStopped instead of hanging, and the task stays
// attached and running until the tracer thread detaches it by exiting or
// a later Wait collects its stop.
const SeizeTimeout = 10 * time.Second

var seizeTimeout = SeizeTimeout // shortened by tests

// seizeSignals counts signals SeizeStop let through; tests read it.
var seizeSignals atomic.Int64

// waitTimeout is Wait giving up after d; it polls with WNOHANG because a
// ptrace stop has no pollable file descriptor.
func waitTimeout(tid int, d time.Duration) (Stop, error) {
	deadline := time.Now().Add(d)
	pause := 50 * time.Microsecond
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return Stop{TID: tid}, &TaskError{TID: tid, Op: "wait", Err: os.NewSyscallError("wait4", err)}
		case wpid == tid:
			return waitResult(wpid, ws)
		}
		if time.Now().After(deadline) {
			return Stop{TID: tid}, &TaskError{TID: tid, Op: "wait", Err: fmt.Errorf("%w after %v (state %s)", ErrNotStopped, d, taskState(tid))}
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// taskState is the state letter from /proc/TID/stat, for error messages.
func taskState(tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
	if err != nil {
		return "unknown"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "unknown"
}

func waitResult(wpid int, ws unix.WaitStatus) (Stop, error) {
	st := Stop{TID: wpid, Status: ws}
	if ws.Exited() || ws.Signaled() {
		return st, &TaskError{TID: wpid, Op: "wait", Err: fmt.Errorf("%w: %v", ErrExited, st)}
	}
	return st, nil
}

// Wait waits for tid to stop (or exit: then an error naming tid and how it
// ended, wrapping ErrExited, with the Stop still filled in). tid -1 waits
// for any child or tracee; Stop.TID says which one (beware: that also
// reaps children started with os/exec whose Cmd.Wait is still to come).
func Wait(tid int) (Stop, error) {
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stop{TID: tid}, &TaskError{TID: tid, Op: "wait", Err: os.NewSyscallError("wait4", err)}
		}
		return waitResult(wpid, ws)
	}
}
