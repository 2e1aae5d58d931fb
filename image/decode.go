package image

import (
	"bytes"
	"encoding/json"

	core_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/siginfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// decodeOne decodes a single-entry image file.
func (r *Reader) decodeOne(name, magicName string, m proto.Message) error {
	data, err := r.readMeta(name)
	if err != nil {
		return err
	}
	return decodeOneBytes(name, data, magicName, m)
}

func decodeOneBytes(name string, data []byte, magicName string, m proto.Message) error {
	d, err := newImgDecoder(name, data, magicName)
	if err != nil {
		return err
	}
	return d.one(m)
}

// decodeAll decodes every entry of an image, each into a fresh mk().
func decodeAll[T proto.Message](name string, data []byte, magicName string, mk func() T) ([]T, error) {
	d, err := newImgDecoder(name, data, magicName)
	if err != nil {
		return nil, err
	}
	var out []T
	for {
		m := mk()
		ok, err := d.next(m)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, m)
	}
}

// decodeExt parses mmcr-ext.json.
func decodeExt(data []byte) (*extImage, error) {
	var ext extImage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ext); err != nil {
		return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
	}
	if ext.Format != extFormat {
		return nil, fileErr(ExtName, ErrBadMagic, "format %q, want %q", ext.Format, extFormat)
	}
	if ext.Version != extVersion && ext.Version != extVersionCOW {
		return nil, fileErr(ExtName, ErrUnsupported, "version %d (this mmcr reads %d)", ext.Version, extVersion)
	}
	return &ext, nil
}

// readTree decodes every metadata image into a Tree.
func (r *Reader) readTree() (*Tree, error) {
	var inv inventory.InventoryEntry
	if err := r.decodeOne(inventoryName, "INVENTORY", &inv); err != nil {
		return nil, err
	}
	if v := inv.GetImgVersion(); v != criuImagesV1_1 {
		return nil, fileErr(inventoryName, ErrUnsupported, "image version %d (this mmcr reads %d)", v, criuImagesV1_1)
	}
	if inv.GetNsPerId() {
		return nil, fileErr(inventoryName, ErrUnsupported, "per-id namespace images are not supported")
	}
	extData, err := r.readMeta(ExtName)
	if err != nil {
		return nil, err
	}
	ext, err := decodeExt(extData)
	if err != nil {
		return nil, err
	}
	psData, err := r.readMeta(pstreeName)
	if err != nil {
		return nil, err
	}
	ps, err := decodeAll(pstreeName, psData, "PSTREE", func() *pstree.PstreeEntry { return &pstree.PstreeEntry{} })
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fileErr(pstreeName, ErrCorrupt, "no tasks")
	}
	if len(ps) != len(ext.Tasks) {
		return nil, fileErr(ExtName, ErrCorrupt, "%d tasks, pstree.img has %d", len(ext.Tasks), len(ps))
	}
	filesData, err := r.readMeta(filesName)
	if err != nil {
		return nil, err
	}
	fes, err := decodeAll(filesName, filesData, "FILES", func() *fdinfo.FileEntry { return &fdinfo.FileEntry{} })
	if err != nil {
		return nil, err
	}
	byID := map[uint32]*fdinfo.FileEntry{}
	for _, fe := range fes {
		if _, dup := byID[fe.GetId()]; dup {
			return nil, fileErr(filesName, ErrCorrupt, "file id %d twice", fe.GetId())
		}
		byID[fe.GetId()] = fe
	}

	t := &Tree{}
	for i, ef := range ext.Files {
		id := uint32(i + 1)
		fe := byID[id]
		if ef.ID != id || fe == nil {
			return nil, fileErr(filesName, ErrCorrupt, "file %d missing", id)
		}
		if fe.GetType() != fdinfo.FdTypes_REG || fe.GetReg() == nil {
			return nil, fileErr(filesName, ErrUnsupported, "file %d is of type %v", id, fe.GetType())
		}
		reg := fe.GetReg()
		t.Files = append(t.Files, &File{ID: id, Path: reg.GetName(), Dev: ef.Dev, Ino: ef.Ino, Mode: reg.GetMode(),
			Size: int64(reg.GetSize()), MtimeNsec: ef.MtimeNsec, UID: ef.UID, GID: ef.GID,
			Deleted: ef.Deleted, Renamed: ef.Renamed})
	}
	for i, es := range ext.SharedObjects {
		if es.ID != uint32(i+1) {
			return nil, fileErr(ExtName, ErrCorrupt, "shared object %d has id %d", i+1, es.ID)
		}
		t.SharedObjects = append(t.SharedObjects, &SharedObject{ID: es.ID, Dev: es.Dev, Ino: es.Ino,
			Size: es.Size, Memfd: es.Memfd, Name: es.Name})
	}

	seenTID := map[uint32]bool{}
	for i, pe := range ps {
		et := &ext.Tasks[i]
		task, err := r.readTask(t, pe, et, byID, seenTID)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if pe.GetPpid() != 0 {
				return nil, fileErr(pstreeName, ErrCorrupt, "root task %d has ppid %d, want 0", task.PID, pe.GetPpid())
			}
			task.PPID = ext.RootPPID
		}
		t.Tasks = append(t.Tasks, task)
		if err := checkCOW(t.Tasks, i); err != nil {
			return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
		}
	}
	return t, nil
}

