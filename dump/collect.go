package dump

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
	"github.com/mmcr/mmcr/shmem"
	"golang.org/x/sys/unix"
)

// numRlimits is RLIMIT_CPU (0) ... RLIMIT_RTTIME (15).
const numRlimits = 16

// collectTasks gathers everything about every frozen task but its pages,
// in tree order, into d.tree.
//
// A task is collected in two parts: what /proc tells (collectProc: maps,
// map_files, fds, links), on a goroutine of its own, and what only the
// tracer can ask (collectTraced: registers, remote syscalls), on this
// locked thread. The /proc part of the next task runs while this thread
// waits for the current one's remote syscalls: with several tasks the two
// parts overlap instead of adding up. A task's smaps (its VmFlags) is read
// after both, in the background (vmflags.go).
func (d *dumper) collectTasks() error {
	// Also what makes the overlap safe: no task's /proc view can show the
	// scratch page of another task's remote syscalls.
	if err := checkSharedMM(d.order); err != nil {
		return err
	}
	type procPart struct {
		t      *image.Task
		status procfs.Status // read after the freeze
		err    error
	}
	parts := make(chan procPart, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(parts)
		for _, pid := range d.order {
			var p procPart
			if p.err = d.canceled(); p.err == nil {
				p.t, p.status, p.err = d.collectProcSafe(pid)
			}
			select {
			case parts <- p:
			case <-stop:
				return
			}
			if p.err != nil {
				return
			}
		}
	}()
	// The goroutine fills d.files and d.shm: it must be done before the
	// caller goes on, also after a failure.
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for p := range parts {
		if p.err != nil {
			return p.err
		}
		if err := d.canceled(); err != nil {
			return err
		}
		if err := d.collectTraced(p.t, p.status); err != nil {
			return err
		}
		d.startVmFlags(p.t)
		d.tree.Tasks = append(d.tree.Tasks, p.t)
	}
	return nil
}

// collectProcSafe is collectProc with a panic turned into an error, as on
// the dump's own goroutine, for Run to undo the dump.
func (d *dumper) collectProcSafe(pid int) (t *image.Task, status procfs.Status, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = taskErr(pid, "collect", fmt.Errorf("internal error: %v", r))
		}
	}()
	return d.collectProc(pid)
}

// checkSharedMM refuses tasks that share one address space (clone with
// CLONE_VM but not CLONE_THREAD, a vfork child before its exec): restore
// would give each its own copy. kcmp orders tasks by mm, so sorting finds
// the sharers with O(n log n) calls.
func checkSharedMM(pids []int) error {
	const kcmpVM = 1
	var kerr error
	cmp := func(a, b int) int {
		r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
		if e != 0 {
			if kerr == nil {
				kerr = fmt.Errorf("compare the address spaces of tasks %d and %d: %w", a, b, os.NewSyscallError("kcmp", e))
			}
			return 0
		}
		return [...]int{0, -1, 1, 0}[r&3]
	}
	sorted := slices.Clone(pids)
	slices.SortFunc(sorted, cmp)
	for i := 1; i < len(sorted); i++ {
		same := cmp(sorted[i-1], sorted[i]) == 0
		if kerr != nil {
			return kerr
		}
		if same {
			a, b := min(sorted[i-1], sorted[i]), max(sorted[i-1], sorted[i])
			return fmt.Errorf("tasks %d and %d share one address space (clone with CLONE_VM, or a vfork child before exec): %w",
				a, b, ErrUnsupported)
		}
	}
	return kerr
}

