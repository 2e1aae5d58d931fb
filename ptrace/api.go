// Package ptrace stops, inspects and drives other processes: seize and
// interrupt, registers and xstate, signal state, remote syscalls and remote
// memory access.
//
// Precondition for every function that issues a ptrace request: it runs on
// the OS thread that attached the tracee (runtime.LockOSThread in the
// caller, held for the whole dump or restore).
package ptrace

import (
	"errors"

	"golang.org/x/sys/unix"
)

// API contract (implemented by the ptrace owner).

var errTODO = errors.New("ptrace: not implemented yet")

// Seize attaches to thread tid with PTRACE_SEIZE (options: TRACESYSGOOD,
// and EXITKILL never) and interrupts it with PTRACE_INTERRUPT, waiting
// until it is stopped. ESRCH becomes an error naming tid.
func Seize(tid int) error { return errTODO }

// Detach detaches from a stopped thread, letting it run on.
func Detach(tid int) error { return errTODO }

// SetOptions sets ptrace options (PTRACE_O_*) on an attached thread.
func SetOptions(tid int, options int) error { return errTODO }

// Stop describes why a tracee stopped (from wait4 with __WALL).
type Stop struct {
	TID    int
	Status unix.WaitStatus
}

// Wait waits for tid to stop (or exit: then an error naming tid and how it ended).
func Wait(tid int) (Stop, error) { return Stop{}, errTODO }

// GetRegs and SetRegs read and write the general registers (incl. fs/gs base).
func GetRegs(tid int) (unix.PtraceRegs, error)     { return unix.PtraceRegs{}, errTODO }
func SetRegs(tid int, regs *unix.PtraceRegs) error { return errTODO }

// GetXstate and SetXstate read and write the NT_X86_XSTATE regset (raw bytes,
// sized as the kernel reports in the CPUID-derived xstate size).
func GetXstate(tid int) ([]byte, error)     { return nil, errTODO }
func SetXstate(tid int, xsave []byte) error { return errTODO }

// GetSigMask and SetSigMask use PTRACE_GETSIGMASK / PTRACE_SETSIGMASK.
func GetSigMask(tid int) (uint64, error)    { return 0, errTODO }
func SetSigMask(tid int, mask uint64) error { return errTODO }

// PeekSigInfo returns the pending signals without dequeuing them
// (PTRACE_PEEKSIGINFO), private (shared=false) or process-wide (shared=true).
func PeekSigInfo(tid int, shared bool) ([][128]byte, error) { return nil, errTODO }

// RseqConfig is PTRACE_GET_RSEQ_CONFIGURATION's answer.
type RseqConfig struct {
	Addr  uint64
	Len   uint32
	Flags uint32
	Sig   uint32
}

// GetRseq returns the thread's rseq registration (Addr 0: none).
func GetRseq(tid int) (RseqConfig, error) { return RseqConfig{}, errTODO }

// Remote runs syscalls inside a stopped tracee. It executes the two-byte
// `syscall` instruction found at Insn, stepping with PTRACE_SYSCALL to the
// syscall-exit stop, so nothing has to be written into the tracee. All
// signals are blocked (PTRACE_SETSIGMASK) while it runs and the original
// mask, like the original registers, is put back by Restore.
type Remote struct {
	TID  int
	Insn uint64
}

// NewRemote prepares remote syscalls in stopped thread tid using the
// `syscall` instruction at insn. It saves the registers and signal mask.
func NewRemote(tid int, insn uint64) (*Remote, error) { return nil, errTODO }

// Syscall runs syscall nr with up to six arguments and returns its result;
// a result in [-4095, -1] becomes a unix.Errno wrapped with the syscall
// name and tid.
func (r *Remote) Syscall(nr uintptr, args ...uint64) (uint64, error) { return 0, errTODO }

// SyscallToExit enters syscall nr and returns at its syscall-exit stop
// without putting the saved registers back: the caller sets final registers
// and detaches. Used for the last munmap of the restorer page.
func (r *Remote) SyscallToExit(nr uintptr, args ...uint64) (uint64, error) { return 0, errTODO }

// Restore puts back the registers and signal mask saved by NewRemote.
func (r *Remote) Restore() error { return errTODO }

// FindSyscallInsn returns the address of a `syscall` instruction (0f 05)
// inside [start, end) of pid's memory (e.g. the vdso).
func FindSyscallInsn(pid int, start, end uint64) (uint64, error) { return 0, errTODO }

// ReadMem and WriteMem access pid's memory through /proc/PID/mem (works on
// read-only and PROT_NONE private pages).
func ReadMem(pid int, addr uint64, buf []byte) error   { return errTODO }
func WriteMem(pid int, addr uint64, data []byte) error { return errTODO }

// ReadVM copies remote ranges into local buffers with process_vm_readv in
// large batches; remote[i] and local[i] have the same length.
func ReadVM(pid int, local [][]byte, remote []unix.RemoteIovec) error { return errTODO }

// WriteVM copies local buffers into remote ranges with process_vm_writev.
func WriteVM(pid int, local [][]byte, remote []unix.RemoteIovec) error { return errTODO }

// StartStub starts path with args as a traced child stopped right after
// execve (PTRACE_TRACEME via os/exec), with options TRACESYSGOOD,
// TRACECLONE, TRACEFORK and EXITKILL set, and returns its pid. The caller
// must hold runtime.LockOSThread.
func StartStub(path string, args []string) (int, error) { return 0, errTODO }