func (r *Reader) readTask(t *Tree, pe *pstree.PstreeEntry, et *extTask, byID map[uint32]*fdinfo.FileEntry,
	seenTID map[uint32]bool) (*Task, error) {
	pid := int(pe.GetPid())
	task := &Task{PID: pid, PPID: int(pe.GetPpid()), PGID: int(pe.GetPgid()), SID: int(pe.GetSid())}
	if et.PID != pid {
		return nil, fileErr(ExtName, ErrCorrupt, "task %d where pstree.img has %d", et.PID, pid)
	}
	tids := pe.GetThreads()
	if len(tids) == 0 || tids[0] != pe.GetPid() {
		return nil, fileErr(pstreeName, ErrCorrupt, "task %d: first thread is not the leader", pid)
	}
	if len(tids) != len(et.Threads) {
		return nil, fileErr(ExtName, ErrCorrupt, "task %d: %d threads, pstree.img has %d", pid, len(et.Threads), len(tids))
	}
	for i, tid := range tids {
		if seenTID[tid] {
			return nil, fileErr(pstreeName, ErrCorrupt, "thread %d listed twice", tid)
		}
		seenTID[tid] = true
		if et.Threads[i].TID != int(tid) {
			return nil, fileErr(ExtName, ErrCorrupt, "task %d: thread %d where pstree.img has %d", pid, et.Threads[i].TID, tid)
		}
		name := coreName(int(tid))
		var ce criu_core.CoreEntry
		if err := r.decodeOne(name, "CORE", &ce); err != nil {
			return nil, err
		}
		th, err := threadFromCore(name, &ce, int(tid), et.Threads[i].Xsave)
		if err != nil {
			return nil, err
		}
		task.Threads = append(task.Threads, th)
		if i == 0 {
			if err := taskFromCore(name, &ce, task); err != nil {
				return nil, err
			}
		}
	}
	task.Creds.CapAmb, task.Creds.NoNewPrivs = et.CapAmb, et.NoNewPrivs
	for _, r := range et.ParentPages {
		task.ParentPages = append(task.ParentPages, Range{r[0], r[1]})
	}

	var me mm.MmEntry
	if err := r.decodeOne(mmName(pid), "MM", &me); err != nil {
		return nil, err
	}
	if err := mmFromEntry(t, mmName(pid), &me, et, task, byID); err != nil {
		return nil, err
	}

	var fse fsimg.FsEntry
	if err := r.decodeOne(fsName(pid), "FS", &fse); err != nil {
		return nil, err
	}
	task.CwdFileID, task.RootFileID, task.Umask = fse.GetCwdId(), fse.GetRootId(), fse.GetUmask()
	for _, id := range []uint32{task.CwdFileID, task.RootFileID} {
		if id != 0 && t.FileByID(id) == nil {
			return nil, fileErr(fsName(pid), ErrCorrupt, "refers to unknown file %d", id)
		}
	}

	name := fdinfoName(pid)
	data, err := r.readMeta(name)
	if err != nil {
		return nil, err
	}
	fdis, err := decodeAll(name, data, "FDINFO", func() *fdinfo.FdinfoEntry { return &fdinfo.FdinfoEntry{} })
	if err != nil {
		return nil, err
	}
	if len(fdis) != len(et.FDs) {
		return nil, fileErr(ExtName, ErrCorrupt, "task %d: %d fds, %s has %d", pid, len(et.FDs), name, len(fdis))
	}
	for i, fdi := range fdis {
		efd := &et.FDs[i]
		fd, err := fdFromEntry(t, name, fdi, efd, byID)
		if err != nil {
			return nil, err
		}
		task.FDs = append(task.FDs, fd)
	}
	for _, fd := range task.FDs {
		if err := checkFDKind(task, fd); err != nil {
			return nil, fileErr(name, ErrCorrupt, "%v", err)
		}
	}
	return task, nil
}

