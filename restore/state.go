package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
)

// restoreState sets everything but memory and registers: fds, cwd, umask,
// personality, rlimits, signal state, timers, rseq, pending signals and,
// last, credentials. Steps that need no result from each other go in one
// batch (calls): a single-threaded task whose limits stay the stub's
// needs one, else the task's own state takes one and each thread's state
// and credentials one more.
func (rs *restorer) restoreState(tk *task) error {
	t := tk.t
	if err := rs.readStub(tk); err != nil {
		return fmt.Errorf("task %d: %w", t.PID, err)
	}
	c := rs.callsIn(t.PID)
	c.add("umask", unix.SYS_UMASK, uint64(t.Umask))
	type step struct {
		name string
		fn   func(*task, *calls) error
	}
	steps := []step{
		{"fds", rs.restoreFDs},
		{"file locks", rs.restoreLocks},
		{"cwd", rs.restoreFS},
		{"signals", rs.restoreSignals},
		{"timers", rs.restoreTimers},
		{"pending signals", rs.restorePending},
	}
	if len(tk.threads) == 1 {
		// No thread to inherit them: the name and personality join the batch.
		steps = append(steps, step{"identity", rs.addIdentity})
	}
	for _, st := range steps {
		if err := st.fn(tk, c); err != nil {
			return fmt.Errorf("task %d: %s: %w", t.PID, st.name, err)
		}
	}
	// Batch errors name the task and the syscall.
	limits := rs.rlimitChanges(tk)
	if len(tk.threads) > 1 || len(limits) > 0 || slices.ContainsFunc(t.FDs, rs.registersEpoll) {
		if err := c.run(); err != nil {
			return err
		}
		if err := rs.fillEpolls(tk); err != nil {
			return fmt.Errorf("task %d: fds: %w", t.PID, err)
		}
		// After the fds (a low RLIMIT_NOFILE would refuse high fd numbers),
		// before the credentials (prlimit on a task of another uid needs
		// CAP_SYS_RESOURCE, which root lacks here).
		rs.setRlimits(tk, limits)
	}
	// Future mappings locked (mlockall MCL_FUTURE): restore maps nothing
	// in the task after this, and its own mappings must not be locked.
	// Before the credentials: the task may have locked and then dropped
	// CAP_IPC_LOCK.
	if f := t.Mm.MlockFuture; f != 0 {
		c.add(fmt.Sprintf("mlockall(%#x)", f), unix.SYS_MLOCKALL, uint64(f))
	}
	if err := rs.restoreThreads(tk, c); err != nil {
		return fmt.Errorf("task %d: threads: %w", t.PID, err)
	}
	if t.ChildSubreaper {
		c.add("child subreaper", unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	// The membarrier commands the task's memory was registered for: a
	// fork inherits them, and the task's children forked before this.
	for _, cmd := range []uint64{kernel.MembarrierRegisterGlobalExpedited, kernel.MembarrierRegisterPrivateExpedited,
		kernel.MembarrierRegisterPrivateExpeditedSyncCore, kernel.MembarrierRegisterPrivateExpeditedRseq} {
		if uint64(t.Mm.Membarrier)&cmd != 0 {
			c.add(fmt.Sprintf("membarrier register command %#x", cmd), unix.SYS_MEMBARRIER, cmd, 0, 0)
		}
	}
	// KSM may merge every mergeable mapping, later ones too (the VMAs'
	// own MADV_MERGEABLE came back with them).
	if t.Mm.MergeAny {
		c.add("prctl(PR_SET_MEMORY_MERGE, 1)", unix.SYS_PRCTL, unix.PR_SET_MEMORY_MERGE, 1, 0, 0, 0)
	}
	// Sealed VMAs (mseal, Linux 6.10+; smaps "sl"), now that the task's
	// children have forked from it and nothing of restore's maps,
	// unmaps or protects there any more: a seal is for good.
	for _, v := range t.VMAs {
		if slices.Contains(v.VmFlags, "sl") && !kernelMade(v) {
			c.add(fmt.Sprintf("mseal %#x-%#x (Linux 6.10+)", v.Start, v.End), unix.SYS_MSEAL, v.Start, v.Len(), 0)
		}
	}
	// Memory-deny-write-execute, last: it cannot be cleared once set, and
	// every task's memory (its children's too) is in place by now; release
	// only unmaps the restorer area.
	if m := t.Mm.MDWE; m != 0 {
		c.add(fmt.Sprintf("prctl(PR_SET_MDWE, %#x)", m), unix.SYS_PRCTL, unix.PR_SET_MDWE, uint64(m), 0, 0, 0)
	}
	return c.run()
}

// kernelMade reports the VMAs the kernel maps itself (vdso, vvar,
// vsyscall): restore moves or keeps the stub's, it does not seal them.
func kernelMade(v *image.VMA) bool {
	switch v.Kind {
	case image.KindVDSO, image.KindVVAR, image.KindVVARVclock, image.KindVsyscall:
		return true
	}
	return false
}

// readStub reads, before the first task's state is set, what every task
// has from the stub until then (a fork copies it; no task changes its
// own before restoreState): credentials, ignored and caught signals,
// resource limits.
func (rs *restorer) readStub(tk *task) error {
	if rs.stubStatus != nil {
		return nil
	}
	st, err := procfs.Default.ThreadStatus(tk.t.PID, tk.t.PID)
	if err != nil {
		return fmt.Errorf("read credentials and signals of %d: %w", tk.t.PID, err)
	}
	limits := make([]unix.Rlimit, len(tk.t.Rlimits))
	for res := range limits {
		if err := unix.Prlimit(tk.t.PID, res, nil, &limits[res]); err != nil {
			return fmt.Errorf("read rlimit %d of %d: %w", res, tk.t.PID, err)
		}
	}
	rs.stubStatus, rs.stubLimits = &st, limits
	return nil
}

// restoreIdentity sets the comm and the personality, both per thread in
// the kernel, of a task with more threads: done before the threads are
// made, they inherit them. A single-threaded task gets them in
// restoreState's batch.
func (rs *restorer) restoreIdentity(tk *task) error {
	c := rs.callsIn(tk.t.PID)
	if err := rs.addIdentity(tk, c); err != nil {
		return err
	}
	return c.run()
}

func (rs *restorer) addIdentity(tk *task, c *calls) error {
	t := tk.t
	if t.Comm != "" {
		name, err := c.str(t.Comm)
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("name %q", t.Comm), unix.SYS_PRCTL, unix.PR_SET_NAME, name, 0, 0, 0)
	}
	c.add("personality", unix.SYS_PERSONALITY, uint64(t.Personality))
	return nil
}

// rlimitChanges returns the resource limits of tk that differ from the
// stub's, which the task has until setRlimits.
func (rs *restorer) rlimitChanges(tk *task) map[int]unix.Rlimit {
	out := make(map[int]unix.Rlimit)
	for res, lim := range tk.t.Rlimits {
		if res >= len(rs.stubLimits) || lim != rs.stubLimits[res] {
			out[res] = lim
		}
	}
	return out
}

// setRlimits sets resource limits from mmcr with prlimit. Limits the
// kernel refuses (a hard limit above the current one, without
// CAP_SYS_RESOURCE) are logged, not fatal.
func (rs *restorer) setRlimits(tk *task, limits map[int]unix.Rlimit) {
	for res, lim := range limits {
		if err := unix.Prlimit(tk.t.PID, res, &lim, nil); err != nil {
			rs.log.Warn("rlimit not restored", "pid", tk.t.PID, "resource", res, "cur", lim.Cur, "max", lim.Max, "err", err)
		}
	}
}

// restoreFDs closes the stub's fds and opens the dumped ones at their
// numbers. Regular files, and the fds taken from mmcr's open of them
// (pidfd_getfd: shared descriptions, eventfds), go in c: open and
// pidfd_getfd return the lowest free number, which a model of the task's
// fd table (used) predicts, so the dup3 that moves it needs no result.
// Unshared epolls and external fds take a result each; c runs before them.
func (rs *restorer) restoreFDs(tk *task, c *calls) error {
	pid := tk.t.PID
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			c.add(fmt.Sprintf("close stub fd %d", n), unix.SYS_CLOSE, uint64(n))
		}
	}
	used := make(map[uint64]bool) // open in the task once c ran
	lowest := func() uint64 {
		n := uint64(0)
		for used[n] {
			n++
		}
		return n
	}
	// A task that takes fds of mmcr's (shared open file descriptions,
	// external stdio) gets a pidfd of mmcr first, moved above every fd it
	// will hold: with the stub's fds closed, both numbers are known.
	pidfd := ^uint64(0)
	if slices.ContainsFunc(tk.t.FDs, func(fd *image.FD) bool {
		return fd.Kind == image.FDExternal || fd.OpenID != 0 || madeByMmcr(fd.Kind)
	}) {
		low, high := lowest(), uint64(maxFD(tk.t.FDs)+1)
		c.addWant("pidfd of mmcr", low, unix.SYS_PIDFD_OPEN, uint64(os.Getpid()), 0)
		c.addWant("pidfd of mmcr: move up", high, unix.SYS_FCNTL, low, unix.F_DUPFD_CLOEXEC, high)
		c.add("pidfd of mmcr: close", unix.SYS_CLOSE, low)
		pidfd, used[high] = high, true
	}
	for _, fd := range tk.t.FDs {
		num := uint64(fd.Num)
		cloexec := fd.Flags&unix.O_CLOEXEC != 0
		if fd.Kind == image.FDExternal || fd.Kind == image.FDEpoll && fd.OpenID == 0 {
			if err := c.run(); err != nil {
				return err
			}
			tmp, ok, err := rs.openSpecial(tk, fd, pidfd)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := tk.placeFD(tmp, num, cloexec); err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
			delete(used, tmp)
			used[num] = true
			continue
		}
		// Taken from mmcr's open of it (mmcrOpen: a shared description,
		// an eventfd), or opened by the task: either way the lowest free
		// number, which the model predicts, so the batch needs no result.
		var what string
		tmp := lowest()
		if fd.OpenID != 0 || madeByMmcr(fd.Kind) {
			mine, err := rs.mmcrOpen(fd)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("fd %d: open file %d", fd.Num, fd.OpenID)
			c.addWant(what+": take", tmp, unix.SYS_PIDFD_GETFD, pidfd, uint64(mine), 0)
		} else {
			path, err := rs.fdPath(fd)
			if err != nil {
				return err
			}
			p, err := c.str(path)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("fd %d: %s", fd.Num, path)
			c.addWant(what+": open", tmp, unix.SYS_OPENAT, atFDCWD, p, uint64(reopenFlags(fd.Flags)), 0)
		}
		if tmp == num {
			arg := uint64(0)
			if cloexec {
				arg = unix.FD_CLOEXEC
			}
			c.add(what+": set fd flags", unix.SYS_FCNTL, num, unix.F_SETFD, arg)
		} else {
			dflags := uint64(0)
			if cloexec {
				dflags = unix.O_CLOEXEC
			}
			c.add(what+": move", unix.SYS_DUP3, tmp, num, dflags)
			c.add(what+": close", unix.SYS_CLOSE, tmp)
		}
		used[num] = true
		if fd.OpenID == 0 && fd.Kind == image.FDRegular && fd.Pos != 0 {
			c.add(what+": seek", unix.SYS_LSEEK, num, uint64(fd.Pos), unix.SEEK_SET)
		}
	}
	if pidfd != ^uint64(0) {
		c.add("close pidfd", unix.SYS_CLOSE, pidfd)
	}
	return nil
}