// collectProc gathers what /proc, map_files and plain syscalls on its pid
// (rlimits, scheduling) tell of a frozen task. It needs no ptrace, so it
// may run on any goroutine (collectTasks runs it ahead of the tracer), but it fills d.files, d.shm, d.shmSrc and the fd
// lists: one collectProc at a time, and nothing else touching those.
// It returns the task's status too, which the remote syscalls need (its
// seccomp filter, its locked memory).
func (d *dumper) collectProc(pid int) (t *image.Task, status procfs.Status, err error) {
	st, err := d.fs.Stat(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read stat", err)
	}
	status, err = d.fs.Status(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read status", err)
	}
	if err := checkNamespaces(pid); err != nil {
		return nil, procfs.Status{}, taskErr(pid, "check namespaces", err)
	}

	timers, err := posixTimers(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read POSIX timers", err)
	}
	coredump, err := coredumpFilter(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read", err)
	}
	t = &image.Task{
		PosixTimers:    timers,
		CoredumpFilter: coredump,
		PID:            pid,
		PPID:           st.PPID,
		PGID:           st.PGID,
		SID:            st.SID,
		Comm:           st.Comm,
		Stopped:        d.jobStopped[pid],
	}

	// maps, not smaps: the VmFlags come later (vmflags.go).
	maps, err := d.fs.Maps(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read vmas", err)
	}
	if t.VMAs, err = d.collectVMAs(pid, maps); err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read vmas", err)
	}
	for _, tid := range d.threads[pid] {
		comm, err := d.fs.ThreadComm(pid, tid)
		if err != nil {
			return nil, procfs.Status{}, taskErr(pid, "read thread "+strconv.Itoa(tid), err)
		}
		sched, err := readSched(pid, tid)
		if err != nil {
			return nil, procfs.Status{}, err
		}
		t.Threads = append(t.Threads, &image.Thread{TID: tid, Comm: comm, Sched: sched})
	}
	oom, err := d.fs.OomScoreAdj(pid)
	if err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read oom_score_adj", err)
	}
	t.OomScoreAdj = &oom
	if err := d.collectMm(t, st, status); err != nil {
		return nil, procfs.Status{}, err
	}
	t.Creds = image.Creds{
		UID: status.UID[0], EUID: status.UID[1], SUID: status.UID[2], FSUID: status.UID[3],
		GID: status.GID[0], EGID: status.GID[1], SGID: status.GID[2], FSGID: status.GID[3],
		Groups: status.Groups,
		CapInh: status.CapInh, CapPrm: status.CapPrm, CapEff: status.CapEff,
		CapBnd: status.CapBnd, CapAmb: status.CapAmb,
		NoNewPrivs: status.NoNewPrivs,
	}
	t.Umask = status.Umask
	if t.Personality, err = d.fs.Personality(pid); err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read personality", err)
	}
	if t.Rlimits, err = readRlimits(pid); err != nil {
		return nil, procfs.Status{}, taskErr(pid, "read rlimits", err)
	}
	if t.CwdFileID, err = d.linkFile(pid, "cwd"); err != nil {
		return nil, procfs.Status{}, err
	}
	if t.RootFileID, err = d.linkFile(pid, "root"); err != nil {
		return nil, procfs.Status{}, err
	}
	if t.FDs, err = d.collectFDs(pid); err != nil {
		return nil, procfs.Status{}, taskErr(pid, "dump fds", err)
	}
	return t, status, nil
}

// collectTraced gathers what only the tracer can ask of t (collectProc
// filled the rest): each thread's registers and signal state, the shared
// pending signals, and the answers of the remote syscalls. It runs on the
// dump's locked thread.
func (d *dumper) collectTraced(t *image.Task, status procfs.Status) error {
	pid := t.PID
	for i, th := range t.Threads {
		regs, err := collectThread(th.TID)
		if err != nil {
			return taskErr(pid, "read thread "+strconv.Itoa(th.TID), err)
		}
		regs.Comm, regs.Sched = th.Comm, th.Sched
		if regs.Seccomp, err = seccompFilters(pid, th.TID, status.Seccomp); err != nil {
			return taskErr(pid, "read seccomp filters of thread "+strconv.Itoa(th.TID), err)
		}
		if regs.CPUAffinity, err = cpuAffinity(th.TID); err != nil {
			return taskErr(pid, "read CPU affinity of thread "+strconv.Itoa(th.TID), err)
		}
		if regs.IOPrio, err = ioPrio(th.TID); err != nil {
			return taskErr(pid, "read I/O priority of thread "+strconv.Itoa(th.TID), err)
		}
		t.Threads[i] = regs
	}
	shared, err := ptrace.PeekSigInfo(pid, true)
	if err != nil {
		return taskErr(pid, "read shared pending signals", err)
	}
	t.SharedPending = toSigInfo(shared)
	if err := d.collectRemote(t, status); err != nil {
		return err
	}
	d.log.Debug("task collected", "pid", pid, "comm", t.Comm, "threads", len(t.Threads),
		"vmas", len(t.VMAs), "fds", len(t.FDs))
	return nil
}

