package ptrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Requests and constants from include/uapi/linux/ptrace.h and elf.h, named
// here so every raw request goes through req below.
const (
	reqSeize          = unix.PTRACE_SEIZE                  // 0x4206
	reqInterrupt      = unix.PTRACE_INTERRUPT              // 0x4207
	reqPeekSigInfo    = unix.PTRACE_PEEKSIGINFO            // 0x4209
	reqGetSigMask     = unix.PTRACE_GETSIGMASK             // 0x420a
	reqSetSigMask     = unix.PTRACE_SETSIGMASK             // 0x420b
	reqGetRseqConfig  = unix.PTRACE_GET_RSEQ_CONFIGURATION // 0x420f
	reqGetRegset      = unix.PTRACE_GETREGSET              // 0x4204
	reqSetRegset      = unix.PTRACE_SETREGSET              // 0x4205
	ntX86Xstate       = unix.NT_X86_XSTATE                 // 0x202
	peekSigInfoShared = unix.PTRACE_PEEKSIGINFO_SHARED     // 1
	eventStop         = unix.PTRACE_EVENT_STOP             // 128
	sysGood           = int(unix.SIGTRAP) | 0x80           // syscall stop with TRACESYSGOOD
	restartSyscallNr  = unix.SYS_RESTART_SYSCALL           // 219
	sigsetSize        = 8                                  // kernel sigset_t on x86-64
)

var (
	// ErrExited means the task ended (exited or was killed) while mmcr
	// expected it to stop.
	ErrExited = errors.New("task exited")
	// ErrUnexpectedStop means a tracee stopped for a reason the caller did
	// not expect; the error carries the status and a short register dump.
	ErrUnexpectedStop = errors.New("unexpected stop")
	// ErrNoSyscallInsn means no `syscall` instruction was found in a range.
	ErrNoSyscallInsn = errors.New("no syscall instruction")
	// ErrNotStopped means a task did not stop in time after PTRACE_INTERRUPT.
	ErrNotStopped = errors.New("task did not stop")
	// ErrRemoteDone means a Remote was used after SyscallToExit.
	ErrRemoteDone = errors.New("remote already finished with SyscallToExit")
)

// TaskError is a failed operation on one task. It unwraps to the cause
// (an *os.SyscallError, a unix.Errno, or one of the sentinels above).
type TaskError struct {
	TID int
	Op  string
	Err error
}

func (e *TaskError) Error() string { return fmt.Sprintf("%s %d: %v", e.Op, e.TID, e.Err) }
func (e *TaskError) Unwrap() error { return e.Err }

// req issues one raw ptrace request. name is the request's name as in
// ptrace(2); it ends up in the error together with tid.
func req(name string, request int, tid int, addr, data uintptr) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(request), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return r, &TaskError{TID: tid, Op: "ptrace", Err: os.NewSyscallError(name, e)}
	}
	return r, nil
}

// reqPtr is req with a pointer data argument; the pointee stays alive
// across the call because it is passed as unsafe.Pointer.
func reqPtr(name string, request int, tid int, addr uintptr, data unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(request), uintptr(tid), addr, uintptr(data), 0, 0)
	runtime.KeepAlive(data)
	if e != 0 {
		return r, &TaskError{TID: tid, Op: "ptrace", Err: os.NewSyscallError(name, e)}
	}
	return r, nil
}
