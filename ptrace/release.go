package ptrace

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// StopInSignal moves stopped thread tid from whatever ptrace stop it is in
// to a signal-delivery-stop, the one place where the kernel applies its own syscall-restart logic to the registers a tracer
// sets before letting the thread go.
//
// Why it matters: a thread checkpointed inside a blocking syscall has
// orig_rax >= 0 and rax = -ERESTARTSYS (or -ERESTARTNOHAND, -ERESTARTNOINTR).
// Set at a syscall-exit stop, such registers would reach user space as
// they are, so a tracer has to rewind rip to re-enter the syscall itself;
// a signal that arrives before the thread gets there then runs its
// handler and the syscall is entered again afterwards, where the original
// task would have seen EINTR (a wait4 waiting forever for a child that
// waits for the signal the handler was to forward). From a
// signal-delivery-stop, the thread let go with no signal goes on in
// get_signal: a signal pending by then is delivered on top of the
// interrupted syscall (EINTR, or a restart under SA_RESTART, as the
// kernel decides), and with none pending the kernel rewinds rip itself.
//
// The stop comes from a signal sent to the thread alone with every other
// signal blocked; resuming or detaching with signal 0 discards it. It is
// SIGTRAP, or the first of a few rarely used signals the thread does not
// already have pending itself: a standard signal is queued once, so one
// the program had pending would be the one discarded. The caller sets the
// final registers, xstate and signal mask in the stop, then detaches.
func StopInSignal(tid int) error {
	sig, err := unpendingSignal(tid)
	if err != nil {
		return err
	}
	if err := SetSigMask(tid, ^SigBit(sig)); err != nil {
		return err
	}
	// tkill: the thread by its id alone (tgkill would need its process's).
	if _, _, e := unix.Syscall(unix.SYS_TKILL, uintptr(tid), uintptr(sig), 0); e != 0 {
		return &TaskError{TID: tid, Op: "tkill", Err: os.NewSyscallError("tkill", e)}
	}
	for {
		if err := Cont(tid, 0); err != nil {
			return err
		}
		st, err := Wait(tid)
		if err != nil {
			return err
		}
		if st.Event() != 0 {
			continue // a group-stop or an interrupt on the way: go on
		}
		if st.IsSignalDelivery() && st.Signal() == sig {
			return nil
		}
		return newStopError(tid, st, "signal-delivery-stop for "+unix.SignalName(sig))
	}
}

// stopSignals are what StopInSignal may send, in order of preference.
var stopSignals = []unix.Signal{unix.SIGTRAP, unix.SIGSTKFLT, unix.SIGPWR, unix.SIGXCPU}

// unpendingSignal returns the first of stopSignals not pending in thread
// tid's own queue (its process's queue does not matter: tkill queues on
// the thread, and the thread's queue is dequeued first).
func unpendingSignal(tid int) (unix.Signal, error) {
	infos, err := PeekSigInfo(tid, false)
	if err != nil {
		return 0, err
	}
	pending := map[unix.Signal]bool{}
	for _, si := range infos {
		pending[unix.Signal(SigInfoSigno(&si))] = true
	}
	for _, sig := range stopSignals {
		if !pending[sig] {
			return sig, nil
		}
	}
	return 0, &TaskError{TID: tid, Op: "stop for release", Err: fmt.Errorf("signals %v all pending already", stopSignals)}
}