// collectVMAs classifies every mapping and resolves what backs it: a File
// for file mappings, a SharedObject for shared anon and memfd mappings.
func (d *dumper) collectVMAs(pid int, maps []procfs.Mapping) ([]*image.VMA, error) {
	vmas := make([]*image.VMA, 0, len(maps))
	for _, m := range maps {
		v, err := classifyLine(m)
		if err != nil {
			return nil, err
		}
		switch v.Kind {
		case image.KindPrivateFile, image.KindSharedFile:
			r, err := mapfiles.Resolve(pid, v.Start, v.End, m.Path)
			if err != nil {
				return nil, err
			}
			if err := mappableFile(v, r); err != nil {
				return nil, err
			}
			if err := notSecret(pid, v, r); err != nil {
				return nil, err
			}
			v.FileID = d.files.add(r, mapfiles.Path(pid, v.Start, v.End)).ID
		case image.KindSharedAnon, image.KindMemfd:
			id, err := mapfiles.Stat(pid, v.Start, v.End)
			if err != nil {
				return nil, err
			}
			name := ""
			if v.Kind == image.KindMemfd {
				name = memfdName(m.Path)
			}
			o, isNew := d.shm.Add(shmem.Key{Dev: id.Dev, Ino: id.Ino}, uint64(max(id.Size, 0)),
				v.Pgoff, v.Len(), v.Kind == image.KindMemfd, name)
			if isNew {
				d.shmSrc[o.ID] = vmaRef{pid: pid, start: v.Start, end: v.End}
			}
			v.ShmID = o.ID
			if strings.HasPrefix(m.Path, "/SYSV") {
				if err := d.sysvAttachment(v, o, id.Ino); err != nil {
					return nil, err
				}
			}
		}
		vmas = append(vmas, v)
	}
	return vmas, nil
}

// mappableFile refuses file mappings restore cannot recreate: anything but
// a regular file, except private mappings of /dev/zero (anonymous memory).
func mappableFile(v *image.VMA, r mapfiles.ResolvedFile) error {
	switch r.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFCHR:
		if v.Kind == image.KindPrivateFile && r.Path == "/dev/zero" {
			return nil
		}
	}
	return fmt.Errorf("vma %x-%x maps %s (mode %#o): %w", v.Start, v.End, r.Path, r.Mode, ErrUnsupported)
}

// notSecret refuses a mapping of memfd_secret memory (the kernel names its
// file "/secretmem"): its pages are out of the kernel's reach, so neither
// dump can read them nor could restore make them secret again; as a file
// it would come back as ordinary memory. Only such a name costs a statfs.
func notSecret(pid int, v *image.VMA, r mapfiles.ResolvedFile) error {
	if r.Path != "/secretmem" {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mapfiles.Path(pid, v.Start, v.End), &st); err != nil {
		return fmt.Errorf("vma %x-%x: statfs: %w", v.Start, v.End, err)
	}
	if st.Type == unix.SECRETMEM_MAGIC {
		return fmt.Errorf("vma %x-%x: memfd_secret memory, which no one but the task can read: %w", v.Start, v.End, ErrUnsupported)
	}
	return nil
}

// collectThread reads one stopped thread's registers and signal state.
func collectThread(tid int) (*image.Thread, error) {
	th := &image.Thread{TID: tid}
	var err error
	if th.Regs, err = ptrace.GetRegs(tid); err != nil {
		return nil, err
	}
	if th.Xsave, err = ptrace.GetXstate(tid); err != nil {
		return nil, err
	}
	if th.SigMask, err = ptrace.GetSigMask(tid); err != nil {
		return nil, err
	}
	pend, err := ptrace.PeekSigInfo(tid, false)
	if err != nil {
		return nil, err
	}
	th.Pending = toSigInfo(pend)
	rs, err := ptrace.GetRseq(tid)
	if err != nil {
		return nil, err
	}
	th.Rseq = image.Rseq{Addr: rs.Addr, Len: rs.Len, Sig: rs.Sig}
	head, n, err := ptrace.GetRobustList(tid)
	if err != nil {
		return nil, err
	}
	th.RobustList, th.RobustListLen = head, uint32(n)
	return th, nil
}

func toSigInfo(raw [][128]byte) []image.SigInfo {
	out := make([]image.SigInfo, len(raw))
	for i, r := range raw {
		out[i] = image.SigInfo(r)
	}
	return out
}

