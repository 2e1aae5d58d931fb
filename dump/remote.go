package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// The scratch area mapped into each task for its remote syscalls: three
// pages. The first holds ptrace's batch loop, written through
// /proc/PID/mem; the others hold the answers (one slot per signal's
// sigaction, one per itimer, one for a sigaltstack, one each for
// PR_GET_TID_ADDRESS, PR_GET_PDEATHSIG and PR_GET_CHILD_SUBREAPER) and the
// batch table, big enough for a task's whole batch. See mapScratch for
// its protections.
const (
	sigactionSize = 32 // handler, flags, restorer, mask
	itimerSize    = 32 // struct itimerval
	stackTSize    = 24 // stack_t: sp, flags (+pad), size
	numSignals    = 64

	scratchSize   = 3 * image.PageSize
	offData       = image.PageSize                                   // the writable page
	offSigactions = offData                                          // numSignals slots
	offItimers    = offSigactions + numSignals*sigactionSize         // +2048
	offAltStack   = offItimers + 3*itimerSize                        // +2144
	offTIDAddr    = offAltStack + stackTSize                         // +2168: PR_GET_TID_ADDRESS's answer
	offPdeathSig  = offTIDAddr + 8                                   // +2176: PR_GET_PDEATHSIG's (an int)
	offSubreaper  = offPdeathSig + 4                                 // +2180: PR_GET_CHILD_SUBREAPER's (an int)
	answersEnd    = offSubreaper + 4                                 // +2184
	offMemPolicy  = answersEnd                                       // get_mempolicy's mode, then its node mask at +8 (after the batches)
	offTable      = offData + 2304                                   // batch table, to the end
	tableMax      = (scratchSize - offTable) / ptrace.BatchEntrySize // 92
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
// itimers, sigactions, sigaltstacks, dumpable, clear_child_tid, the
// locking of its future mappings. It maps a
// scratch area, runs the syscalls as one batch per thread (one ptrace
// round trip each, see ptrace.Batch), reads the answers and unmaps the
// area; registers and signal masks are put back whatever happens.
//
// status is the task's, read after the freeze: its seccomp filter (see
// mapScratch) and locked memory (futureLocks).
func (d *dumper) collectRemote(t *image.Task, status procfs.Status) (err error) {
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
	if r.Allow, err = seccompAllow(t.Threads[0].Seccomp, insn); err != nil {
		return taskErr(pid, "prepare remote syscalls", err)
	}
	scratch, err := mapScratch(r, status.Seccomp != 0)
	if err != nil {
		return taskErr(pid, "map scratch area", err)
	}
	defer func() {
		if _, uerr := r.Syscall(unix.SYS_MUNMAP, scratch, scratchSize); uerr != nil && err == nil {
			err = taskErr(pid, fmt.Sprintf("unmap scratch area at %#x", scratch), uerr)
		}
	}()
	// Before the batch code touches the area.
	if t.Mm.MlockFuture, err = d.futureLocks(r, pid, scratch, status.VmLck); err != nil {
		return taskErr(pid, "tell whether the task locks its future mappings", err)
	}
	if err := ptrace.WriteMem(pid, scratch, ptrace.BatchCode()); err != nil {
		return taskErr(pid, fmt.Sprintf("write syscall batch code at %#x", scratch), err)
	}

	if testHookRemote != nil {
		if err := testHookRemote(pid, scratch); err != nil {
			return taskErr(pid, "test hook", err)
		}
	}
	area := ptrace.BatchArea{Code: scratch, Table: scratch + offTable, Max: tableMax}
	var b ptrace.Batch
	iBrk := b.Add("brk(0)", unix.SYS_BRK, 0)
	iDumpable := b.Add("prctl(PR_GET_DUMPABLE)", unix.SYS_PRCTL, unix.PR_GET_DUMPABLE)
	iSecurebits := b.Add("prctl(PR_GET_SECUREBITS)", unix.SYS_PRCTL, unix.PR_GET_SECUREBITS)
	for which := uint64(0); which < 3; which++ {
		b.Add(fmt.Sprintf("getitimer(%d)", which), unix.SYS_GETITIMER, which, scratch+offItimers+which*itimerSize)
	}
	for sig := uint64(1); sig <= numSignals; sig++ {
		if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
			continue
		}
		b.Add(fmt.Sprintf("rt_sigaction(%d)", sig), unix.SYS_RT_SIGACTION, sig, 0,
			scratch+offSigactions+(sig-1)*sigactionSize, 8)
	}
	leaderQueries := addThreadQueries(&b, scratch)
	b.Add("prctl(PR_GET_CHILD_SUBREAPER)", unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, scratch+offSubreaper)
	// Last, so that a kernel without them (EINVAL: no KSM; MDWE before
	// 6.3) fails no other query: such a task has neither. A batch stops at
	// its first failure: MDWE then runs alone.
	iTHP := b.Add("prctl(PR_GET_THP_DISABLE)", unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	iMerge := b.Add("prctl(PR_GET_MEMORY_MERGE)", unix.SYS_PRCTL, unix.PR_GET_MEMORY_MERGE, 0, 0, 0, 0)
	iMDWE := b.Add("prctl(PR_GET_MDWE)", unix.SYS_PRCTL, unix.PR_GET_MDWE, 0, 0, 0, 0)
	berr := r.RunBatch(area, &b)
	var be *ptrace.BatchError
	unsupported := func(i int) bool { return errors.As(berr, &be) && be.Index == i && errors.Is(berr, unix.EINVAL) }
	switch {
	case berr == nil:
		t.Mm.MergeAny = b.Result(iMerge) != 0
		t.Mm.MDWE = uint32(b.Result(iMDWE))
	case unsupported(iMerge):
		v, merr := r.Syscall(unix.SYS_PRCTL, unix.PR_GET_MDWE, 0, 0, 0, 0)
		switch {
		case merr == nil:
			t.Mm.MDWE = uint32(v)
		case !errors.Is(merr, unix.EINVAL):
			return taskErr(pid, "remote syscalls", merr)
		}
	case unsupported(iMDWE):
		t.Mm.MergeAny = b.Result(iMerge) != 0
	default:
		return taskErr(pid, "remote syscalls", berr)
	}
	// Bit 1: PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18), which the status
	// file's THP_enabled does not show.
	t.Mm.THPExceptAdvised = b.Result(iTHP)&unix.PR_THP_DISABLE_EXCEPT_ADVISED != 0
	t.Mm.Brk = b.Result(iBrk)
	t.Mm.Dumpable = int32(b.Result(iDumpable))
	t.Creds.Securebits = uint32(b.Result(iSecurebits))
	page := make([]byte, answersEnd-offData)
	if err := ptrace.ReadVMAt(pid, scratch+offData, page); err != nil {
		return taskErr(pid, fmt.Sprintf("read scratch area at %#x", scratch), err)
	}
	le := binary.LittleEndian
	t.SigActions = make([]image.SigAction, numSignals)
	for i := range numSignals {
		b := page[offSigactions-offData+i*sigactionSize:]
		t.SigActions[i] = image.SigAction{
			Handler: le.Uint64(b), Flags: le.Uint64(b[8:]), Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:]),
		}
	}
	for i := range 3 {
		b := page[offItimers-offData+i*itimerSize:]
		t.Itimers[i] = image.Itimer{
			IntervalUsec: int64(le.Uint64(b))*1e6 + int64(le.Uint64(b[8:])),
			ValueUsec:    int64(le.Uint64(b[16:]))*1e6 + int64(le.Uint64(b[24:])),
		}
	}
	t.ChildSubreaper = le.Uint32(page[offSubreaper-offData:]) != 0
	if len(t.Threads) > 0 {
		threadAnswers(page, &b, leaderQueries, t.Threads[0])
	}

	if err := collectAIORings(r, t, d.parentOf(t)); err != nil {
		return taskErr(pid, "AIO contexts", err)
	}
	if len(t.Threads) > 0 {
		if t.Threads[0].MemPolicy, err = memPolicy(r, pid, scratch); err != nil {
			return taskErr(pid, "memory policy", err)
		}
	}
	if err := vmaPolicies(r, t, area, scratch); err != nil {
		return taskErr(pid, "memory policies of ranges", err)
	}
	if t.Mm.Membarrier, err = d.membarrierRegistrations(r, pid); err != nil {
		return taskErr(pid, "membarrier registrations", err)
	}
	if err := timerTimes(r, pid, scratch, t.PosixTimers); err != nil {
		return taskErr(pid, "POSIX timers", err)
	}

	// sigaltstack, clear_child_tid, the parent-death signal and the timer
	// slack are per thread: the leader's came with the batch above, other
	// threads run their own through their own Remote (sharing the scratch
	// area: one mm).
	for _, th := range t.Threads[min(1, len(t.Threads)):] {
		if err := threadRemote(th, insn, area, scratch); err != nil {
			return taskErr(pid, fmt.Sprintf("per-thread state of thread %d", th.TID), err)
		}
	}
	return nil
}