func fdFromEntry(t *Tree, name string, fdi *fdinfo.FdinfoEntry, efd *extFD, byID map[uint32]*fdinfo.FileEntry) (*FD, error) {
	if int(fdi.GetFd()) != efd.Num || efd.Num < 0 {
		return nil, fileErr(ExtName, ErrCorrupt, "fd %d where %s has %d", efd.Num, name, fdi.GetFd())
	}
	kind, ok := fdKindByName(efd.Kind)
	if !ok {
		return nil, fileErr(ExtName, ErrUnsupported, "fd %d of kind %q", efd.Num, efd.Kind)
	}
	fd := &FD{Num: efd.Num, Kind: kind, FileID: efd.FileID, ExternalType: efd.ExternalType}
	fe := byID[fdi.GetId()]
	if fe == nil || fe.GetType() != fdi.GetType() {
		return nil, fileErr(name, ErrCorrupt, "fd %d refers to missing file %d", efd.Num, fdi.GetId())
	}
	switch fdi.GetType() {
	case fdinfo.FdTypes_REG:
		if kind > FDCharDev || fe.GetReg() == nil {
			return nil, fileErr(name, ErrCorrupt, "fd %d: regular file entry for a %s fd", efd.Num, efd.Kind)
		}
		if t.FileByID(fd.FileID) == nil {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d refers to unknown file %d", efd.Num, fd.FileID)
		}
		fd.Flags = int(fe.GetReg().GetFlags())
		fd.Pos = int64(fe.GetReg().GetPos())
		if efd.Flags != 0 || efd.Pos != 0 {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d: flags/pos given twice", efd.Num)
		}
	case fdinfo.FdTypes_EVENTFD:
		e := fe.GetEfd()
		if kind != FDEventfd || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: eventfd file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.GetFlags())
		fd.Eventfd = &Eventfd{Count: e.GetCounter(), Semaphore: efd.EventfdSemaphore}
	case fdinfo.FdTypes_EVENTPOLL:
		e := fe.GetEpfd()
		if kind != FDEpoll || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: eventpoll file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.GetFlags())
		for _, tg := range e.GetTfd() {
			fd.Epoll = append(fd.Epoll, EpollTarget{FD: int(tg.GetTfd()), Events: tg.GetEvents(), Data: tg.GetData()})
		}
	case fdinfo.FdTypes_EXT:
		if kind != FDExternal {
			return nil, fileErr(name, ErrCorrupt, "fd %d: external file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags, fd.Pos = efd.Flags, efd.Pos
		if fd.FileID != 0 && t.FileByID(fd.FileID) == nil {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d refers to unknown file %d", efd.Num, fd.FileID)
		}
	default:
		return nil, fileErr(name, ErrUnsupported, "fd %d of type %v", efd.Num, fdi.GetType())
	}
	if efd.EventfdSemaphore && kind != FDEventfd {
		return nil, fileErr(ExtName, ErrCorrupt, "fd %d: eventfd_semaphore on a %s fd", efd.Num, efd.Kind)
	}
	if fdi.GetFlags()&fdCloexec != 0 {
		fd.Flags |= oCloexec
	}
	return fd, nil
}

