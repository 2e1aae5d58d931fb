package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/kernel"
)

// Remote runs syscalls inside a stopped tracee. It executes the two-byte
// `syscall` instruction found at Insn, stepping with PTRACE_SYSCALL to the
// syscall-exit stop, so nothing has to be written into the tracee. All
// signals are blocked (PTRACE_SETSIGMASK) while it runs and the original
// mask, like the original registers, is put back by Restore.
//
// The tracee must have PTRACE_O_TRACESYSGOOD set (Seize and StartStub do).
// Like every request here, a Remote is used from the thread that attached
// the tracee.
type Remote struct {
	TID  int
	Insn uint64

	saved   unix.PtraceRegs // as NewRemote found them
	restore unix.PtraceRegs // saved, with the syscall-restart fixup applied
	last    unix.PtraceRegs // at the latest syscall-exit stop (saved at first)
	mask    uint64          // signal mask NewRemote found
	done    bool            // SyscallToExit ran: Insn may be gone

	// Allow, when set, is asked before each remote syscall (alone or in
	// a batch, where it is asked for every entry before the first runs):
	// an error stops the call before the thread runs it. Dump sets it
	// from the thread's seccomp filters, which would otherwise judge the
	// call inside the task, and might kill it.
	Allow func(nr uintptr, args [6]uint64) error
}

// NewRemote prepares remote syscalls in stopped thread tid using the
// `syscall` instruction at insn. It saves the registers and signal mask
// and blocks all signals.
func NewRemote(tid int, insn uint64) (*Remote, error) {
	regs, err := GetRegs(tid)
	if err != nil {
		return nil, err
	}
	mask, err := GetSigMask(tid)
	if err != nil {
		return nil, err
	}
	if err := SetSigMask(tid, ^uint64(0)); err != nil {
		return nil, err
	}
	return &Remote{TID: tid, Insn: insn, saved: regs, restore: restartFixup(regs), last: regs, mask: mask}, nil
}

// Saved returns the registers as NewRemote found them (orig_rax and a
// -ERESTART* rax untouched: what a dump records).
func (r *Remote) Saved() unix.PtraceRegs { return r.saved }

// SavedSigMask returns the signal mask NewRemote found.
func (r *Remote) SavedSigMask() uint64 { return r.mask }

// restartFixup does to regs what the kernel does when a task interrupted
// in a syscall returns to user space without running a handler: a
// -ERESTART{SYS,NOINTR,NOHAND} syscall is re-entered, an
// -ERESTART_RESTARTBLOCK one continues through restart_syscall. The kernel
// only applies it on its signal path, which a task leaving a
// syscall-exit stop does not always take. Restore uses it only where it
// cannot move the thread into a signal-delivery-stop (StopInSignal) to
// put back the registers as they were: a handler for a signal still
// pending then sees a restarted syscall rather than EINTR, as after CRIU.
func restartFixup(regs unix.PtraceRegs) unix.PtraceRegs {
	if int64(regs.Orig_rax) < 0 {
		return regs
	}
	switch -int64(regs.Rax) {
	case kernel.ERESTARTSYS, kernel.ERESTARTNOINTR, kernel.ERESTARTNOHAND:
		regs.Rax = regs.Orig_rax
	case kernel.ERESTART_RESTARTBLOCK:
		regs.Rax = restartSyscallNr
	default:
		return regs
	}
	regs.Rip -= 2
	regs.Orig_rax = ^uint64(0)
	return regs
}

// Syscall runs syscall nr with up to six arguments and returns its result;
// a result in [-4095, -1] becomes a *SyscallError (unwrapping to the
// unix.Errno) and the raw value is returned with it.
//
// Registers: rip=Insn, rax=nr, rdi, rsi, rdx, r10, r8, r9 = args,
// orig_rax=-1 so the kernel applies no syscall-restart fixup when the task
// leaves its current stop; the other registers are those the previous
// syscall left (an fs_base set by a remote arch_prctl stays). Afterwards
// they stay as they are at the syscall-exit stop; the next Syscall sets
// them again and Restore puts the saved ones back.
//
// Event stops in between (clone/fork/vfork when the caller set
// TRACECLONE/TRACEFORK/TRACEVFORK, a group-stop) are passed through. For
// a clone-like syscall the result is the child's pid; the child is
// auto-attached and starts in its own stop (a SIGSTOP signal-delivery-stop
// if this tracee came from StartStub/TRACEME, a PTRACE_EVENT_STOP if it was
// seized): the caller collects it with Wait(child). A signal-delivery-stop
// in between (only SIGSTOP or a synchronous fault can get through the
// blocked mask) is a *StopError leaving the task in that stop; SIGKILL is
// an error wrapping ErrExited.
func (r *Remote) Syscall(nr uintptr, args ...uint64) (uint64, error) {
	return r.run(nr, args)
}