// membarrierRegistrations asks the task which membarrier commands its mm
// registered for (MEMBARRIER_CMD_GET_REGISTRATIONS): restored without
// them, its expedited barriers would fail with EPERM. A kernel before 6.3
// cannot tell; the dump then goes on with a warning.
func (d *dumper) membarrierRegistrations(r *ptrace.Remote, pid int) (uint32, error) {
	v, err := r.Syscall(unix.SYS_MEMBARRIER, kernel.MembarrierGetRegistrations, 0, 0)
	switch {
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		d.log.Warn("membarrier registrations not dumped: the kernel cannot tell them (Linux 6.3+)", "pid", pid)
		return 0, nil
	case err != nil:
		return 0, err
	}
	return uint32(v) & kernel.MembarrierRegisterCmds, nil
}

// futureLocks returns the task's mlockall(MCL_FUTURE) flags, which no
// file or prctl tells, from what the kernel did to the scratch area it
// just mapped: under MCL_FUTURE a new mapping is locked (the task's
// locked memory, locked before the mapping, grew by the area) and, unless
// MCL_ONFAULT, its pages are brought in at once (mincore). It must run
// before anything touches the area.
func (d *dumper) futureLocks(r *ptrace.Remote, pid int, scratch, lockedBefore uint64) (uint32, error) {
	st, err := d.fs.Status(pid)
	if err != nil {
		return 0, err
	}
	if st.VmLck < lockedBefore+scratchSize {
		return 0, nil
	}
	// The kernel finds the pages' state before it writes the vector.
	vec := scratch + offData
	if _, err := r.Syscall(unix.SYS_MINCORE, scratch, image.PageSize, vec); err != nil {
		return 0, fmt.Errorf("mincore %#x: %w", scratch, err)
	}
	var in [1]byte
	if err := ptrace.ReadVMAt(pid, vec, in[:]); err != nil {
		return 0, err
	}
	if in[0]&1 != 0 {
		return unix.MCL_FUTURE, nil
	}
	return unix.MCL_FUTURE | unix.MCL_ONFAULT, nil
}

