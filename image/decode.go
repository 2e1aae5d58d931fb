package image

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// decodeOne decodes a single-entry image file with decode.
func (r *Reader) decodeOne(name, magicName string, decode func(b []byte) error) error {
	data, err := r.readMeta(name)
	if err != nil {
		return err
	}
	return decodeOneBytes(name, data, magicName, decode)
}

func decodeOneBytes(name string, data []byte, magicName string, decode func(b []byte) error) error {
	d, err := newImgDecoder(name, data, magicName)
	if err != nil {
		return err
	}
	return d.one(decode)
}

// message is what decodeAll decodes an image's entries into.
type message[T any] interface {
	*T
	decode(b []byte) error
}

// decodeAll decodes every entry of an image, each into a fresh T.
func decodeAll[T any, PT message[T]](name string, data []byte, magicName string) ([]*T, error) {
	d, err := newImgDecoder(name, data, magicName)
	if err != nil {
		return nil, err
	}
	var out []*T
	for {
		m := new(T)
		ok, err := d.next(PT(m).decode)
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
	if ext.Version < extVersion || ext.Version > extVersion9 {
		return nil, fileErr(ExtName, ErrUnsupported, "version %d (this mmcr reads %d to %d)", ext.Version, extVersion, extVersion9)
	}
	return &ext, nil
}

// readTree decodes every metadata image into a Tree.
func (r *Reader) readTree() (*Tree, error) {
	var inv inventoryMsg
	if err := r.decodeOne(inventoryName, "INVENTORY", inv.decode); err != nil {
		return nil, err
	}
	if v := inv.imgVersion; v != criuImagesV1_1 {
		return nil, fileErr(inventoryName, ErrUnsupported, "image version %d (this mmcr reads %d)", v, criuImagesV1_1)
	}
	if inv.nsPerID {
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
	ps, err := decodeAll[pstreeMsg](pstreeName, psData, "PSTREE")
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
	fes, err := decodeAll[fileMsg](filesName, filesData, "FILES")
	if err != nil {
		return nil, err
	}
	byID := map[uint32]*fileMsg{}
	for _, fe := range fes {
		if _, dup := byID[fe.id]; dup {
			return nil, fileErr(filesName, ErrCorrupt, "file id %d twice", fe.id)
		}
		byID[fe.id] = fe
	}

	t := &Tree{}
	for i, ef := range ext.Files {
		id := uint32(i + 1)
		fe := byID[id]
		if ef.ID != id || fe == nil {
			return nil, fileErr(filesName, ErrCorrupt, "file %d missing", id)
		}
		if fe.typ != fdTypeReg || fe.reg == nil {
			return nil, fileErr(filesName, ErrUnsupported, "file %d is of type %s", id, fdTypeName(fe.typ))
		}
		reg := fe.reg
		t.Files = append(t.Files, &File{ID: id, Path: reg.name, Dev: ef.Dev, Ino: ef.Ino, Mode: reg.mode,
			Size: int64(reg.size), MtimeNsec: ef.MtimeNsec, UID: ef.UID, GID: ef.GID,
			Deleted: ef.Deleted, Renamed: ef.Renamed})
	}
	for i, es := range ext.SharedObjects {
		if es.ID != uint32(i+1) {
			return nil, fileErr(ExtName, ErrCorrupt, "shared object %d has id %d", i+1, es.ID)
		}
		so := &SharedObject{ID: es.ID, Dev: es.Dev, Ino: es.Ino,
			Size: es.Size, Memfd: es.Memfd, Name: es.Name, HugePageSize: es.HugePageSize,
			Seals: es.Seals, Mode: es.Mode, UID: es.UID, GID: es.GID, Length: es.Length}
		if err := checkMemfdInode(so); err != nil {
			return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
		}
		if s := es.SysV; s != nil {
			so.SysV = &SysVSegment{Key: s.Key, ID: s.ID, Mode: s.Mode, UID: s.UID, GID: s.GID, Size: s.Size}
		}
		if err := checkSharedHugetlb(so); err != nil {
			return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
		}
		if err := checkSysV(so); err != nil {
			return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
		}
		t.SharedObjects = append(t.SharedObjects, so)
	}

	var seccomp []seccompFilterMsg
	if r.has(seccompName) {
		if seccomp, err = r.readSeccomp(); err != nil {
			return nil, err
		}
	}
	seenTID := map[uint32]bool{}
	for i, pe := range ps {
		et := &ext.Tasks[i]
		task, err := r.readTask(t, pe, et, byID, seenTID, seccomp)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if pe.ppid != 0 {
				return nil, fileErr(pstreeName, ErrCorrupt, "root task %d has ppid %d, want 0", task.PID, pe.ppid)
			}
			task.PPID = ext.RootPPID
		}
		t.Tasks = append(t.Tasks, task)
		if err := checkCOW(t.Tasks, i); err != nil {
			return nil, fileErr(ExtName, ErrCorrupt, "%v", err)
		}
	}
	if err := checkZombies(t); err != nil {
		return nil, fileErr(pstreeName, ErrCorrupt, "%v", err)
	}
	if r.has(fileLocksName) {
		if err := r.readFileLocks(t); err != nil {
			return nil, err
		}
		for _, task := range t.Tasks {
			if err := checkLocks(task); err != nil {
				return nil, fileErr(fileLocksName, ErrCorrupt, "task %d: %v", task.PID, err)
			}
		}
	}
	if err := r.resolveOpens(t, byID); err != nil {
		return nil, err
	}
	return t, nil
}

// resolveOpens reads the pipes and sockets (readSockets), turns the pipe
// inode fdFromEntry left in each pipe fd into its PipeID (pipes numbered
// in order of first use, a FIFO's file from its entry), and the file
// entry id it left in the OpenID of each fd that may share a description
// into the OpenID (fds naming one file entry share its description).
func (r *Reader) resolveOpens(t *Tree, byID map[uint32]*fileMsg) error {
	if err := r.readPipes(t); err != nil {
		return err
	}
	byIno := make(map[uint32]*Pipe, len(t.Pipes))
	for _, p := range t.Pipes {
		if byIno[p.Ino] != nil {
			return fileErr(pipesDataName, ErrCorrupt, "pipe:[%d] twice", p.Ino)
		}
		byIno[p.Ino] = p
	}
	var used []*Pipe
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDPipe {
				continue
			}
			p := byIno[fd.PipeID]
			if p == nil {
				return fileErr(pipesDataName, ErrCorrupt, "no data entry for pipe:[%d] of task %d fd %d", fd.PipeID, task.PID, fd.Num)
			}
			if p.ID = 0; !slices.Contains(used, p) {
				used = append(used, p)
			}
			if fifo := byID[fd.OpenID].fifo; fifo != nil { // fdFromEntry left the file entry id there
				if p.FileID != 0 && p.FileID != fifo.regfID || fifo.regfID == 0 {
					return fileErr(filesName, ErrCorrupt, "FIFO pipe:[%d] of files %d and %d", p.Ino, p.FileID, fifo.regfID)
				}
				p.FileID = fifo.regfID
			}
		}
	}
	if len(used) != len(t.Pipes) {
		return fileErr(pipesDataName, ErrCorrupt, "%d pipes, %d held by fds", len(t.Pipes), len(used))
	}
	t.Pipes = used
	for i, p := range t.Pipes {
		p.ID = uint32(i + 1)
	}
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind == FDPipe {
				fd.PipeID = byIno[fd.PipeID].ID
			}
		}
	}
	if err := r.readSockets(t, byID); err != nil {
		return err
	}
	if err := readInetSockets(t, byID); err != nil {
		return err
	}
	NumberOpens(t)
	if err := checkPipes(t); err != nil {
		return fileErr(pipesDataName, ErrCorrupt, "%v", err)
	}
	if err := checkSockets(t); err != nil {
		return fileErr(filesName, ErrCorrupt, "%v", err)
	}
	if err := checkInetSockets(t); err != nil {
		return fileErr(filesName, ErrCorrupt, "%v", err)
	}
	if err := checkOpens(t); err != nil {
		return fileErr(filesName, ErrCorrupt, "%v", err)
	}
	if err := checkOwners(t); err != nil {
		return fileErr(ExtName, ErrCorrupt, "%v", err)
	}
	if err := checkPidfds(t); err != nil {
		return fileErr(ExtName, ErrCorrupt, "%v", err)
	}
	if err := checkEpolls(t); err != nil {
		return fileErr(filesName, ErrCorrupt, "%v", err)
	}
	return nil
}