// SyscallToExit enters syscall nr and returns at its syscall-exit stop
// without putting the saved registers back: the caller sets final registers
// and detaches. Used for the last munmap of the restorer page, after which
// the task must never run from Insn again: any later Syscall fails with
// ErrRemoteDone (Restore still works).
func (r *Remote) SyscallToExit(nr uintptr, args ...uint64) (uint64, error) {
	ret, err := r.run(nr, args)
	r.done = true
	return ret, err
}

// Restore puts back the registers and the signal mask saved by NewRemote.
// It first moves the thread into a signal-delivery-stop (StopInSignal), so
// that the registers of a syscall the thread was interrupted in go back
// as they were and, when the thread is let go, the kernel restarts that
// syscall or, for a signal that came meanwhile, ends it with EINTR, as it
// would have without the remote syscalls. Where that stop cannot be had,
// it puts back the registers with the restart fixup (restartFixup).
func (r *Remote) Restore() error {
	regs := &r.saved
	if err := StopInSignal(r.TID); err != nil {
		if errors.Is(err, ErrExited) {
			return err
		}
		regs = &r.restore
	}
	if err := SetRegs(r.TID, regs); err != nil {
		return err
	}
	return SetSigMask(r.TID, r.mask)
}

func (r *Remote) run(nr uintptr, args []uint64) (uint64, error) {
	if r.done {
		return 0, &TaskError{TID: r.TID, Op: "remote " + SyscallName(nr), Err: ErrRemoteDone}
	}
	if len(args) > 6 {
		return 0, &TaskError{TID: r.TID, Op: "remote " + SyscallName(nr),
			Err: fmt.Errorf("%d arguments, at most 6", len(args))}
	}
	var a [6]uint64
	copy(a[:], args)
	if r.Allow != nil {
		if err := r.Allow(nr, a); err != nil {
			return 0, &TaskError{TID: r.TID, Op: "remote " + SyscallName(nr), Err: err}
		}
	}
	// Start from the registers the last syscall left, so that state a
	// remote syscall changed (fs_base after arch_prctl) is not undone.
	out, err := stepSyscall(r.TID, r.last, r.Insn, nr, a)
	if err != nil {
		return 0, err
	}
	r.last = out
	ret := out.Rax
	if v := int64(ret); v >= -4095 && v <= -1 {
		return ret, &SyscallError{TID: r.TID, Nr: nr, Err: unix.Errno(-v)}
	}
	return ret, nil
}

// stepSyscall runs syscall nr in stopped thread tid from the `syscall`
// instruction at insn, starting from registers regs, and returns the
// registers at its syscall-exit stop (the result in Rax).
func stepSyscall(tid int, regs unix.PtraceRegs, insn uint64, nr uintptr, a [6]uint64) (unix.PtraceRegs, error) {
	regs.Rip = insn
	regs.Rax = uint64(nr)
	regs.Orig_rax = ^uint64(0)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	regs.Eflags &^= 0x100 // TF: no single-step trap on the way
	if err := SetRegs(tid, &regs); err != nil {
		return regs, err
	}
	if _, err := toSyscallStop(tid, nr, "syscall-entry stop"); err != nil {
		return regs, err
	}
	return toSyscallStop(tid, nr, "syscall-exit stop")
}

// toSyscallStop resumes the tracee with PTRACE_SYSCALL until the next
// syscall stop, passing event stops through, and checks that the stop
// belongs to syscall nr.
func toSyscallStop(tid int, nr uintptr, want string) (unix.PtraceRegs, error) {
	for {
		if _, err := req("PTRACE_SYSCALL", unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
			return unix.PtraceRegs{}, err
		}
		st, err := Wait(tid)
		if err != nil {
			return unix.PtraceRegs{}, err
		}
		if st.Event() != 0 {
			continue
		}
		if !st.IsSyscall() {
			return unix.PtraceRegs{}, newStopError(tid, st, want+" of "+SyscallName(nr))
		}
		regs, err := GetRegs(tid)
		if err != nil {
			return regs, err
		}
		if regs.Orig_rax != uint64(nr) {
			return regs, &StopError{TID: tid, Stop: st, Want: want + " of " + SyscallName(nr), Regs: &regs}
		}
		return regs, nil
	}
}

// SyscallError is a remote syscall that returned an error.
type SyscallError struct {
	TID int
	Nr  uintptr
	Err unix.Errno
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("remote %s in %d: %v", SyscallName(e.Nr), e.TID, e.Err)
}
func (e *SyscallError) Unwrap() error { return e.Err }

// StopError is a stop the caller did not expect, with the registers at
// that stop when they could be read. It unwraps to ErrUnexpectedStop.
type StopError struct {
	TID  int
	Stop Stop
	Want string
	Regs *unix.PtraceRegs
}