// The header of an AIO context's ring (struct aio_ring of the kernel's
// fs/aio.c), followed by its io_events.
const (
	aioRingMagic      = 0xa10a10a1
	aioRingHeaderSize = 32
	ioEventSize       = 32
)

// collectAIORings records t's AIO contexts (Mm.AIORings) from their ring
// VMAs. A ring that is no context of the task (io_getevents of no event on
// it fails) must be the copy of its parent's (collected before it) that a
// fork inherits: it is marked FromParent, to be inherited again at
// restore. A ring's header must be the kernel's. Requests still in flight,
// which the kernel completes into the ring later, are not seen (nor does
// CRIU see them).
func collectAIORings(r *ptrace.Remote, t *image.Task, parent *image.Task) error {
	le := binary.LittleEndian
	for _, v := range t.VMAs {
		if v.Kind != image.KindAIORing {
			continue
		}
		if _, err := r.Syscall(unix.SYS_IO_GETEVENTS, v.Start, 0, 0, 0, 0); err != nil {
			if parent != nil && parentOwnsRing(parent, v) {
				v.FromParent = true
				continue
			}
			return fmt.Errorf("ring %#x-%#x is no AIO context of the task nor its parent's: %v: %w",
				v.Start, v.End, err, ErrUnsupported)
		}
		h := make([]byte, aioRingHeaderSize)
		if err := ptrace.ReadVMAt(t.PID, v.Start, h); err != nil {
			return fmt.Errorf("read ring %#x-%#x: %w", v.Start, v.End, err)
		}
		nr, head, tail := le.Uint32(h[4:]), le.Uint32(h[8:]), le.Uint32(h[12:])
		want := (v.Len() - aioRingHeaderSize) / ioEventSize
		if le.Uint32(h[16:]) != aioRingMagic || le.Uint32(h[20:]) != 1 || le.Uint32(h[24:]) != 0 ||
			le.Uint32(h[28:]) != aioRingHeaderSize || uint64(nr) != want || nr < 4 || head >= nr || tail >= nr {
			return fmt.Errorf("ring %#x-%#x: not a ring of %d events as the kernel makes them (header %x): %w",
				v.Start, v.End, want, h, ErrUnsupported)
		}
		// io_setup(n) makes a ring of 2*max(n, 4*CPUs)+2 events, rounded
		// up to whole pages: (nr-2)/2 makes this one again.
		t.Mm.AIORings = append(t.Mm.AIORings, image.AIORing{Addr: v.Start, Len: v.Len(), NrReq: (nr - 2) / 2})
	}
	return nil
}