func (r *Reader) readTask(t *Tree, pe *pstreeMsg, et *extTask, byID map[uint32]*fileMsg,
	seenTID map[uint32]bool, seccomp []seccompFilterMsg) (*Task, error) {
	pid := int(pe.pid)
	task := &Task{PID: pid, PPID: int(pe.ppid), PGID: int(pe.pgid), SID: int(pe.sid)}
	if et.PID != pid {
		return nil, fileErr(ExtName, ErrCorrupt, "task %d where pstree.img has %d", et.PID, pid)
	}
	tids := pe.threads
	if len(tids) == 0 || tids[0] != pe.pid {
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
		var ce coreMsg
		if err := r.decodeOne(name, "CORE", ce.decode); err != nil {
			return nil, err
		}
		if i == 0 && ce.tc != nil && ce.tc.taskState == taskDead {
			return zombieFromCore(name, &ce, task, len(tids))
		}
		th, err := threadFromCore(name, &ce, int(tid), et.Threads[i].Xsave)
		if err != nil {
			return nil, err
		}
		switch ce.thc.seccompMode {
		case 0:
		case seccompModeFilter:
			if seccomp == nil {
				return nil, fileErr(name, ErrCorrupt, "thread %d has seccomp filters, and %s is missing", tid, seccompName)
			}
			if th.Seccomp, err = seccompChain(seccomp, ce.thc.seccompFilter); err != nil {
				return nil, fileErr(seccompName, ErrCorrupt, "thread %d: %v", tid, err)
			}
		default:
			return nil, fileErr(name, ErrUnsupported, "thread %d in seccomp mode %d (strict)", tid, ce.thc.seccompMode)
		}
		th.TimerSlackNs = et.Threads[i].TimerSlackNs
		if v := et.Threads[i].IOPrio; v>>13 > 3 || v != 0 && v>>13 == 0 {
			return nil, fileErr(ExtName, ErrCorrupt, "thread %d: I/O priority %#x", tid, v)
		}
		th.IOPrio = et.Threads[i].IOPrio
		if cpus := et.Threads[i].CPUs; len(cpus) > 0 {
			if len(cpus) > 16 || slices.Max(cpus) == 0 && slices.Min(cpus) == 0 {
				return nil, fileErr(ExtName, ErrCorrupt, "thread %d: CPU mask of %d words, or of no CPU", tid, len(cpus))
			}
			th.CPUAffinity = cpus
		}
		if p := et.Threads[i].MemPolicy; p != nil {
			th.MemPolicy = &MemPolicy{Mode: p.Mode, Nodes: p.Nodes}
			if err := checkMemPolicy(th.MemPolicy); err != nil {
				return nil, fileErr(ExtName, ErrCorrupt, "thread %d: %v", tid, err)
			}
		}
		task.Threads = append(task.Threads, th)
		if i == 0 {
			if err := taskFromCore(name, &ce, task); err != nil {
				return nil, err
			}
		}
	}
	if err := checkPosixTimers(task); err != nil {
		return nil, fileErr(coreName(pid), ErrCorrupt, "%v", err)
	}
	task.Creds.CapAmb, task.Creds.NoNewPrivs = et.CapAmb, et.NoNewPrivs
	task.CoredumpFilter = et.CoredumpFilter
	for _, r := range et.ParentPages {
		task.ParentPages = append(task.ParentPages, Range{r[0], r[1]})
	}
	for _, r := range et.Guards {
		task.Guards = append(task.Guards, Range{r[0], r[1]})
	}

	var me mmMsg
	if err := r.decodeOne(mmName(pid), "MM", me.decode); err != nil {
		return nil, err
	}
	if err := mmFromEntry(t, mmName(pid), &me, et, task, byID); err != nil {
		return nil, err
	}

	var fse fsMsg
	if err := r.decodeOne(fsName(pid), "FS", fse.decode); err != nil {
		return nil, err
	}
	task.CwdFileID, task.RootFileID, task.Umask = fse.cwdID, fse.rootID, fse.umask
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
	fdis, err := decodeAll[fdinfoMsg](name, data, "FDINFO")
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

func fdFromEntry(t *Tree, name string, fdi *fdinfoMsg, efd *extFD, byID map[uint32]*fileMsg) (*FD, error) {
	if int(fdi.fd) != efd.Num || efd.Num < 0 {
		return nil, fileErr(ExtName, ErrCorrupt, "fd %d where %s has %d", efd.Num, name, fdi.fd)
	}
	kind, ok := fdKindByName(efd.Kind)
	if !ok {
		return nil, fileErr(ExtName, ErrUnsupported, "fd %d of kind %q", efd.Num, efd.Kind)
	}
	fd := &FD{Num: efd.Num, Kind: kind, FileID: efd.FileID, ExternalType: efd.ExternalType}
	fe := byID[fdi.id]
	if fe == nil || fe.typ != fdi.typ {
		return nil, fileErr(name, ErrCorrupt, "fd %d refers to missing file %d", efd.Num, fdi.id)
	}
	switch fdi.typ {
	case fdTypeReg:
		if kind > FDCharDev || fe.reg == nil {
			return nil, fileErr(name, ErrCorrupt, "fd %d: regular file entry for a %s fd", efd.Num, efd.Kind)
		}
		if t.FileByID(fd.FileID) == nil {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d refers to unknown file %d", efd.Num, fd.FileID)
		}
		fd.Flags = int(fe.reg.flags)
		fd.Pos = int64(fe.reg.pos)
		fd.OpenID = fdi.id // for resolveOpens
		if efd.Flags != 0 || efd.Pos != 0 {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d: flags/pos given twice", efd.Num)
		}
	case fdTypeEventfd:
		e := fe.efd
		if kind != FDEventfd || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: eventfd file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.flags)
		fd.Eventfd = &Eventfd{Count: e.value, Semaphore: efd.EventfdSemaphore}
		fd.OpenID = fdi.id // for resolveOpens
	case fdTypeSignalfd:
		e := fe.sgfd
		if kind != FDSignalfd || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: signalfd file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.flags)
		fd.Signalfd = &Signalfd{Mask: e.value}
		fd.OpenID = fdi.id // for resolveOpens
	case fdTypeTimerfd:
		e := fe.tfd
		if kind != FDTimerfd || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: timerfd file entry for a %s fd", efd.Num, efd.Kind)
		}
		const maxSec = 1 << 33 // centuries: past it a value in nanoseconds overflows
		if e.vsec > maxSec || e.isec > maxSec || e.vnsec >= 1e9 || e.insec >= 1e9 || e.clock > 1<<31-1 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: timerfd times %d.%09d and %d.%09d s", efd.Num, e.vsec, e.vnsec, e.isec, e.insec)
		}
		fd.Flags = int(e.flags)
		fd.Timerfd = &Timerfd{Clock: int32(e.clock), Ticks: e.ticks, SettimeFlags: e.settime,
			ValueNsec: int64(e.vsec*1e9 + e.vnsec), IntervalNsec: int64(e.isec*1e9 + e.insec)}
		fd.OpenID = fdi.id // for resolveOpens
	case fdTypeInotify:
		e := fe.ify
		if kind != FDInotify || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: inotify file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.flags)
		fd.Inotify = e.wds
		fd.OpenID = fdi.id // for resolveOpens
	case fdTypeEventpoll:
		e := fe.epfd
		if kind != FDEpoll || e == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: eventpoll file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags = int(e.flags)
		fd.Epoll = e.tfds
		fd.OpenID = fdi.id // for resolveOpens
	case fdTypeFifo:
		if kind != FDPipe || fe.fifo == nil || fd.FileID != 0 || efd.Pos != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: FIFO file entry for a %s fd", efd.Num, efd.Kind)
		}
		// fifo_entry has no flags: the ext file has them. The inode and
		// the file entry id, for resolveOpens.
		fd.Flags = efd.Flags
		fd.PipeID, fd.OpenID = fe.fifo.pipeID, fdi.id
	case fdTypePipe:
		if kind != FDPipe || fe.pipe == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: pipe file entry for a %s fd", efd.Num, efd.Kind)
		}
		// The inode and the file entry id, for resolveOpens to turn into
		// PipeID and OpenID once every task is read.
		fd.Flags = int(fe.pipe.flags)
		fd.PipeID, fd.OpenID = fe.pipe.pipeID, fdi.id
	case fdTypeInetSk:
		if kind != FDInet || fe.isk == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: inet socket file entry for a %s fd", efd.Num, efd.Kind)
		}
		// The inode and the file entry id, for readInetSockets.
		fd.Flags = int(fe.isk.flags)
		fd.InetID, fd.OpenID = fe.isk.ino, fdi.id
	case fdTypeUnixSk:
		if kind != FDSocket || fe.usk == nil || fd.FileID != 0 {
			return nil, fileErr(name, ErrCorrupt, "fd %d: unix socket file entry for a %s fd", efd.Num, efd.Kind)
		}
		// The inode and the file entry id, for readSockets.
		fd.Flags = int(fe.usk.flags)
		fd.SocketID, fd.OpenID = fe.usk.ino, fdi.id
	case fdTypeExt:
		if kind != FDExternal && kind != FDPidfd {
			return nil, fileErr(name, ErrCorrupt, "fd %d: external file entry for a %s fd", efd.Num, efd.Kind)
		}
		fd.Flags, fd.Pos = efd.Flags, efd.Pos
		if kind == FDPidfd {
			fd.PidfdPID = efd.PidfdPID
			fd.OpenID = fdi.id // for resolveOpens
		}
		if fd.FileID != 0 && t.FileByID(fd.FileID) == nil {
			return nil, fileErr(ExtName, ErrCorrupt, "fd %d refers to unknown file %d", efd.Num, fd.FileID)
		}
	default:
		return nil, fileErr(name, ErrUnsupported, "fd %d of type %s", efd.Num, fdTypeName(fdi.typ))
	}
	if o := efd.Owner; o != nil {
		fd.Owner = &FDOwner{Type: o.Type, PID: o.PID, Signal: o.Signal, UID: o.UID, EUID: o.EUID}
	}
	if efd.EventfdSemaphore && kind != FDEventfd {
		return nil, fileErr(ExtName, ErrCorrupt, "fd %d: eventfd_semaphore on a %s fd", efd.Num, efd.Kind)
	}
	if fdi.flags&fdCloexec != 0 {
		fd.Flags |= oCloexec
	}
	return fd, nil
}

