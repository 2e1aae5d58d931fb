package restore

import (
	"encoding/binary"
	"fmt"
	"math"
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
// last, credentials.
func (rs *restorer) restoreState(tk *task) error {
	t := tk.t
	steps := []struct {
		name string
		fn   func(*task) error
	}{
		{"fds", rs.restoreFDs},
		{"cwd", rs.restoreFS},
		{"signals", rs.restoreSignals},
		{"timers", rs.restoreTimers},
		{"pending signals", rs.restorePending},
		// After the fds (a low RLIMIT_NOFILE would refuse high fd numbers),
		// before the credentials (prlimit on a task of another uid needs
		// CAP_SYS_RESOURCE, which root lacks here).
		{"rlimits", rs.restoreRlimits},
		{"threads", rs.restoreThreads},
	}
	if _, err := tk.sys(unix.SYS_UMASK, uint64(t.Umask)); err != nil {
		return err
	}
	for _, st := range steps {
		if err := st.fn(tk); err != nil {
			return fmt.Errorf("task %d: %s: %w", t.PID, st.name, err)
		}
	}
	return nil
}

// restoreIdentity sets the comm and the personality, both per thread in
// the kernel: done before the threads are made, they inherit them.
func (rs *restorer) restoreIdentity(tk *task) error {
	t := tk.t
	if t.Comm != "" {
		s := rs.newScratch()
		name := s.str(t.Comm)
		if err := s.write(t.PID); err != nil {
			return err
		}
		if _, err := tk.sys(unix.SYS_PRCTL, unix.PR_SET_NAME, name, 0, 0, 0); err != nil {
			return err
		}
	}
	if _, err := tk.sys(unix.SYS_PERSONALITY, uint64(t.Personality)); err != nil {
		return err
	}
	return nil
}

// restoreRlimits sets the resource limits from mmcr with prlimit. Limits
// the kernel refuses (a hard limit above the current one, without
// CAP_SYS_RESOURCE) are logged, not fatal.
func (rs *restorer) restoreRlimits(tk *task) error {
	for res, lim := range tk.t.Rlimits {
		if err := unix.Prlimit(tk.t.PID, res, &lim, nil); err != nil {
			rs.log.Warn("rlimit not restored", "pid", tk.t.PID, "resource", res, "cur", lim.Cur, "max", lim.Max, "err", err)
		}
	}
	return nil
}

// restoreFDs closes the stub's fds and opens the dumped ones at their numbers.
func (rs *restorer) restoreFDs(tk *task) error {
	pid := tk.t.PID
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return err
	}
	b := &batch{}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			b.add("close stub fd", unix.SYS_CLOSE, uint64(n))
		}
	}
	if err := rs.runBatch(tk, b); err != nil {
		return err
	}
	pidfd := ^uint64(0)
	defer func() {
		if pidfd != ^uint64(0) {
			tk.r.Syscall(unix.SYS_CLOSE, pidfd)
		}
	}()
	for _, fd := range tk.t.FDs {
		var tmp uint64
		switch fd.Kind {
		case image.FDExternal:
			// The task takes mmcr's own stdio (any kind of file) with pidfd_getfd.
			if pidfd == ^uint64(0) {
				if pidfd, err = tk.pidfdAbove(maxFD(tk.t.FDs)); err != nil {
					return err
				}
			}
			mine := rs.stdio(fd.Num)
			if mine < 0 {
				rs.log.Warn("external fd left closed", "pid", pid, "fd", fd.Num, "type", fd.ExternalType)
				continue
			}
			if tmp, err = tk.sys(unix.SYS_PIDFD_GETFD, pidfd, uint64(mine), 0); err != nil {
				// mmcr's own stdio is closed: /dev/null rather than a hole.
				rs.log.Warn("external fd gets /dev/null", "pid", pid, "fd", fd.Num, "type", fd.ExternalType, "err", err)
				if tmp, err = rs.remoteOpen(tk, os.DevNull, uint64(fd.Flags&unix.O_ACCMODE)); err != nil {
					return fmt.Errorf("fd %d (%s): %w", fd.Num, fd.ExternalType, err)
				}
			}
		case image.FDEventfd:
			if tmp, err = rs.makeEventfd(tk, fd); err != nil {
				return fmt.Errorf("fd %d (eventfd): %w", fd.Num, err)
			}
		case image.FDEpoll:
			// Its targets are added once every fd is in place.
			if tmp, err = tk.sys(unix.SYS_EPOLL_CREATE1, 0); err != nil {
				return fmt.Errorf("fd %d (epoll): %w", fd.Num, err)
			}
			if fd.Flags&unix.O_NONBLOCK != 0 {
				if _, err := tk.sys(unix.SYS_FCNTL, tmp, unix.F_SETFL, unix.O_NONBLOCK); err != nil {
					return fmt.Errorf("fd %d (epoll): %w", fd.Num, err)
				}
			}
		default:
			f := rs.tree.FileByID(fd.FileID)
			if f == nil {
				return fmt.Errorf("fd %d: no file %d in the image", fd.Num, fd.FileID)
			}
			flags := uint64(fd.Flags) &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_CLOEXEC | unix.O_NOCTTY)
			path := rs.ghosts.path(f)
			if id := rs.shmOfFile(f); id != 0 && rs.shm[id] != nil {
				path = rs.shmPath(id)
			}
			if tmp, err = rs.remoteOpen(tk, path, flags); err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
		}
		if err := tk.placeFD(tmp, uint64(fd.Num), fd.Flags&unix.O_CLOEXEC != 0); err != nil {
			return fmt.Errorf("fd %d: %w", fd.Num, err)
		}
		if fd.Kind == image.FDRegular && fd.Pos != 0 {
			if _, err := tk.sys(unix.SYS_LSEEK, uint64(fd.Num), uint64(fd.Pos), unix.SEEK_SET); err != nil {
				return fmt.Errorf("fd %d: %w", fd.Num, err)
			}
		}
	}
	return rs.fillEpolls(tk)
}