func sigsFromQueue(name string, q *siginfo.SignalQueueEntry) ([]SigInfo, error) {
	var out []SigInfo
	for _, s := range q.GetSignals() {
		if len(s.GetSiginfo()) != len(SigInfo{}) {
			return nil, fileErr(name, ErrCorrupt, "siginfo of %d bytes", len(s.GetSiginfo()))
		}
		out = append(out, SigInfo(s.GetSiginfo()))
	}
	return out, nil
}

func threadFromCore(name string, ce *criu_core.CoreEntry, tid int, xsave []byte) (*Thread, error) {
	if ce.GetMtype() != criu_core.CoreEntry_X86_64 {
		return nil, fileErr(name, ErrUnsupported, "architecture %v (this mmcr reads x86_64)", ce.GetMtype())
	}
	ti, tc := ce.GetThreadInfo(), ce.GetThreadCore()
	if ti == nil || ti.GetGpregs() == nil || tc == nil {
		return nil, fileErr(name, ErrCorrupt, "no registers or thread core")
	}
	g := ti.GetGpregs()
	if g.GetMode() != core_x86.UserX86RegsMode_NATIVE {
		return nil, fileErr(name, ErrUnsupported, "32-bit (compat) task")
	}
	th := &Thread{TID: tid, Xsave: xsave, SigMask: tc.GetBlkSigset(), Comm: tc.GetComm(),
		ClearTID: ti.GetClearTidAddr(), RobustList: tc.GetFutexRla(), RobustListLen: tc.GetFutexRlaLen(),
		PdeathSig: tc.GetPdeathSig()}
	if th.PdeathSig > 64 {
		return nil, fileErr(name, ErrCorrupt, "parent-death signal %d", th.PdeathSig)
	}
	// CRIU writes the three together; an image without them predates
	// mmcr keeping them, and the thread's state stays unknown (nil).
	if tc.SchedPolicy != nil {
		th.Sched = &Sched{Policy: tc.GetSchedPolicy(), Prio: tc.GetSchedPrio(), Nice: tc.GetSchedNice()}
		if err := th.Sched.check(); err != nil {
			return nil, fileErr(name, ErrCorrupt, "%v", err)
		}
	} else if tc.SchedPrio != nil || tc.SchedNice != nil {
		return nil, fileErr(name, ErrCorrupt, "real-time priority or nice without a scheduling policy")
	}
	if len(xsave) == 0 {
		th.Xsave = nil
	}
	th.Regs = unix.PtraceRegs{
		R15: g.GetR15(), R14: g.GetR14(), R13: g.GetR13(), R12: g.GetR12(), Rbp: g.GetBp(), Rbx: g.GetBx(),
		R11: g.GetR11(), R10: g.GetR10(), R9: g.GetR9(), R8: g.GetR8(), Rax: g.GetAx(), Rcx: g.GetCx(),
		Rdx: g.GetDx(), Rsi: g.GetSi(), Rdi: g.GetDi(), Orig_rax: g.GetOrigAx(), Rip: g.GetIp(), Cs: g.GetCs(),
		Eflags: g.GetFlags(), Rsp: g.GetSp(), Ss: g.GetSs(), Fs_base: g.GetFsBase(), Gs_base: g.GetGsBase(),
		Ds: g.GetDs(), Es: g.GetEs(), Fs: g.GetFs(), Gs: g.GetGs(),
	}
	if sas := tc.GetSas(); sas != nil {
		th.AltStack = SigAltStack{SP: sas.GetSsSp(), Flags: int32(sas.GetSsFlags()), Size: sas.GetSsSize()}
	}
	var err error
	if th.Pending, err = sigsFromQueue(name, tc.GetSignalsP()); err != nil {
		return nil, err
	}
	if rs := tc.GetRseqEntry(); rs != nil {
		th.Rseq = Rseq{Addr: rs.GetRseqAbiPointer(), Len: rs.GetRseqAbiSize(), Sig: rs.GetSignature()}
	}
	return th, nil
}