func threadFromCore(name string, ce *coreMsg, tid int, xsave []byte) (*Thread, error) {
	if ce.mtype != marchX86_64 {
		return nil, fileErr(name, ErrUnsupported, "architecture %s (this mmcr reads x86_64)", marchName(ce.mtype))
	}
	ti, tc := ce.ti, ce.thc
	if ti == nil || tc == nil {
		return nil, fileErr(name, ErrCorrupt, "no registers or thread core")
	}
	if ti.mode != regsModeNative {
		return nil, fileErr(name, ErrUnsupported, "32-bit (compat) task")
	}
	th := &Thread{TID: tid, Xsave: xsave, SigMask: tc.blkSigset, Comm: tc.comm,
		ClearTID: ti.clearTIDAddr, RobustList: tc.futexRla, RobustListLen: tc.futexRlaLen,
		PdeathSig: tc.pdeathSig, Regs: ti.regs, AltStack: tc.sas, Pending: tc.pending, Rseq: tc.rseq}
	if th.PdeathSig > 64 {
		return nil, fileErr(name, ErrCorrupt, "parent-death signal %d", th.PdeathSig)
	}
	// CRIU writes the three together; an image without them predates
	// mmcr keeping them, and the thread's state stays unknown (nil).
	if tc.sched != nil {
		th.Sched = tc.sched
		if err := th.Sched.check(); err != nil {
			return nil, fileErr(name, ErrCorrupt, "%v", err)
		}
	} else if tc.schedPrioOrNice {
		return nil, fileErr(name, ErrCorrupt, "real-time priority or nice without a scheduling policy")
	}
	if len(xsave) == 0 {
		th.Xsave = nil
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

func credsFrom(name string, c *credsMsg, out *Creds) error {
	id := &c.ids // uid gid euid egid suid sgid fsuid fsgid
	*out = Creds{UID: id[0], GID: id[1], EUID: id[2], EGID: id[3], SUID: id[4], SGID: id[5], FSUID: id[6], FSGID: id[7],
		Groups: c.groups, Securebits: c.secbits}
	var err error
	for _, p := range []struct {
		dst *uint64
		w   []uint32
	}{{&out.CapInh, c.capInh}, {&out.CapPrm, c.capPrm}, {&out.CapEff, c.capEff}, {&out.CapBnd, c.capBnd}} {
		if *p.dst, err = capFromWords(name, p.w); err != nil {
			return err
		}
	}
	return nil
}

// taskFromCore fills the task-wide fields from the leader's core.
// zombieFromCore fills a zombie's task from its core (the only image
// CRIU writes for one).
func zombieFromCore(name string, ce *coreMsg, task *Task, threads int) (*Task, error) {
	if ce.mtype != marchX86_64 {
		return nil, fileErr(name, ErrUnsupported, "architecture %s (this mmcr reads x86_64)", marchName(ce.mtype))
	}
	if threads != 1 {
		return nil, fileErr(pstreeName, ErrCorrupt, "zombie %d has %d threads", task.PID, threads)
	}
	task.Zombie, task.ExitStatus, task.Comm = true, int(ce.tc.exitCode), ce.tc.comm
	if err := CheckExitStatus(task.ExitStatus); err != nil {
		return nil, fileErr(name, ErrCorrupt, "zombie %d: %v", task.PID, err)
	}
	task.Threads = []*Thread{{TID: task.PID}}
	return task, nil
}

func taskFromCore(name string, ce *coreMsg, task *Task) error {
	tc := ce.tc
	if tc == nil {
		return fileErr(name, ErrCorrupt, "leader core without task core")
	}
	switch tc.taskState {
	case taskAlive:
	case taskStopped:
		task.Stopped = true
	default:
		return fileErr(name, ErrUnsupported, "task state %d (only live and stopped tasks are supported)", tc.taskState)
	}
	task.Comm, task.Personality = tc.comm, tc.personality
	task.ChildSubreaper = tc.childSubreaper
	if tc.oomScoreAdj != nil {
		v := int(*tc.oomScoreAdj)
		if err := checkOomScoreAdj(v); err != nil {
			return fileErr(name, ErrCorrupt, "%v", err)
		}
		task.OomScoreAdj = &v
	}
	if c := ce.thc.creds; c != nil {
		if err := credsFrom(name, c, &task.Creds); err != nil {
			return err
		}
	}
	task.Rlimits = tc.rlimits
	if len(tc.sigactions) > 64 {
		return fileErr(name, ErrCorrupt, "%d sigactions", len(tc.sigactions))
	}
	task.SigActions = tc.sigactions
	if tc.timers != nil {
		task.Itimers = *tc.timers
		task.PosixTimers = tc.posixTimers
	}
	task.SharedPending = tc.sharedPending
	return nil
}

func mmFromEntry(t *Tree, name string, me *mmMsg, et *extTask, task *Task, byID map[uint32]*fileMsg) error {
	f := &me.fields // mm_start_code .. mm_env_end
	task.Mm = Mm{StartCode: f[0], EndCode: f[1], StartData: f[2], EndData: f[3], StartStack: f[4],
		StartBrk: f[5], Brk: f[6], ArgStart: f[7], ArgEnd: f[8], EnvStart: f[9], EnvEnd: f[10],
		Auxv: me.auxv, ExeFileID: me.exeID, Dumpable: me.dump, THPDisabled: me.thpOff, MDWE: et.MDWE,
		MergeAny: et.MergeAny, THPExceptAdvised: et.THPExceptAdvised, MlockFuture: et.MlockFuture, AIORings: me.aios,
		Membarrier: et.Membarrier}
	if err := checkMlockFuture(et.MlockFuture); err != nil {
		return fileErr(ExtName, ErrCorrupt, "task %d: %v", task.PID, err)
	}
	if err := checkMembarrier(et.Membarrier); err != nil {
		return fileErr(ExtName, ErrCorrupt, "task %d: %v", task.PID, err)
	}
	if id := task.Mm.ExeFileID; id != 0 && t.FileByID(id) == nil {
		return fileErr(name, ErrCorrupt, "exe refers to unknown file %d", id)
	}
	vmas := me.vmas
	if len(vmas) != len(et.VMAs) {
		return fileErr(ExtName, ErrCorrupt, "task %d: %d VMAs, %s has %d", task.PID, len(et.VMAs), name, len(vmas))
	}
	var prevEnd uint64
	for i := range vmas {
		ve, ev := &vmas[i], &et.VMAs[i]
		kind, err := kindOf(ve.status)
		if err != nil {
			return fileErr(name, ErrUnsupported, "VMA %#x-%#x: %v", ve.start, ve.end, err)
		}
		if ev.VvarVclock {
			if kind != KindVVAR {
				return fileErr(ExtName, ErrCorrupt, "vvar_vclock mark on a %s VMA", kind)
			}
			kind = KindVVARVclock
		}
		v := &VMA{Start: ve.start, End: ve.end, Pgoff: ve.pgoff, Prot: ve.prot,
			Flags: ve.flags, Kind: kind, Madv: ve.madv, VmFlags: ev.VmFlags,
			FileID: ev.FileID, ShmID: ev.ShmID, Name: ev.Name, FromParent: ev.FromParent}
		if (v.FileID != 0 && t.FileByID(v.FileID) == nil) || (v.ShmID != 0 && t.SharedObjectByID(v.ShmID) == nil) {
			return fileErr(ExtName, ErrCorrupt, "VMA %#x-%#x refers to unknown file %d or object %d", v.Start, v.End, v.FileID, v.ShmID)
		}
		if len(v.VmFlags) == 0 {
			v.VmFlags = nil // empty slices come back nil
		}
		if p := ev.MemPolicy; p != nil {
			v.MemPolicy = &MemPolicy{Mode: p.Mode, Nodes: p.Nodes}
			if len(p.Nodes) == 0 {
				v.MemPolicy.Nodes = nil
			}
			if err := checkMemPolicy(v.MemPolicy); err != nil {
				return fileErr(ExtName, ErrCorrupt, "task %d: VMA %#x-%#x: %v", task.PID, v.Start, v.End, err)
			}
		}
		if v.Start%PageSize != 0 || v.End%PageSize != 0 || v.Start >= v.End || v.Start < prevEnd {
			return fileErr(name, ErrCorrupt, "bad VMA %#x-%#x", v.Start, v.End)
		}
		prevEnd = v.End
		shmid := ve.shmid
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
			if fe == nil || fe.typ != fdTypeMemfd || fe.memfd == nil {
				return fileErr(name, ErrCorrupt, "memfd VMA %#x-%#x refers to file %d, not a memfd", v.Start, v.End, shmid)
			}
			v.ShmID = fe.memfd.inodeID
			if so := t.SharedObjectByID(v.ShmID); so == nil || !so.Memfd {
				return fileErr(name, ErrCorrupt, "memfd VMA %#x-%#x refers to unknown memfd %d", v.Start, v.End, v.ShmID)
			}
		case KindSharedAnon:
			v.ShmID = uint32(shmid)
			if t.SharedObjectByID(v.ShmID) == nil {
				return fileErr(name, ErrCorrupt, "VMA %#x-%#x refers to unknown shared object %d", v.Start, v.End, shmid)
			}
		}
		if err := checkHugetlb(v, t.SharedObjectByID(v.ShmID)); err != nil {
			return fileErr(name, ErrCorrupt, "%v", err)
		}
		task.VMAs = append(task.VMAs, v)
	}
	if err := checkAIORings(task); err != nil {
		return fileErr(name, ErrCorrupt, "%v", err)
	}
	return nil
}

// fdTypeName names a CRIU fd_types value, as errors did through go-criu.
func fdTypeName(v int32) string {
	names := [...]string{"UND", "REG", "PIPE", "FIFO", "INETSK", "UNIXSK", "EVENTFD", "EVENTPOLL", "INOTIFY",
		"SIGNALFD", "PACKETSK", "TTY", "FANOTIFY", "NETLINKSK", "NS", "TUNF", "EXT", "TIMERFD", "MEMFD", "BPFMAP"}
	switch {
	case v >= 0 && int(v) < len(names):
		return names[v]
	case v == 65534:
		return "CTL_TTY"
	case v == 65535:
		return "AUTOFS_PIPE"
	}
	return strconv.Itoa(int(v))
}

// marchName names a core_entry.march value.
func marchName(v int32) string {
	names := [...]string{"UNKNOWN", "X86_64", "ARM", "AARCH64", "PPC64", "S390", "MIPS"}
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return strconv.Itoa(int(v))
}