// openSpecial makes the file of an epoll or an external fd in tk and
// returns its (temporary) fd number; ok is false for an external fd left
// closed.
func (rs *restorer) openSpecial(tk *task, fd *image.FD, pidfd uint64) (tmp uint64, ok bool, err error) {
	switch {
	case fd.Kind == image.FDExternal:
		// The task takes mmcr's own stdio (any kind of file) with pidfd_getfd.
		mine := rs.stdio(fd.Num)
		if mine < 0 {
			rs.log.Warn("external fd left closed", "pid", tk.t.PID, "fd", fd.Num, "type", fd.ExternalType)
			return 0, false, nil
		}
		if tmp, err = tk.sys(unix.SYS_PIDFD_GETFD, pidfd, uint64(mine), 0); err != nil {
			// mmcr's own stdio is closed: /dev/null rather than a hole.
			rs.log.Warn("external fd gets /dev/null", "pid", tk.t.PID, "fd", fd.Num, "type", fd.ExternalType, "err", err)
			if tmp, err = rs.remoteOpen(tk, os.DevNull, uint64(fd.Flags&unix.O_ACCMODE)); err != nil {
				return 0, false, fmt.Errorf("fd %d (%s): %w", fd.Num, fd.ExternalType, err)
			}
		}
	case fd.Kind == image.FDEpoll:
		// Its targets are added once every fd is in place.
		if tmp, err = tk.sys(unix.SYS_EPOLL_CREATE1, 0); err != nil {
			return 0, false, fmt.Errorf("fd %d (epoll): %w", fd.Num, err)
		}
		if fd.Flags&unix.O_NONBLOCK != 0 {
			if _, err := tk.sys(unix.SYS_FCNTL, tmp, unix.F_SETFL, unix.O_NONBLOCK); err != nil {
				return 0, false, fmt.Errorf("fd %d (epoll): %w", fd.Num, err)
			}
		}
	}
	return tmp, true, nil
}

