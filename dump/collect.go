package dump

import (
	"fmt"
	"strconv"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
	"github.com/mmcr/mmcr/shmem"
	"golang.org/x/sys/unix"
)

// numRlimits is RLIMIT_CPU (0) ... RLIMIT_RTTIME (15).
const numRlimits = 16

// collectTask gathers everything about one frozen task but its pages.
// /proc and ptrace state come first; the remote syscalls, which map a
// scratch page into the task, come last and leave nothing behind.
func (d *dumper) collectTask(pid int) (*image.Task, error) {
	st, err := d.fs.Stat(pid)
	if err != nil {
		return nil, taskErr(pid, "read stat", err)
	}
	status, err := d.fs.Status(pid)
	if err != nil {
		return nil, taskErr(pid, "read status", err)
	}
	t := &image.Task{
		PID:  pid,
		PPID: st.PPID,
		PGID: st.PGID,
		SID:  st.SID,
		Comm: st.Comm,
	}
	if status.Seccomp != 0 {
		d.log.Warn("task has a seccomp filter; it is not dumped", "pid", pid, "mode", status.Seccomp)
	}

	maps, err := d.fs.Mappings(pid)
	if err != nil {
		return nil, taskErr(pid, "read vmas", err)
	}
	if t.VMAs, err = d.collectVMAs(pid, maps); err != nil {
		return nil, taskErr(pid, "read vmas", err)
	}

	for _, tid := range d.threads[pid] {
		th, err := collectThread(tid)
		if err == nil {
			th.Comm, err = d.fs.ThreadComm(pid, tid)
		}
		if err != nil {
			return nil, taskErr(pid, "read thread "+strconv.Itoa(tid), err)
		}
		t.Threads = append(t.Threads, th)
	}
	shared, err := ptrace.PeekSigInfo(pid, true)
	if err != nil {
		return nil, taskErr(pid, "read shared pending signals", err)
	}
	t.SharedPending = toSigInfo(shared)

	if err := d.collectMm(t, st, status); err != nil {
		return nil, err
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
		return nil, taskErr(pid, "read personality", err)
	}
	if t.Rlimits, err = readRlimits(pid); err != nil {
		return nil, taskErr(pid, "read rlimits", err)
	}
	if t.CwdFileID, err = d.linkFile(pid, "cwd"); err != nil {
		return nil, err
	}
	if t.RootFileID, err = d.linkFile(pid, "root"); err != nil {
		return nil, err
	}
	if t.FDs, err = d.collectFDs(pid); err != nil {
		return nil, taskErr(pid, "dump fds", err)
	}
	if err := d.collectRemote(t, status.Seccomp != 0); err != nil {
		return nil, err
	}
	d.log.Debug("task collected", "pid", pid, "comm", t.Comm, "threads", len(t.Threads),
		"vmas", len(t.VMAs), "fds", len(t.FDs))
	return t, nil
}

// collectVMAs classifies every mapping and resolves what backs it: a File
// for file mappings, a SharedObject for shared anon and memfd mappings.
func (d *dumper) collectVMAs(pid int, maps []procfs.Mapping) ([]*image.VMA, error) {
	vmas := make([]*image.VMA, 0, len(maps))
	for _, m := range maps {
		v, err := classify(m)
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