func capFromWords(name string, w []uint32) (uint64, error) {
	switch len(w) {
	case 0:
		return 0, nil
	case 1:
		return uint64(w[0]), nil
	case 2:
		return uint64(w[0]) | uint64(w[1])<<32, nil
	}
	return 0, fileErr(name, ErrCorrupt, "capability set of %d words", len(w))
}

func credsFrom(name string, c *creds.CredsEntry, out *Creds) error {
	*out = Creds{UID: c.GetUid(), EUID: c.GetEuid(), SUID: c.GetSuid(), FSUID: c.GetFsuid(),
		GID: c.GetGid(), EGID: c.GetEgid(), SGID: c.GetSgid(), FSGID: c.GetFsgid(), Groups: c.GetGroups(),
		Securebits: c.GetSecbits()}
	var err error
	for _, p := range []struct {
		dst *uint64
		w   []uint32
	}{{&out.CapInh, c.GetCapInh()}, {&out.CapPrm, c.GetCapPrm()}, {&out.CapEff, c.GetCapEff()}, {&out.CapBnd, c.GetCapBnd()}} {
		if *p.dst, err = capFromWords(name, p.w); err != nil {
			return err
		}
	}
	return nil
}

func itimerFrom(e *timer.ItimerEntry) Itimer {
	return Itimer{IntervalUsec: int64(e.GetIsec()*1e6 + e.GetIusec()), ValueUsec: int64(e.GetVsec()*1e6 + e.GetVusec())}
}

// taskFromCore fills the task-wide fields from the leader's core.
func taskFromCore(name string, ce *criu_core.CoreEntry, task *Task) error {
	tc := ce.GetTc()
	if tc == nil {
		return fileErr(name, ErrCorrupt, "leader core without task core")
	}
	if st := tc.GetTaskState(); st != taskAlive {
		return fileErr(name, ErrUnsupported, "task state %d (only live tasks are supported)", st)
	}
	task.Comm, task.Personality = tc.GetComm(), tc.GetPersonality()
	task.ChildSubreaper = tc.GetChildSubreaper()
	if tc.OomScoreAdj != nil {
		v := int(tc.GetOomScoreAdj())
		if err := checkOomScoreAdj(v); err != nil {
			return fileErr(name, ErrCorrupt, "%v", err)
		}
		task.OomScoreAdj = &v
	}
	if c := ce.GetThreadCore().GetCreds(); c != nil {
		if err := credsFrom(name, c, &task.Creds); err != nil {
			return err
		}
	}
	for _, rl := range tc.GetRlimits().GetRlimits() {
		task.Rlimits = append(task.Rlimits, unix.Rlimit{Cur: rl.GetCur(), Max: rl.GetMax()})
	}
	if len(tc.GetSigactions()) > 64 {
		return fileErr(name, ErrCorrupt, "%d sigactions", len(tc.GetSigactions()))
	}
	for _, sa := range tc.GetSigactions() {
		task.SigActions = append(task.SigActions, SigAction{Handler: sa.GetSigaction(), Flags: sa.GetFlags(),
			Restorer: sa.GetRestorer(), Mask: sa.GetMask()})
	}
	if tm := tc.GetTimers(); tm != nil {
		task.Itimers = [3]Itimer{itimerFrom(tm.GetReal()), itimerFrom(tm.GetVirt()), itimerFrom(tm.GetProf())}
		if len(tm.GetPosix()) > 0 {
			return fileErr(name, ErrUnsupported, "POSIX timers are not supported")
		}
	}
	var err error
	task.SharedPending, err = sigsFromQueue(name, tc.GetSignalsS())
	return err
}