// fdPath is the path restore opens a regular file, directory or device
// fd by: the file's, its ghost's while it is a deleted file made again,
// or mmcr's open of its shared object.
func (rs *restorer) fdPath(fd *image.FD) (string, error) {
	f := rs.tree.FileByID(fd.FileID)
	if f == nil {
		return "", fmt.Errorf("fd %d: no file %d in the image", fd.Num, fd.FileID)
	}
	path := rs.ghosts.path(f)
	if id := rs.shmOfFile(f); id != 0 && rs.shm[id] != nil {
		path = rs.shmPath(id)
	}
	return path, nil
}

// reopenFlags are the dumped open flags of a file to open again with: not
// creating or truncating it, and close-on-exec (the fd's own FD_CLOEXEC
// is set when it is put in place).
func reopenFlags(flags int) int {
	return flags&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOCTTY) | unix.O_CLOEXEC
}

// fillEpolls registers every epoll fd's targets again, by fd number, with
// their event masks and data: a shared epoll's (made in mmcr, taken by
// every fd that held it) only in the first fd of the tree that holds it,
// whose task's fds those numbers are (the dump checked them there). An
// external fd (0-2) is mmcr's own stdio now, which may be a file epoll
// refuses: that registration is left out with a warning; any other
// failure is an error.
func (rs *restorer) fillEpolls(tk *task) error {
	external := map[int]bool{}
	for _, fd := range tk.t.FDs {
		external[fd.Num] = fd.Kind == image.FDExternal
	}
	for _, fd := range tk.t.FDs {
		if !rs.registersEpoll(fd) {
			continue
		}
		s := rs.newScratch()
		evs := make([]uint64, len(fd.Epoll))
		for i, tg := range fd.Epoll {
			// struct epoll_event is packed on x86-64: u32 events, u64 data.
			b := make([]byte, 12)
			binary.LittleEndian.PutUint32(b, tg.Events)
			binary.LittleEndian.PutUint64(b[4:], tg.Data)
			evs[i] = s.add(b)
		}
		if err := s.write(tk.t.PID); err != nil {
			return err
		}
		b := &batch{}
		for i, tg := range fd.Epoll {
			if external[tg.FD] {
				_, err := tk.sys(unix.SYS_EPOLL_CTL, uint64(fd.Num), unix.EPOLL_CTL_ADD, uint64(tg.FD), evs[i])
				if err != nil {
					rs.log.Warn("epoll registration of an external fd left out", "pid", tk.t.PID,
						"epoll", fd.Num, "fd", tg.FD, "err", err)
				}
				continue
			}
			b.add(fmt.Sprintf("epoll fd %d: add fd %d", fd.Num, tg.FD), unix.SYS_EPOLL_CTL,
				uint64(fd.Num), unix.EPOLL_CTL_ADD, uint64(tg.FD), evs[i])
		}
		if err := rs.runBatch(tk, b); err != nil {
			return err
		}
	}
	return nil
}