func (e *StopError) Error() string {
	s := fmt.Sprintf("task %d: %v: %v", e.TID, ErrUnexpectedStop, e.Stop)
	if e.Want != "" {
		s += " waiting for " + e.Want
	}
	if e.Regs != nil {
		s += fmt.Sprintf(" (rip=%#x rax=%#x orig_rax=%#x)", e.Regs.Rip, e.Regs.Rax, int64(e.Regs.Orig_rax))
	}
	return s
}
func (e *StopError) Unwrap() error { return ErrUnexpectedStop }

func newStopError(tid int, st Stop, want string) error {
	e := &StopError{TID: tid, Stop: st, Want: want}
	if regs, err := GetRegs(tid); err == nil {
		e.Regs = &regs
	}
	return e
}

func unexpectedStop(tid int, st Stop) error { return newStopError(tid, st, "") }

var syscallNames = map[uintptr]string{
	unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_OPEN: "open", unix.SYS_CLOSE: "close",
	unix.SYS_MMAP: "mmap", unix.SYS_MPROTECT: "mprotect", unix.SYS_MUNMAP: "munmap", unix.SYS_BRK: "brk",
	unix.SYS_RT_SIGACTION: "rt_sigaction", unix.SYS_RT_SIGPROCMASK: "rt_sigprocmask",
	unix.SYS_MREMAP: "mremap", unix.SYS_MADVISE: "madvise", unix.SYS_DUP2: "dup2", unix.SYS_DUP3: "dup3",
	unix.SYS_GETPID: "getpid", unix.SYS_GETTID: "gettid", unix.SYS_CLONE: "clone", unix.SYS_CLONE3: "clone3",
	unix.SYS_FORK: "fork", unix.SYS_VFORK: "vfork", unix.SYS_EXECVE: "execve", unix.SYS_EXIT: "exit",
	unix.SYS_EXIT_GROUP: "exit_group", unix.SYS_KILL: "kill", unix.SYS_FCNTL: "fcntl", unix.SYS_FLOCK: "flock",
	unix.SYS_SECCOMP: "seccomp",
	unix.SYS_PRCTL:   "prctl", unix.SYS_ARCH_PRCTL: "arch_prctl", unix.SYS_SETRLIMIT: "setrlimit",
	unix.SYS_PRLIMIT64: "prlimit64", unix.SYS_SET_TID_ADDRESS: "set_tid_address",
	unix.SYS_SET_ROBUST_LIST: "set_robust_list", unix.SYS_RSEQ: "rseq", unix.SYS_OPENAT: "openat",
	unix.SYS_SIGALTSTACK: "sigaltstack", unix.SYS_SETSID: "setsid", unix.SYS_SETPGID: "setpgid",
	unix.SYS_LSEEK: "lseek", unix.SYS_PREAD64: "pread64", unix.SYS_PWRITE64: "pwrite64",
	unix.SYS_MEMFD_CREATE: "memfd_create", unix.SYS_FTRUNCATE: "ftruncate", unix.SYS_UMASK: "umask",
	unix.SYS_CHDIR: "chdir", unix.SYS_FCHDIR: "fchdir", unix.SYS_CHROOT: "chroot",
	unix.SYS_SETUID: "setuid", unix.SYS_SETGID: "setgid", unix.SYS_SETRESUID: "setresuid",
	unix.SYS_SETRESGID: "setresgid", unix.SYS_SETGROUPS: "setgroups", unix.SYS_CAPSET: "capset",
	unix.SYS_RT_SIGQUEUEINFO: "rt_sigqueueinfo", unix.SYS_RT_TGSIGQUEUEINFO: "rt_tgsigqueueinfo",
	unix.SYS_WAIT4: "wait4", unix.SYS_MSYNC: "msync", unix.SYS_MLOCK: "mlock", unix.SYS_MUNLOCK: "munlock",
	unix.SYS_USERFAULTFD: "userfaultfd", unix.SYS_IOCTL: "ioctl", unix.SYS_PIDFD_OPEN: "pidfd_open",
	unix.SYS_RESTART_SYSCALL: "restart_syscall", unix.SYS_RT_SIGRETURN: "rt_sigreturn",
	unix.SYS_NANOSLEEP: "nanosleep", unix.SYS_GETPPID: "getppid", unix.SYS_SETITIMER: "setitimer",
	unix.SYS_TIMER_CREATE: "timer_create", unix.SYS_PERSONALITY: "personality",
	unix.SYS_GETITIMER: "getitimer", unix.SYS_GET_MEMPOLICY: "get_mempolicy", unix.SYS_MLOCKALL: "mlockall",
	unix.SYS_IO_GETEVENTS: "io_getevents", unix.SYS_RT_SIGTIMEDWAIT: "rt_sigtimedwait",
}

// SyscallName names an x86-64 syscall number for error messages.
func SyscallName(nr uintptr) string {
	if s, ok := syscallNames[nr]; ok {
		return s
	}
	return fmt.Sprintf("syscall %d", nr)
}
