package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// Layout of the scratch page the remote syscalls write into: one slot per
// signal's sigaction, one per itimer, one for a sigaltstack.
const (
	sigactionSize = 32 // handler, flags, restorer, mask
	itimerSize    = 32 // struct itimerval
	stackTSize    = 24 // stack_t: sp, flags (+pad), size
	numSignals    = 64

	offSigactions = 0
	offItimers    = offSigactions + numSignals*sigactionSize // 2048
	offAltStack   = offItimers + 3*itimerSize                // 2144
	offTIDAddr    = offAltStack + stackTSize                 // 2168: PR_GET_TID_ADDRESS's answer
	scratchUsed   = offTIDAddr + 8
)

// testHookRemote, when set (tests only), runs while pid's scratch page is
// mapped and its registers are the injection's: an error or panic from it
// must leave the task exactly as it was.
var testHookRemote func(pid int, scratch uint64) error

// findSyscallInsn finds a `syscall` instruction to run remote syscalls
// from: in the vdso, or failing that in any executable file mapping.
func findSyscallInsn(t *image.Task) (uint64, error) {
	var firstErr error
	try := func(v *image.VMA) (uint64, bool) {
		a, err := ptrace.FindSyscallInsn(t.PID, v.Start, v.End)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return 0, false
		}
		return a, true
	}
	for _, v := range t.VMAs {
		if v.Kind == image.KindVDSO {
			if a, ok := try(v); ok {
				return a, nil
			}
		}
	}
	for _, v := range t.VMAs {
		if v.Kind == image.KindPrivateFile && v.Prot&unix.PROT_EXEC != 0 {
			if a, ok := try(v); ok {
				return a, nil
			}
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no vdso and no executable file mapping")
	}
	return 0, fmt.Errorf("find a syscall instruction: %w", firstErr)
}

// collectRemote reads the state only the task itself can tell: brk,
// itimers, sigactions, sigaltstacks, dumpable. It maps a scratch page,
// runs the syscalls, reads the answers and unmaps the page; registers and
// signal masks are put back whatever happens.
func (d *dumper) collectRemote(t *image.Task) (err error) {
	pid := t.PID
	insn, err := findSyscallInsn(t)
	if err != nil {
		return taskErr(pid, "prepare remote syscalls", err)
	}
	r, err := ptrace.NewRemote(pid, insn)
	if err != nil {
		return taskErr(pid, "prepare remote syscalls", err)
	}
	defer func() {
		if rerr := r.Restore(); rerr != nil && err == nil {
			err = taskErr(pid, "restore registers after remote syscalls", rerr)
		}
	}()
	scratch, err := r.Syscall(unix.SYS_MMAP, 0, image.PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return taskErr(pid, "map scratch page", err)
	}
	defer func() {
		if _, uerr := r.Syscall(unix.SYS_MUNMAP, scratch, image.PageSize); uerr != nil && err == nil {
			err = taskErr(pid, fmt.Sprintf("unmap scratch page at %#x", scratch), uerr)
		}
	}()

	if testHookRemote != nil {
		if err := testHookRemote(pid, scratch); err != nil {
			return taskErr(pid, "test hook", err)
		}
	}
	brk, err := r.Syscall(unix.SYS_BRK, 0)
	if err != nil {
		return taskErr(pid, "brk(0)", err)
	}
	t.Mm.Brk = brk
	dumpable, err := r.Syscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE)
	if err != nil {
		return taskErr(pid, "prctl(PR_GET_DUMPABLE)", err)
	}
	t.Mm.Dumpable = int32(dumpable)

	for which := uint64(0); which < 3; which++ {
		if _, err := r.Syscall(unix.SYS_GETITIMER, which, scratch+offItimers+which*itimerSize); err != nil {
			return taskErr(pid, fmt.Sprintf("getitimer(%d)", which), err)
		}
	}
	for sig := uint64(1); sig <= numSignals; sig++ {
		if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
			continue
		}
		if _, err := r.Syscall(unix.SYS_RT_SIGACTION, sig, 0,
			scratch+offSigactions+(sig-1)*sigactionSize, 8); err != nil {
			return taskErr(pid, fmt.Sprintf("rt_sigaction(%d)", sig), err)
		}
	}
	page := make([]byte, scratchUsed)
	if err := ptrace.ReadMem(pid, scratch, page); err != nil {
		return taskErr(pid, fmt.Sprintf("read scratch page at %#x", scratch), err)
	}
	le := binary.LittleEndian
	t.SigActions = make([]image.SigAction, numSignals)
	for i := range numSignals {
		b := page[offSigactions+i*sigactionSize:]
		t.SigActions[i] = image.SigAction{
			Handler: le.Uint64(b), Flags: le.Uint64(b[8:]), Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:]),
		}
	}
	for i := range 3 {
		b := page[offItimers+i*itimerSize:]
		t.Itimers[i] = image.Itimer{
			IntervalUsec: int64(le.Uint64(b))*1e6 + int64(le.Uint64(b[8:])),
			ValueUsec:    int64(le.Uint64(b[16:]))*1e6 + int64(le.Uint64(b[24:])),
		}
	}

	// sigaltstack and clear_child_tid are per thread: the leader through
	// r, others each through their own Remote (sharing the scratch page:
	// one mm).
	for i, th := range t.Threads {
		rr := r
		if i > 0 {
			if rr, err = ptrace.NewRemote(th.TID, insn); err != nil {
				return taskErr(pid, fmt.Sprintf("prepare remote syscalls in thread %d", th.TID), err)
			}
		}
		err := readAltStack(rr, scratch, &th.AltStack)
		if err == nil {
			th.ClearTID, err = readTIDAddress(rr, scratch)
		}
		if i > 0 {
			if rerr := rr.Restore(); rerr != nil && err == nil {
				err = rerr
			}
		}
		if err != nil {
			return taskErr(pid, fmt.Sprintf("sigaltstack of thread %d", th.TID), err)
		}
	}
	return nil
}

// readTIDAddress asks the thread behind r for its clear_child_tid address
// (prctl PR_GET_TID_ADDRESS, which only a thread can ask of itself).
func readTIDAddress(r *ptrace.Remote, scratch uint64) (uint64, error) {
	at := scratch + offTIDAddr
	if _, err := r.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, at); err != nil {
		return 0, fmt.Errorf("prctl(PR_GET_TID_ADDRESS): %w", err)
	}
	var b [8]byte
	if err := ptrace.ReadMem(r.TID, at, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func readAltStack(r *ptrace.Remote, scratch uint64, ss *image.SigAltStack) error {
	at := scratch + offAltStack
	if _, err := r.Syscall(unix.SYS_SIGALTSTACK, 0, at); err != nil {
		return err
	}
	b := make([]byte, stackTSize)
	if err := ptrace.ReadMem(r.TID, at, b); err != nil {
		return err
	}
	le := binary.LittleEndian
	*ss = image.SigAltStack{SP: le.Uint64(b), Flags: int32(le.Uint32(b[8:])), Size: le.Uint64(b[16:])}
	return nil
}