func maxFD(fds []*image.FD) int {
	m := 0
	for _, fd := range fds {
		m = max(m, fd.Num)
	}
	return m
}

// stdio returns mmcr's fd that stands for a task's fd 0-2, or -1.
func (rs *restorer) stdio(n int) int {
	var f *os.File
	switch n {
	case 0:
		f = rs.opts.Stdin
	case 1:
		f = rs.opts.Stdout
	case 2:
		f = rs.opts.Stderr
	default:
		return -1
	}
	if f == nil {
		return n
	}
	return int(f.Fd())
}

// placeFD moves remote fd tmp to num with the right close-on-exec flag.
func (tk *task) placeFD(tmp, num uint64, cloexec bool) error {
	if tmp == num {
		arg := uint64(0)
		if cloexec {
			arg = unix.FD_CLOEXEC
		}
		_, err := tk.sys(unix.SYS_FCNTL, num, unix.F_SETFD, arg)
		return err
	}
	flags := uint64(0)
	if cloexec {
		flags = unix.O_CLOEXEC
	}
	if _, err := tk.sys(unix.SYS_DUP3, tmp, num, flags); err != nil {
		return err
	}
	_, err := tk.sys(unix.SYS_CLOSE, tmp)
	return err
}

// restoreFS sets the root and working directories.
func (rs *restorer) restoreFS(tk *task, c *calls) error {
	if f := rs.tree.FileByID(tk.t.RootFileID); f != nil && f.Path != "/" {
		p, err := c.str(f.Path)
		if err != nil {
			return err
		}
		c.add("chroot "+f.Path, unix.SYS_CHROOT, p)
	}
	if f := rs.tree.FileByID(tk.t.CwdFileID); f != nil {
		path := rs.ghosts.path(f)
		p, err := c.str(path)
		if err != nil {
			return err
		}
		c.add("chdir "+path, unix.SYS_CHDIR, p)
	}
	return nil
}

// restoreSignals sets every signal's action but those the task has
// already: the default action, which exec gave the stub for every signal
// it did not ignore (handler SIG_DFL, no flags, empty mask), and every
// task has the stub's until here.
func (rs *restorer) restoreSignals(tk *task, c *calls) error {
	stubSet := rs.stubStatus.SigIgn | rs.stubStatus.SigCgt
	for i, a := range tk.t.SigActions {
		sig := uint64(i + 1)
		if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
			continue
		}
		if a == (image.SigAction{}) && stubSet&(1<<i) == 0 {
			continue
		}
		p, err := c.u64s(a.Handler, a.Flags, a.Restorer, a.Mask)
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("signal %d", sig), unix.SYS_RT_SIGACTION, sig, p, 0, 8)
	}
	return nil
}