// makeEventfd creates an eventfd with the dumped counter and mode in tk
// and returns its (temporary) fd number.
func (rs *restorer) makeEventfd(tk *task, fd *image.FD) (uint64, error) {
	const efdSemaphore = 1
	flags := uint64(0)
	if fd.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.O_NONBLOCK // EFD_NONBLOCK
	}
	if fd.Eventfd.Semaphore {
		flags |= efdSemaphore
	}
	// eventfd2 takes an unsigned int; a larger count is written on top.
	count := fd.Eventfd.Count
	initval := min(count, math.MaxUint32)
	efd, err := tk.sys(unix.SYS_EVENTFD2, initval, flags)
	if err != nil {
		return 0, err
	}
	if rest := count - initval; rest > 0 {
		s := rs.newScratch()
		p := s.u64s(rest)
		if err := s.write(tk.t.PID); err != nil {
			return 0, err
		}
		if _, err := tk.sys(unix.SYS_WRITE, efd, p, 8); err != nil {
			return 0, fmt.Errorf("count %d: %w", count, err)
		}
	}
	return efd, nil
}

// fillEpolls registers every epoll fd's targets again, by fd number, with
// their event masks and data. An external fd (0-2) is mmcr's own stdio
// now, which may be a file epoll refuses: that registration is left out
// with a warning; any other failure is an error.
func (rs *restorer) fillEpolls(tk *task) error {
	external := map[int]bool{}
	for _, fd := range tk.t.FDs {
		external[fd.Num] = fd.Kind == image.FDExternal
	}
	for _, fd := range tk.t.FDs {
		if fd.Kind != image.FDEpoll || len(fd.Epoll) == 0 {
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

// pidfdAbove opens a pidfd of mmcr in tk at a number above every dumped
// fd, so that placing the dumped fds never lands on it.
func (tk *task) pidfdAbove(above int) (uint64, error) {
	fd, err := tk.sys(unix.SYS_PIDFD_OPEN, uint64(os.Getpid()), 0)
	if err != nil {
		return 0, err
	}
	high, err := tk.sys(unix.SYS_FCNTL, fd, unix.F_DUPFD_CLOEXEC, uint64(above+1))
	tk.r.Syscall(unix.SYS_CLOSE, fd)
	return high, err
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
func (rs *restorer) restoreFS(tk *task) error {
	if f := rs.tree.FileByID(tk.t.RootFileID); f != nil && f.Path != "/" {
		if err := rs.remotePathCall(tk, unix.SYS_CHROOT, f.Path); err != nil {
			return err
		}
	}
	if f := rs.tree.FileByID(tk.t.CwdFileID); f != nil {
		return rs.remotePathCall(tk, unix.SYS_CHDIR, rs.ghosts.path(f))
	}
	return nil
}

func (rs *restorer) remotePathCall(tk *task, nr uintptr, path string) error {
	s := rs.newScratch()
	p := s.str(path)
	if err := s.write(tk.t.PID); err != nil {
		return err
	}
	if _, err := tk.sys(nr, p); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// restoreSignals sets every signal's action.
func (rs *restorer) restoreSignals(tk *task) error {
	s := rs.newScratch()
	addrs := make([]uint64, len(tk.t.SigActions))
	for i, a := range tk.t.SigActions {
		addrs[i] = s.u64s(a.Handler, a.Flags, a.Restorer, a.Mask)
	}
	if err := s.write(tk.t.PID); err != nil {
		return err
	}
	b := &batch{}
	for i := range tk.t.SigActions {
		sig := uint64(i + 1)
		if sig == uint64(unix.SIGKILL) || sig == uint64(unix.SIGSTOP) {
			continue
		}
		b.add(fmt.Sprintf("signal %d", sig), unix.SYS_RT_SIGACTION, sig, addrs[i], 0, 8)
	}
	return rs.runBatch(tk, b)
}

// restoreTimers arms the interval timers that were armed.
func (rs *restorer) restoreTimers(tk *task) error {
	for which, it := range tk.t.Itimers {
		if it.ValueUsec == 0 {
			continue
		}
		s := rs.newScratch()
		p := s.u64s(uint64(it.IntervalUsec/1e6), uint64(it.IntervalUsec%1e6),
			uint64(it.ValueUsec/1e6), uint64(it.ValueUsec%1e6))
		if err := s.write(tk.t.PID); err != nil {
			return err
		}
		if _, err := tk.sys(unix.SYS_SETITIMER, uint64(which), p, 0); err != nil {
			return fmt.Errorf("itimer %d: %w", which, err)
		}
	}
	return nil
}

// restoreThreads sets each thread's own state: name, alternate stack,
// rseq, clear_child_tid, robust list, private pending signals, then (last,
// as they are per thread too) the credentials of every thread, the
// leader's last.
func (rs *restorer) restoreThreads(tk *task) error {
	for _, thr := range tk.threads {
		if err := rs.restoreThread(tk, thr); err != nil {
			return fmt.Errorf("thread %d: %w", thr.tid, err)
		}
	}
	for i := len(tk.threads) - 1; i >= 0; i-- {
		if err := rs.restoreCreds(tk, tk.threads[i]); err != nil {
			return fmt.Errorf("thread %d: credentials: %w", tk.threads[i].tid, err)
		}
	}
	// Changing ids resets the dumpable flag; put back what was dumped
	// (prctl takes 0 or 1; 2 is only ever set by the kernel).
	if d := tk.t.Mm.Dumpable; d == 0 || d == 1 {
		if _, err := tk.sys(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uint64(d), 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

func (rs *restorer) restoreThread(tk *task, thr *thread) error {
	// Threads are made as copies of the leader, named as the task; a
	// thread that named itself gets its own name back.
	if c := thr.th.Comm; c != "" && c != tk.t.Comm {
		s := rs.newScratch()
		name := s.str(c)
		if err := s.write(thr.tid); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_SET_NAME, name, 0, 0, 0); err != nil {
			return fmt.Errorf("name %q: %w", c, err)
		}
	}
	// The word pthread_join waits on: zeroed and woken at the thread's exit.
	if a := thr.th.ClearTID; a != 0 {
		if _, err := thr.sys(unix.SYS_SET_TID_ADDRESS, a); err != nil {
			return err
		}
	}
	// The kernel releases the robust mutexes of a thread that dies holding
	// them only through this list.
	if h := thr.th.RobustList; h != 0 {
		if _, err := thr.sys(unix.SYS_SET_ROBUST_LIST, h, uint64(thr.th.RobustListLen)); err != nil {
			return fmt.Errorf("set_robust_list(%#x, %d): %w", h, thr.th.RobustListLen, err)
		}
	}
	as := thr.th.AltStack
	if as.SP != 0 && as.Flags&ssDisable == 0 {
		s := rs.newScratch()
		b := make([]byte, 24)
		binary.LittleEndian.PutUint64(b, as.SP)
		binary.LittleEndian.PutUint32(b[8:], uint32(as.Flags)&^1) // not SS_ONSTACK
		binary.LittleEndian.PutUint64(b[16:], as.Size)
		p := s.add(b)
		if err := s.write(thr.tid); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_SIGALTSTACK, p, 0); err != nil {
			return err
		}
	}
	if r := thr.th.Rseq; r.Addr != 0 {
		if _, err := thr.sys(unix.SYS_RSEQ, r.Addr, uint64(r.Len), 0, uint64(r.Sig)); err != nil {
			return err
		}
	}
	// A thread may queue a signal with any si_code only to itself.
	for i := range thr.th.Pending {
		si := &thr.th.Pending[i]
		sig := uint64(binary.LittleEndian.Uint32(si[0:4]))
		s := rs.newScratch()
		p := s.add(si[:])
		if err := s.write(thr.tid); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_RT_TGSIGQUEUEINFO, uint64(tk.t.PID), uint64(thr.tid), sig, p); err != nil {
			return fmt.Errorf("signal %d: %w", sig, err)
		}
	}
	return nil
}

// restorePending queues the process-wide pending signals again; all signals are
// blocked while restore runs, so they wait for the restored mask.
func (rs *restorer) restorePending(tk *task) error {
	for i := range tk.t.SharedPending {
		si := &tk.t.SharedPending[i]
		sig := uint64(binary.LittleEndian.Uint32(si[0:4]))
		s := rs.newScratch()
		p := s.add(si[:])
		if err := s.write(tk.t.PID); err != nil {
			return err
		}
		if _, err := tk.sys(unix.SYS_RT_SIGQUEUEINFO, uint64(tk.t.PID), sig, p); err != nil {
			return fmt.Errorf("signal %d: %w", sig, err)
		}
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

// restoreCreds sets a thread's groups, ids and capabilities (all per
// thread in the kernel), in an order that keeps the rights each step
// needs until it ran.
func (rs *restorer) restoreCreds(tk *task, thr *thread) error {
	c := &tk.t.Creds
	s := rs.newScratch()
	var groups uint64
	if len(c.Groups) > 0 {
		b := make([]byte, 4*len(c.Groups))
		for i, g := range c.Groups {
			binary.LittleEndian.PutUint32(b[4*i:], g)
		}
		groups = s.add(b)
	}
	full := uint64(1)<<(capLastCap()+1) - 1
	rootAll := c.UID == 0 && c.EUID == 0 && c.SUID == 0 && c.FSUID == 0 &&
		c.GID == 0 && c.EGID == 0 && c.SGID == 0 && c.FSGID == 0 &&
		c.CapEff&full == full && c.CapPrm&full == full && c.CapBnd&full == full && c.CapInh == 0 && c.CapAmb == 0
	capData := s.u64s(
		uint64(capV3), // header: version, pid 0
		uint64(uint32(c.CapEff))|uint64(uint32(c.CapPrm))<<32,
		uint64(uint32(c.CapInh))|uint64(uint32(c.CapEff>>32))<<32,
		uint64(uint32(c.CapPrm>>32))|uint64(uint32(c.CapInh>>32))<<32,
	)
	if err := s.write(thr.tid); err != nil {
		return err
	}
	// What the thread has now (the stub's, so mmcr's): steps that change
	// nothing are skipped, since setgroups and PR_CAPBSET_DROP need
	// CAP_SETGID and CAP_SETPCAP even as no-ops, which a non-root user's
	// mmcr lacks. Anything that does change goes to the kernel, which
	// refuses what the thread may not do.
	cur, err := procfs.Default.ThreadStatus(tk.t.PID, thr.tid)
	if err != nil {
		return fmt.Errorf("read current credentials: %w", err)
	}
	if !slices.Equal(sortedGroups(cur.Groups), sortedGroups(c.Groups)) {
		if _, err := thr.sys(unix.SYS_SETGROUPS, uint64(len(c.Groups)), groups); err != nil {
			return err
		}
	}
	if !rootAll {
		for capNr := uint64(0); capNr <= uint64(capLastCap()); capNr++ {
			if c.CapBnd&(1<<capNr) == 0 && cur.CapBnd&(1<<capNr) != 0 {
				if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, capNr, 0, 0, 0); err != nil {
					return err
				}
			}
		}
		if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_SETRESGID, uint64(c.GID), uint64(c.EGID), uint64(c.SGID)); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_SETRESUID, uint64(c.UID), uint64(c.EUID), uint64(c.SUID)); err != nil {
			return err
		}
		thr.r.Syscall(sysSetfsgid, uint64(c.FSGID))
		thr.r.Syscall(sysSetfsuid, uint64(c.FSUID))
		// capset's header is the first 8 bytes, the two data structs follow.
		if _, err := thr.sys(unix.SYS_CAPSET, capData, capData+8); err != nil {
			return err
		}
		if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
			return err
		}
		for capNr := uint64(0); capNr <= uint64(capLastCap()); capNr++ {
			if c.CapAmb&(1<<capNr) != 0 {
				if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, capNr, 0, 0); err != nil {
					return err
				}
			}
		}
	}
	if c.NoNewPrivs {
		if _, err := thr.sys(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// sortedGroups returns a sorted copy of a group list.
func sortedGroups(g []uint32) []uint32 {
	g = slices.Clone(g)
	slices.Sort(g)
	return g
}

// fixupRegs turns the registers of a task stopped inside an interrupted
// syscall into ones that restart it (or return -EINTR where the restart
// block is lost), and marks them as not in a syscall.
func fixupRegs(regs unix.PtraceRegs) unix.PtraceRegs {
	if int64(regs.Orig_rax) >= 0 {
		switch -int64(regs.Rax) {
		case kernel.ERESTARTSYS, kernel.ERESTARTNOINTR, kernel.ERESTARTNOHAND:
			regs.Rax = regs.Orig_rax
			regs.Rip -= 2
		case kernel.ERESTART_RESTARTBLOCK:
			eintr := -int64(unix.EINTR)
			regs.Rax = uint64(eintr)
		}
	}
	regs.Orig_rax = ^uint64(0)
	return regs
}

// release unmaps the restorer area in every task with the last remote
// syscall, sets the dumped registers, xstate and signal mask at its exit
// stop, and detaches every task, children first.
func (rs *restorer) release() error {
	for _, tk := range rs.tasks {
		// Threads other than the leader sit at the exit of their last
		// remote syscall: new registers and they never return to the area.
		for _, thr := range tk.threads[1:] {
			if err := setFinalState(thr.tid, thr.th); err != nil {
				return err
			}
		}
		if _, err := tk.r.SyscallToExit(unix.SYS_MUNMAP, rs.area, restorerSize); err != nil {
			return fmt.Errorf("task %d: unmap restorer area: %w", tk.t.PID, err)
		}
		if err := setFinalState(tk.t.PID, tk.t.Threads[0]); err != nil {
			return err
		}
	}
	for i := len(rs.tasks) - 1; i >= 0; i-- {
		for _, thr := range rs.tasks[i].threads {
			if err := ptrace.Detach(thr.tid); err != nil {
				return err
			}
		}
	}
	return nil
}

// setFinalState gives a stopped thread its dumped registers (fixed up for
// an interrupted syscall), xstate and signal mask.
func setFinalState(tid int, th *image.Thread) error {
	regs := fixupRegs(th.Regs)
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