func mmFromEntry(t *Tree, name string, me *mm.MmEntry, et *extTask, task *Task, byID map[uint32]*fdinfo.FileEntry) error {
	task.Mm = Mm{StartCode: me.GetMmStartCode(), EndCode: me.GetMmEndCode(),
		StartData: me.GetMmStartData(), EndData: me.GetMmEndData(),
		StartBrk: me.GetMmStartBrk(), Brk: me.GetMmBrk(), StartStack: me.GetMmStartStack(),
		ArgStart: me.GetMmArgStart(), ArgEnd: me.GetMmArgEnd(), EnvStart: me.GetMmEnvStart(), EnvEnd: me.GetMmEnvEnd(),
		Auxv: me.GetMmSavedAuxv(), ExeFileID: me.GetExeFileId(), Dumpable: me.GetDumpable(),
		THPDisabled: me.GetThpDisabled(), MDWE: et.MDWE}
	if len(me.GetAios()) > 0 {
		return fileErr(name, ErrUnsupported, "AIO rings are not supported")
	}
	if id := task.Mm.ExeFileID; id != 0 && t.FileByID(id) == nil {
		return fileErr(name, ErrCorrupt, "exe refers to unknown file %d", id)
	}
	vmas := me.GetVmas()
	if len(vmas) != len(et.VMAs) {
		return fileErr(ExtName, ErrCorrupt, "task %d: %d VMAs, %s has %d", task.PID, len(et.VMAs), name, len(vmas))
	}
	var prevEnd uint64
	for i, ve := range vmas {
		ev := &et.VMAs[i]
		kind, err := kindOf(ve.GetStatus())
		if err != nil {
			return fileErr(name, ErrUnsupported, "VMA %#x-%#x: %v", ve.GetStart(), ve.GetEnd(), err)
		}
		if ev.VvarVclock {
			if kind != KindVVAR {
				return fileErr(ExtName, ErrCorrupt, "vvar_vclock mark on a %s VMA", kind)
			}
			kind = KindVVARVclock
		}
		v := &VMA{Start: ve.GetStart(), End: ve.GetEnd(), Pgoff: ve.GetPgoff(), Prot: ve.GetProt(),
			Flags: ve.GetFlags(), Kind: kind, Madv: ve.GetMadv(), VmFlags: ev.VmFlags,
			FileID: ev.FileID, ShmID: ev.ShmID, Name: ev.Name, FromParent: ev.FromParent}
		if (v.FileID != 0 && t.FileByID(v.FileID) == nil) || (v.ShmID != 0 && t.SharedObjectByID(v.ShmID) == nil) {
			return fileErr(ExtName, ErrCorrupt, "VMA %#x-%#x refers to unknown file %d or object %d", v.Start, v.End, v.FileID, v.ShmID)
		}
		if len(v.VmFlags) == 0 {
			v.VmFlags = nil // empty slices come back nil
		}
		if v.Start%PageSize != 0 || v.End%PageSize != 0 || v.Start >= v.End || v.Start < prevEnd {
			return fileErr(name, ErrCorrupt, "bad VMA %#x-%#x", v.Start, v.End)
		}
		prevEnd = v.End
		shmid := ve.GetShmid()
		if shmid > 1<<32-1 {
			return fileErr(name, ErrCorrupt, "VMA %#x-%#x: shmid %d", v.Start, v.End, shmid)
		}
		switch kind {
		case KindPrivateFile, KindSharedFile:
			v.FileID = uint32(shmid)
			if t.FileByID(v.FileID) == nil {
				return fileErr(name, ErrCorrupt, "VMA %#x-%#x refers to unknown file %d", v.Start, v.End, shmid)
			}
		case KindMemfd:
			fe := byID[uint32(shmid)]
			if fe == nil || fe.GetType() != fdinfo.FdTypes_MEMFD || fe.GetMemfd() == nil {
				return fileErr(name, ErrCorrupt, "memfd VMA %#x-%#x refers to file %d, not a memfd", v.Start, v.End, shmid)
			}
			v.ShmID = fe.GetMemfd().GetInodeId()
			if so := t.SharedObjectByID(v.ShmID); so == nil || !so.Memfd {
				return fileErr(name, ErrCorrupt, "memfd VMA %#x-%#x refers to unknown memfd %d", v.Start, v.End, v.ShmID)
			}
		case KindSharedAnon:
			v.ShmID = uint32(shmid)
			if t.SharedObjectByID(v.ShmID) == nil {
				return fileErr(name, ErrCorrupt, "VMA %#x-%#x refers to unknown shared object %d", v.Start, v.End, shmid)
			}
		}
		task.VMAs = append(task.VMAs, v)
	}
	return nil
}