// restoreTimers arms the interval timers that were armed.
func (rs *restorer) restoreTimers(tk *task, c *calls) error {
	for which, it := range tk.t.Itimers {
		value := it.ValueUsec
		if value == 0 && it.IntervalUsec != 0 {
			// A periodic ITIMER_REAL reads 0 left between an expiry and
			// the taking of its SIGALRM, which re-arms it: a task frozen
			// in that window was dumped with the signal pending (restored
			// with the rest) and the timer waiting. Armed for one more
			// interval, it goes on; left at 0 it would stop for good.
			value = it.IntervalUsec
		}
		if value == 0 {
			continue
		}
		p, err := c.u64s(uint64(it.IntervalUsec/1e6), uint64(it.IntervalUsec%1e6),
			uint64(value/1e6), uint64(value%1e6))
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("itimer %d", which), unix.SYS_SETITIMER, uint64(which), p, 0)
	}
	return rs.restorePosixTimers(tk, c)
}

// restorePosixTimers makes the task's POSIX timers again with their ids
// (timer_create under PR_TIMER_CREATE_RESTORE_IDS), signal, sigev_value,
// target thread and clock, and arms each with its interval and the time it
// had left at dump.
func (rs *restorer) restorePosixTimers(tk *task, c *calls) error {
	timers := tk.t.PosixTimers
	if len(timers) == 0 {
		return nil
	}
	c.add("prctl(PR_TIMER_CREATE_RESTORE_IDS, on): POSIX timers with their ids (Linux 6.15+)",
		unix.SYS_PRCTL, kernel.PrTimerCreateRestoreIDs, kernel.PrTimerCreateRestoreIDsOn, 0, 0, 0)
	for _, pt := range timers {
		id := make([]byte, 8)
		binary.LittleEndian.PutUint32(id, uint32(pt.ID))
		sev := make([]byte, 64) // struct sigevent: value, signo, notify, thread id
		binary.LittleEndian.PutUint64(sev[0:], pt.SigValue)
		binary.LittleEndian.PutUint32(sev[8:], uint32(pt.Signo))
		binary.LittleEndian.PutUint32(sev[12:], uint32(pt.Notify))
		binary.LittleEndian.PutUint32(sev[16:], uint32(pt.NotifyTID))
		sevAddr, err := c.arg(sev)
		if err != nil {
			return err
		}
		idAddr, err := c.arg(id)
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("timer_create (POSIX timer %d)", pt.ID), unix.SYS_TIMER_CREATE, uint64(pt.Clock), sevAddr, idAddr)
	}
	c.add("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", unix.SYS_PRCTL, kernel.PrTimerCreateRestoreIDs, kernel.PrTimerCreateRestoreIDsOff, 0, 0, 0)
	for _, pt := range timers {
		if pt.ValueNsec == 0 {
			continue // disarmed
		}
		its, err := c.u64s(uint64(pt.IntervalNsec/1e9), uint64(pt.IntervalNsec%1e9), uint64(pt.ValueNsec/1e9), uint64(pt.ValueNsec%1e9))
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("timer_settime (POSIX timer %d)", pt.ID), unix.SYS_TIMER_SETTIME, uint64(pt.ID), 0, its, 0)
	}
	return nil
}

// restoreThreads sets each thread's own state: name, alternate stack,
// rseq, clear_child_tid, robust list, private pending signals, then (last,
// as they are per thread too) its credentials; one batch per thread but
// the leader, whose syscalls (with the dumpable flag) are added to leader
// for the caller to run last.
func (rs *restorer) restoreThreads(tk *task, leader *calls) error {
	for i := len(tk.threads) - 1; i >= 0; i-- {
		thr := tk.threads[i]
		c := leader
		if i > 0 {
			c = rs.callsIn(thr.tid)
		}
		if err := rs.restoreThread(tk, thr, c); err != nil {
			return fmt.Errorf("thread %d: %w", thr.tid, err)
		}
		if err := rs.restoreCreds(tk, thr, c); err != nil {
			return fmt.Errorf("thread %d: credentials: %w", thr.tid, err)
		}
		rs.restorePdeathSig(tk, thr, c)
		if i > 0 {
			// The error names the thread and the syscall.
			if err := c.run(); err != nil {
				return err
			}
			continue
		}
		// Changing ids resets the dumpable flag; put back what was dumped
		// (prctl takes 0 or 1; 2 is only ever set by the kernel).
		if d := tk.t.Mm.Dumpable; d == 0 || d == 1 {
			c.add("dumpable", unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uint64(d), 0, 0, 0)
		}
	}
	return nil
}