// collectMm fills the mm fields /proc tells (brk and dumpable come from
// the remote syscalls).
func (d *dumper) collectMm(t *image.Task, st procfs.Stat, status procfs.Status) error {
	pid := t.PID
	auxv, err := d.fs.Auxv(pid)
	if err != nil {
		return taskErr(pid, "read auxv", err)
	}
	t.Mm = image.Mm{
		StartCode:   st.StartCode,
		EndCode:     st.EndCode,
		StartData:   st.StartData,
		EndData:     st.EndData,
		StartBrk:    st.StartBrk,
		StartStack:  st.StartStack,
		ArgStart:    st.ArgStart,
		ArgEnd:      st.ArgEnd,
		EnvStart:    st.EnvStart,
		EnvEnd:      st.EnvEnd,
		Auxv:        auxv,
		THPDisabled: status.THPDisabled,
	}
	if t.Mm.ExeFileID, err = d.linkFile(pid, "exe"); err != nil {
		return err
	}
	return nil
}

// linkFile resolves /proc/PID/<name> (exe, cwd, root) to a File.
func (d *dumper) linkFile(pid int, name string) (uint32, error) {
	link := fmt.Sprintf("/proc/%d/%s", pid, name)
	r, err := mapfiles.ResolveLink(link)
	if err != nil {
		return 0, taskErr(pid, "resolve "+name, err)
	}
	return d.files.add(r, link).ID, nil
}

// sysvAttachment records the SysV segment v attaches (its shmem inode
// number is the segment's id) in its shared object o. Restore attaches
// segments whole (shmat): an attachment the task unmapped in part is
// refused.
func (d *dumper) sysvAttachment(v *image.VMA, o *image.SharedObject, ino uint64) error {
	if v.Pgoff != 0 || v.Len() != (o.Size+image.PageSize-1)&^(image.PageSize-1) {
		return fmt.Errorf("vma %x-%x: part of the attachment of SysV segment %d (%d bytes): %w",
			v.Start, v.End, ino, o.Size, ErrUnsupported)
	}
	if o.SysV != nil {
		return nil
	}
	if d.sysvShm == nil {
		segs, err := d.fs.SysVShmSegments()
		if err != nil {
			return fmt.Errorf("vma %x-%x: SysV segment %d: %w", v.Start, v.End, ino, err)
		}
		d.sysvShm = make(map[int32]procfs.SysVShm, len(segs))
		for _, s := range segs {
			d.sysvShm[s.ID] = s
		}
	}
	s, ok := d.sysvShm[int32(ino)]
	if !ok || uint64(s.ID) != ino {
		return fmt.Errorf("vma %x-%x: SysV segment %d is not in /proc/sysvipc/shm (another IPC namespace?): %w",
			v.Start, v.End, ino, ErrUnsupported)
	}
	o.SysV = &image.SysVSegment{Key: s.Key, ID: s.ID, Mode: s.Mode, UID: s.UID, GID: s.GID, Size: s.Size}
	return nil
}

// seccompFilters reads the seccomp filters of thread tid of task pid,
// whose leader's status says seccomp mode leaderMode (1 strict, 2
// filter). Strict mode is refused: restore's own remote syscalls could
// not run under it. Only a thread in filter mode is asked: reading
// filters takes CAP_SYS_ADMIN, which a dump of tasks without any does not
// need.
func seccompFilters(pid, tid, leaderMode int) ([]image.SeccompFilter, error) {
	mode := leaderMode
	if tid != pid {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			return nil, err
		}
		st, err := procfs.ParseStatus(b, "status")
		if err != nil {
			return nil, err
		}
		mode = st.Seccomp
	}
	switch mode {
	case 0:
		return nil, nil
	case 1:
		return nil, fmt.Errorf("the task runs in seccomp strict mode: %w", ErrUnsupported)
	}
	fs, err := ptrace.SeccompFilters(tid)
	switch {
	case errors.Is(err, ptrace.ErrSeccompUnreadable):
		return nil, fmt.Errorf("%w: %w", err, ErrUnsupported)
	case errors.Is(err, unix.EACCES):
		return nil, fmt.Errorf("%w (reading seccomp filters takes CAP_SYS_ADMIN, and mmcr under no filter of its own)", err)
	case err != nil:
		return nil, err
	}
	out := make([]image.SeccompFilter, len(fs))
	for i, f := range fs {
		// Such a filter's listener is another process's fd (one in the
		// tree is refused with the fds): the filter would come back
		// without it, and its syscalls fail with ENOSYS instead of
		// going to the supervisor.
		if kernel.SeccompCanNotify(f.Prog) {
			return nil, fmt.Errorf("a seccomp filter answers USER_NOTIF to some syscall: "+
				"its supervisor's listener cannot be restored: %w", ErrUnsupported)
		}
		out[i] = image.SeccompFilter{Prog: f.Prog, Flags: f.Flags & ptrace.SeccompFilterFlagLog}
	}
	return out, nil
}
