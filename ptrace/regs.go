package ptrace

import (
	"encoding/binary"
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GetRegs reads the general registers (incl. fs/gs base) with PTRACE_GETREGS.
func GetRegs(tid int) (unix.PtraceRegs, error) {
	var regs unix.PtraceRegs
	_, err := reqPtr("PTRACE_GETREGS", unix.PTRACE_GETREGS, tid, 0, unsafe.Pointer(&regs))
	return regs, err
}

// SetRegs writes the general registers with PTRACE_SETREGS.
func SetRegs(tid int, regs *unix.PtraceRegs) error {
	_, err := reqPtr("PTRACE_SETREGS", unix.PTRACE_SETREGS, tid, 0, unsafe.Pointer(regs))
	return err
}

// xstateBufSize is comfortably above the largest user xstate of current
// CPUs (about 11 KiB with AMX tiles); the kernel trims iov_len to the real
// size, so no CPUID probing is needed.
const xstateBufSize = 16 << 10

// GetXstate reads the NT_X86_XSTATE regset: the task's XSAVE area in
// standard format, as many bytes as the kernel's user xstate size.
func GetXstate(tid int) ([]byte, error) {
	buf := make([]byte, xstateBufSize)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if _, err := reqPtr("PTRACE_GETREGSET", reqGetRegset, tid, ntX86Xstate, unsafe.Pointer(&iov)); err != nil {
		return nil, err
	}
	return buf[:iov.Len:iov.Len], nil
}

// SetXstate writes the NT_X86_XSTATE regset. The kernel accepts only a
// whole buffer of exactly its user xstate size (what GetXstate returns on
// this machine), else EFAULT; pad or trim an image from another CPU first.
func SetXstate(tid int, xsave []byte) error {
	if len(xsave) == 0 {
		return &TaskError{TID: tid, Op: "set xstate", Err: errors.New("empty xsave buffer")}
	}
	iov := unix.Iovec{Base: &xsave[0]}
	iov.SetLen(len(xsave))
	_, err := reqPtr("PTRACE_SETREGSET", reqSetRegset, tid, ntX86Xstate, unsafe.Pointer(&iov))
	return err
}

// GetSigMask reads the blocked-signal mask (bit n-1 is signal n).
func GetSigMask(tid int) (uint64, error) {
	var mask uint64
	_, err := reqPtr("PTRACE_GETSIGMASK", reqGetSigMask, tid, sigsetSize, unsafe.Pointer(&mask))
	return mask, err
}

// SetSigMask writes the blocked-signal mask; the kernel never blocks
// SIGKILL and SIGSTOP whatever the mask says.
func SetSigMask(tid int, mask uint64) error {
	_, err := reqPtr("PTRACE_SETSIGMASK", reqSetSigMask, tid, sigsetSize, unsafe.Pointer(&mask))
	return err
}

// peekSigInfoArgs is struct ptrace_peeksiginfo_args.
type peekSigInfoArgs struct {
	Off   uint64
	Flags uint32
	Nr    int32
}

// PeekSigInfo returns the pending signals without dequeuing them
// (PTRACE_PEEKSIGINFO), private (shared=false) or process-wide (shared=true),
// as raw 128-byte siginfo records in queue order.
func PeekSigInfo(tid int, shared bool) ([][128]byte, error) {
	var out [][128]byte
	var batch [32][128]byte
	args := peekSigInfoArgs{Nr: int32(len(batch))}
	if shared {
		args.Flags = peekSigInfoShared
	}
	for {
		n, err := reqPeek(tid, &args, &batch)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, batch[:n]...)
		args.Off += uint64(n)
	}
}

func reqPeek(tid int, args *peekSigInfoArgs, batch *[32][128]byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, reqPeekSigInfo, uintptr(tid),
		uintptr(unsafe.Pointer(args)), uintptr(unsafe.Pointer(batch)), 0, 0)
	if e != 0 {
		return 0, &TaskError{TID: tid, Op: "ptrace", Err: os.NewSyscallError("PTRACE_PEEKSIGINFO", e)}
	}
	return int(r), nil
}

// SigInfoSigno returns si_signo of a raw siginfo record.
func SigInfoSigno(si *[128]byte) int { return int(int32(binary.LittleEndian.Uint32(si[0:4]))) }

// RseqConfig is PTRACE_GET_RSEQ_CONFIGURATION's answer.
type RseqConfig struct {
	Addr  uint64
	Len   uint32
	Flags uint32
	Sig   uint32
}

// rseqConfiguration is struct ptrace_rseq_configuration (24 bytes).
type rseqConfiguration struct {
	Pointer   uint64
	Size      uint32
	Signature uint32
	Flags     uint32
	_         uint32
}

// GetRseq returns the thread's rseq registration (Addr 0: none).
func GetRseq(tid int) (RseqConfig, error) {
	var c rseqConfiguration
	if _, err := reqPtr("PTRACE_GET_RSEQ_CONFIGURATION", reqGetRseqConfig, tid,
		unsafe.Sizeof(c), unsafe.Pointer(&c)); err != nil {
		return RseqConfig{}, err
	}
	return RseqConfig{Addr: c.Pointer, Len: c.Size, Flags: c.Flags, Sig: c.Signature}, nil
}

// GetRobustList returns thread tid's robust futex list head and length
// (get_robust_list(2); head 0: none registered). It is not a ptrace
// request, but it needs the same right over tid (PTRACE_MODE_READ).
func GetRobustList(tid int) (head uint64, length uint64, err error) {
	var h, l uint64
	_, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid),
		uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, 0, &TaskError{TID: tid, Op: "read robust list of", Err: os.NewSyscallError("get_robust_list", e)}
	}
	return h, l, nil
}