// parentOwnsRing reports whether v is a fork's copy of one of parent's
// AIO rings.
func parentOwnsRing(parent *image.Task, v *image.VMA) bool {
	for _, r := range parent.Mm.AIORings {
		if r.Addr == v.Start && r.Len == v.Len() {
			return image.ParentVMA(parent, v) != nil
		}
	}
	return false
}

// mapScratch maps the scratch area in r's task and returns its address.
// Its data pages must be writable and its code page executable. A task
// without a seccomp filter gets one read+write+exec mapping: one remote
// syscall. A task under memory-deny-write-execute (or an SELinux policy
// without execmem) refuses that, and a seccomp filter might even kill the
// task for it, so those get a read+exec mapping (never writable and
// executable at once) whose data pages a second syscall makes writable.
func mapScratch(r *ptrace.Remote, seccomp bool) (uint64, error) {
	const flags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	if !seccomp {
		addr, err := r.Syscall(unix.SYS_MMAP, 0, scratchSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, flags, ^uint64(0), 0)
		if err == nil {
			return addr, nil
		}
	}
	addr, err := r.Syscall(unix.SYS_MMAP, 0, scratchSize, unix.PROT_READ|unix.PROT_EXEC, flags, ^uint64(0), 0)
	if err != nil {
		return 0, err
	}
	if _, err := r.Syscall(unix.SYS_MPROTECT, addr+offData, scratchSize-offData, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		if _, uerr := r.Syscall(unix.SYS_MUNMAP, addr, scratchSize); uerr != nil {
			return 0, fmt.Errorf("make %#x writable: %w (and unmap it: %v)", addr+offData, err, uerr)
		}
		return 0, fmt.Errorf("make %#x writable: %w", addr+offData, err)
	}
	return addr, nil
}

// threadQueries are the indexes in a batch of addThreadQueries' queries
// that answer in their return value.
type threadQueries struct{ timerSlack int }