// restorePdeathSig adds the thread's parent-death signal, after its
// credentials (a change of ids clears it). The root's is left out: its
// parent is not part of the image, and the signal would fire when
// whatever runs mmcr restore exits.
func (rs *restorer) restorePdeathSig(tk *task, thr *thread, c *calls) {
	s := thr.th.PdeathSig
	if s == 0 {
		return
	}
	if tk.parent == nil {
		rs.log.Warn("parent-death signal not restored: the root's parent is not in the image",
			"pid", tk.t.PID, "tid", thr.tid, "signal", s)
		return
	}
	c.add(fmt.Sprintf("parent-death signal %d", s), unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uint64(s), 0, 0, 0)
}

func (rs *restorer) restoreThread(tk *task, thr *thread, c *calls) error {
	// Threads are made as copies of the leader, named as the task; a
	// thread that named itself gets its own name back.
	if n := thr.th.Comm; n != "" && n != tk.t.Comm {
		name, err := c.str(n)
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("name %q", n), unix.SYS_PRCTL, unix.PR_SET_NAME, name, 0, 0, 0)
	}
	// The word pthread_join waits on: zeroed and woken at the thread's exit.
	if a := thr.th.ClearTID; a != 0 {
		c.add("clear_child_tid", unix.SYS_SET_TID_ADDRESS, a)
	}
	// The kernel releases the robust mutexes of a thread that dies holding
	// them only through this list.
	if h := thr.th.RobustList; h != 0 {
		c.add(fmt.Sprintf("set_robust_list(%#x, %d)", h, thr.th.RobustListLen),
			unix.SYS_SET_ROBUST_LIST, h, uint64(thr.th.RobustListLen))
	}
	as := thr.th.AltStack
	if as.SP != 0 && as.Flags&ssDisable == 0 {
		b := make([]byte, 24)
		binary.LittleEndian.PutUint64(b, as.SP)
		binary.LittleEndian.PutUint32(b[8:], uint32(as.Flags)&^1) // not SS_ONSTACK
		binary.LittleEndian.PutUint64(b[16:], as.Size)
		p, err := c.arg(b)
		if err != nil {
			return err
		}
		c.add("sigaltstack", unix.SYS_SIGALTSTACK, p, 0)
	}
	if r := thr.th.Rseq; r.Addr != 0 {
		c.add("rseq", unix.SYS_RSEQ, r.Addr, uint64(r.Len), 0, uint64(r.Sig))
	}
	// How late the kernel may fire the thread's timers, to batch wakeups
	// (PR_SET_TIMERSLACK; 50 µs unless the thread or an ancestor chose
	// otherwise). 0: not recorded, or a real-time thread's, which has none.
	if ns := thr.th.TimerSlackNs; ns != 0 {
		c.add(fmt.Sprintf("timer slack %d ns", ns), unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, ns, 0, 0, 0)
	}
	// The NUMA memory policy of the thread's later allocations; nodes
	// this machine lacks fail the restore here, naming the policy.
	if p := thr.th.MemPolicy; p != nil {
		mask := make([]byte, 8*image.MemPolicyNodeWords)
		for i, w := range p.Nodes {
			binary.LittleEndian.PutUint64(mask[8*i:], w)
		}
		a, err := c.arg(mask)
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("set_mempolicy(%#x, nodes %x)", p.Mode, p.Nodes), unix.SYS_SET_MEMPOLICY, uint64(p.Mode), a,
			image.MemPolicyNodeWords*64)
	}
	// A thread may queue a signal with any si_code only to itself.
	for i := range thr.th.Pending {
		si := &thr.th.Pending[i]
		sig := uint64(binary.LittleEndian.Uint32(si[0:4]))
		p, err := c.arg(si[:])
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("signal %d", sig), unix.SYS_RT_TGSIGQUEUEINFO, uint64(tk.t.PID), uint64(thr.tid), sig, p)
	}
	return nil
}

// restorePending queues the process-wide pending signals again; all signals are
// blocked while restore runs, so they wait for the restored mask.
func (rs *restorer) restorePending(tk *task, c *calls) error {
	for i := range tk.t.SharedPending {
		si := &tk.t.SharedPending[i]
		sig := uint64(binary.LittleEndian.Uint32(si[0:4]))
		p, err := c.arg(si[:])
		if err != nil {
			return err
		}
		c.add(fmt.Sprintf("signal %d", sig), unix.SYS_RT_SIGQUEUEINFO, uint64(tk.t.PID), sig, p)
	}
	return nil
}

// capLastCap is the highest capability this kernel knows, read once: the
// capability loops call it per capability and per thread (reading the file
// each time cost ~2.5 ms per task).
var capLastCap = sync.OnceValue(func() uint {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return uint(n)
})

const (
	sysSetfsuid = 122
	sysSetfsgid = 123
	capV3       = 0x20080522
	ssDisable   = 2 // stack_t.ss_flags SS_DISABLE
)

