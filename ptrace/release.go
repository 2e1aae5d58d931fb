package ptrace

import (
	"os"

	"golang.org/x/sys/unix"
)

// StopInSignal moves stopped thread tid from whatever
// ptrace stop it is in to a signal-delivery-stop, the one place where the
// kernel applies its own syscall-restart logic to the registers a tracer
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
// The stop comes from a SIGTRAP sent to the thread with every other
// signal blocked; resuming or detaching with signal 0 discards it. The
// caller sets the final registers, xstate and signal mask in the stop,
// then detaches.
func StopInSignal(tid int) error {
	if err := SetSigMask(tid, ^sigBit(unix.SIGTRAP)); err != nil {
		return err
	}
	// tkill: the thread by its id alone (tgkill would need its process's).
	if _, _, e := unix.Syscall(unix.SYS_TKILL, uintptr(tid), uintptr(unix.SIGTRAP), 0); e != 0 {
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
		if st.IsSignalDelivery() && st.Signal() == unix.SIGTRAP {
			return nil
		}
		return newStopError(tid, st, "signal-delivery-stop for SIGTRAP")
	}
}