// addThreadQueries adds what only a thread can tell of itself: its
// sigaltstack, its clear_child_tid address (prctl PR_GET_TID_ADDRESS),
// its parent-death signal (PR_GET_PDEATHSIG) and its timer slack
// (PR_GET_TIMERSLACK).
func addThreadQueries(b *ptrace.Batch, scratch uint64) threadQueries {
	b.Add("sigaltstack", unix.SYS_SIGALTSTACK, 0, scratch+offAltStack)
	b.Add("prctl(PR_GET_TID_ADDRESS)", unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, scratch+offTIDAddr)
	b.Add("prctl(PR_GET_PDEATHSIG)", unix.SYS_PRCTL, unix.PR_GET_PDEATHSIG, scratch+offPdeathSig)
	return threadQueries{timerSlack: b.Add("prctl(PR_GET_TIMERSLACK)", unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK)}
}

// threadAnswers decodes addThreadQueries' answers: from the scratch data
// page (read from offData) and from b's results.
func threadAnswers(page []byte, b *ptrace.Batch, q threadQueries, th *image.Thread) {
	le := binary.LittleEndian
	as := page[offAltStack-offData:]
	th.AltStack = image.SigAltStack{SP: le.Uint64(as), Flags: int32(le.Uint32(as[8:])), Size: le.Uint64(as[16:])}
	th.ClearTID = le.Uint64(page[offTIDAddr-offData:])
	th.PdeathSig = le.Uint32(page[offPdeathSig-offData:])
	th.TimerSlackNs = b.Result(q.timerSlack)
}

// threadRemote runs addThreadQueries in thread th (not the leader) and
// puts its registers and signal mask back.
func threadRemote(th *image.Thread, insn uint64, area ptrace.BatchArea, scratch uint64) (err error) {
	r, err := ptrace.NewRemote(th.TID, insn)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := r.Restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if r.Allow, err = seccompAllow(th.Seccomp, insn); err != nil {
		return err
	}
	var b ptrace.Batch
	q := addThreadQueries(&b, scratch)
	if err := r.RunBatch(area, &b); err != nil {
		return err
	}
	page := make([]byte, answersEnd-offData)
	if err := ptrace.ReadVMAt(th.TID, scratch+offData, page); err != nil {
		return err
	}
	threadAnswers(page, &b, q, th)
	th.MemPolicy, err = memPolicy(r, th.TID, scratch)
	return err
}

// seccompAllow returns the check (ptrace.Remote.Allow) that keeps dump's
// remote syscalls in a thread within what its seccomp filters allow:
// the filters run here, over each call's number and arguments, and any
// answer but ALLOW or LOG refuses the dump before the call runs (in the
// task it could kill it, trap into its SIGSYS handler, fail, or wait for
// a supervisor). The unmapping of the scratch area, which undoes the
// mapping whatever happens, is checked first: nil means no filter.
func seccompAllow(filters []image.SeccompFilter, insn uint64) (func(uintptr, [6]uint64) error, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	progs := make([][]byte, len(filters))
	for i, f := range filters {
		progs[i] = f.Prog
	}
	allow := func(nr uintptr, args [6]uint64) error {
		ret, err := kernel.SeccompAction(progs, kernel.SeccompData{Nr: int32(nr), Arch: kernel.AuditArchX8664, IP: insn, Args: args})
		if err != nil {
			return err
		}
		switch ret & 0xffff0000 {
		case kernel.SeccompAllow, kernel.SeccompLog:
			return nil
		}
		return fmt.Errorf("its seccomp filter answers %s to %s, which dump runs in the task: %w",
			kernel.SeccompActionName(ret), ptrace.SyscallName(nr), ErrUnsupported)
	}
	if err := allow(unix.SYS_MUNMAP, [6]uint64{0, scratchSize}); err != nil {
		return nil, err
	}
	return allow, nil
}