// restoreCreds adds to c what sets a thread's groups, ids and
// capabilities (all per thread in the kernel), in an order that keeps the
// rights each step needs until it ran.
func (rs *restorer) restoreCreds(tk *task, thr *thread, c *calls) error {
	cr := &tk.t.Creds
	var groups uint64
	if len(cr.Groups) > 0 {
		b := make([]byte, 4*len(cr.Groups))
		for i, g := range cr.Groups {
			binary.LittleEndian.PutUint32(b[4*i:], g)
		}
		var err error
		if groups, err = c.arg(b); err != nil {
			return err
		}
	}
	full := uint64(1)<<(capLastCap()+1) - 1
	rootAll := cr.UID == 0 && cr.EUID == 0 && cr.SUID == 0 && cr.FSUID == 0 &&
		cr.GID == 0 && cr.EGID == 0 && cr.SGID == 0 && cr.FSGID == 0 &&
		cr.CapEff&full == full && cr.CapPrm&full == full && cr.CapBnd&full == full && cr.CapInh == 0 && cr.CapAmb == 0
	// What the thread has now: the stub's, so mmcr's. Steps that change
	// nothing are skipped, since setgroups and PR_CAPBSET_DROP need
	// CAP_SETGID and CAP_SETPCAP even as no-ops, which a non-root user's
	// mmcr lacks. Anything that does change goes to the kernel, which
	// refuses what the thread may not do.
	cur := rs.stubStatus
	secbits, keepCaps := rs.securebitsPlan(tk, rootAll)
	if !slices.Equal(sortedGroups(cur.Groups), sortedGroups(cr.Groups)) {
		c.add("credentials: setgroups", unix.SYS_SETGROUPS, uint64(len(cr.Groups)), groups)
	}
	if !rootAll {
		capData, err := c.u64s(
			uint64(capV3), // header: version, pid 0
			uint64(uint32(cr.CapEff))|uint64(uint32(cr.CapPrm))<<32,
			uint64(uint32(cr.CapInh))|uint64(uint32(cr.CapEff>>32))<<32,
			uint64(uint32(cr.CapPrm>>32))|uint64(uint32(cr.CapInh>>32))<<32,
		)
		if err != nil {
			return err
		}
		for capNr := uint64(0); capNr <= uint64(capLastCap()); capNr++ {
			if cr.CapBnd&(1<<capNr) == 0 && cur.CapBnd&(1<<capNr) != 0 {
				c.add(fmt.Sprintf("credentials: drop capability %d from the bounding set", capNr),
					unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, capNr, 0, 0, 0)
			}
		}
		if secbits {
			// While CAP_SETPCAP is still effective; the lock bits it may
			// set leave keep-caps free (securebitsPlan).
			c.add(fmt.Sprintf("credentials: securebits %#x", cr.Securebits), unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, uint64(cr.Securebits), 0, 0, 0)
		}
		c.add("credentials: keep capabilities", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0, 0, 0)
		c.add("credentials: setresgid", unix.SYS_SETRESGID, uint64(cr.GID), uint64(cr.EGID), uint64(cr.SGID))
		c.add("credentials: setresuid", unix.SYS_SETRESUID, uint64(cr.UID), uint64(cr.EUID), uint64(cr.SUID))
		// setfsgid and setfsuid return the previous id, never an error.
		c.add("credentials: setfsgid", sysSetfsgid, uint64(cr.FSGID))
		c.add("credentials: setfsuid", sysSetfsuid, uint64(cr.FSUID))
		// capset's header is the first 8 bytes, the two data structs follow.
		c.add("credentials: capset", unix.SYS_CAPSET, capData, capData+8)
		c.add("credentials: keep capabilities as dumped", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, keepCaps, 0, 0, 0)
		for capNr := uint64(0); capNr <= uint64(capLastCap()); capNr++ {
			if cr.CapAmb&(1<<capNr) != 0 {
				c.add(fmt.Sprintf("credentials: raise ambient capability %d", capNr),
					unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, capNr, 0, 0)
			}
		}
	}
	if secbits && rootAll {
		c.add(fmt.Sprintf("credentials: securebits %#x", cr.Securebits), unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, uint64(cr.Securebits), 0, 0, 0)
	}
	if cr.NoNewPrivs {
		c.add("credentials: no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	return nil
}

// Securebits (linux/securebits.h).
const (
	secbitKeepCaps          = 1 << 4
	secbitKeepCapsLocked    = 1 << 5
	secbitNoCapAmbientRaise = 1 << 6
)

// securebitsPlan says whether restoreCreds sets the task's securebits
// (the stub has mmcr's, which exec kept but for keep-caps) and what
// keep-caps ends as. With the task's ids changed, they are set before
// the ids, while CAP_SETPCAP is effective; two combinations cannot be
// set that way and are left as the stub's, with a warning: keep-caps
// locked (the ids change needs keep-caps on, then as dumped), and
// ambient raising forbidden for a task with ambient capabilities (they
// are raised after).
func (rs *restorer) securebitsPlan(tk *task, rootAll bool) (set bool, keepCaps uint64) {
	cr := &tk.t.Creds
	s := cr.Securebits
	keepCaps = uint64(s&secbitKeepCaps) >> 4
	stub, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err == nil && uint32(stub)&^secbitKeepCaps == s {
		return false, keepCaps
	}
	if !rootAll && (s&secbitKeepCapsLocked != 0 || (s&secbitNoCapAmbientRaise != 0 && cr.CapAmb != 0)) {
		rs.log.Warn("securebits not restored: this combination cannot be set with changed ids",
			"pid", tk.t.PID, "securebits", fmt.Sprintf("%#x", s))
		return false, keepCaps
	}
	return true, keepCaps
}

// sortedGroups returns a sorted copy of a group list.
func sortedGroups(g []uint32) []uint32 {
	g = slices.Clone(g)
	slices.Sort(g)
	return g
}

// finalRegs turns the dumped registers of a thread into the ones it is
// let go with, from a signal-delivery-stop (ptrace.StopInSignal). A
// thread interrupted in a syscall that restarts (-ERESTARTSYS,
// -ERESTARTNOINTR, -ERESTARTNOHAND) keeps them as they are: the kernel
// applies its own restart logic on the way out of that stop, EINTR for a
// handler that runs first included. One interrupted with
// -ERESTART_RESTARTBLOCK (nanosleep, poll...) would restart through the
// restart block, which is not dumped: it returns -EINTR instead.
func finalRegs(regs unix.PtraceRegs) unix.PtraceRegs {
	if int64(regs.Orig_rax) >= 0 && -int64(regs.Rax) == kernel.ERESTART_RESTARTBLOCK {
		eintr := -int64(unix.EINTR)
		regs.Rax = uint64(eintr)
		regs.Orig_rax = ^uint64(0)
	}
	return regs
}

// release unmaps the restorer area in every task with the last remote
// syscall, sets the dumped registers, xstate and signal mask in a
// signal-delivery-stop of each thread (setFinalState), then the scheduling state and oom_score_adj (restoreSched), and
// detaches every task, children first. A task that was in a job-control
// stop at dump, or every task with Options.LeaveStopped, has each thread
// detached with SIGSTOP as the signal of its final stop: it enters the
// group stop before it runs anything of its own.
func (rs *restorer) release() error {
	for _, tk := range rs.tasks {
		// Threads other than the leader sit at the exit of their last
		// remote syscall: they leave it for their final stop and never
		// return to the area.
		leader := tk.threads[0]
		shared := sharedSeccomp(tk)
		if err := rs.installSeccomp(tk.t.PID, leader, 0, shared, true); err != nil {
			return err
		}
		for _, thr := range tk.threads[1:] {
			if err := rs.installSeccomp(tk.t.PID, thr, shared, len(thr.th.Seccomp), false); err != nil {
				return err
			}
			if err := setFinalState(tk.t.PID, thr.tid, thr.th); err != nil {
				return err
			}
		}
		if err := rs.installSeccomp(tk.t.PID, leader, shared, len(leader.th.Seccomp), false); err != nil {
			return err
		}
		if _, err := tk.r.SyscallToExit(unix.SYS_MUNMAP, rs.area, restorerSize); err != nil {
			if len(tk.t.Threads[0].Seccomp) > 0 {
				err = fmt.Errorf("%w (its seccomp filter refuses munmap?)", err)
			}
			return fmt.Errorf("task %d: unmap restorer area: %w", tk.t.PID, err)
		}
		if err := setFinalState(tk.t.PID, tk.t.PID, tk.t.Threads[0]); err != nil {
			return err
		}
	}
	for _, tk := range rs.tasks {
		if err := rs.restoreSched(tk); err != nil {
			return err
		}
	}
	for i := len(rs.tasks) - 1; i >= 0; i-- {
		tk := rs.tasks[i]
		sig := 0
		if rs.opts.LeaveStopped || tk.t.Stopped {
			sig = int(unix.SIGSTOP)
		}
		for _, thr := range tk.threads {
			if err := ptrace.DetachSignal(thr.tid, sig); err != nil {
				return err
			}
		}
	}
	return nil
}

// setFinalState moves stopped thread tid of task pid into a
// signal-delivery-stop and gives it its dumped registers (finalRegs),
// xstate and signal mask there.
func setFinalState(pid, tid int, th *image.Thread) error {
	if err := ptrace.StopInSignal(tid); err != nil {
		return fmt.Errorf("task %d: thread %d: stop for release: %w", pid, tid, err)
	}
	regs := finalRegs(th.Regs)
	if err := ptrace.SetRegs(tid, &regs); err != nil {
		return err
	}
	if len(th.Xsave) > 0 {
		if err := ptrace.SetXstate(tid, th.Xsave); err != nil {
			return err
		}
	}
	if err := ptrace.SetSigMask(tid, th.SigMask); err != nil {
		return err
	}
	return nil
}
