package image

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"syscall"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// CRIU constants the images carry.
const (
	criuImagesV1_1 = 2 // inventory img_version CRIU writes today
	taskAlive      = 1 // task_core_entry.task_state
	taskStopped    = 3 // the same, a task in a job-control stop
	taskDead       = 2 // the same, a zombie
	fdCloexec      = 1 // FD_CLOEXEC in fdinfo_entry.flags
	oCloexec       = 0o2000000

	// vma_entry.status bits (CRIU criu/include/image.h).
	vmaAreaRegular  = 1 << 0
	vmaAreaStack    = 1 << 1
	vmaAreaVsyscall = 1 << 2
	vmaAreaVDSO     = 1 << 3
	vmaAreaHeap     = 1 << 5
	vmaFilePrivate  = 1 << 6
	vmaFileShared   = 1 << 7
	vmaAnonShared   = 1 << 8
	vmaAnonPrivate  = 1 << 9
	vmaAreaSysVIPC  = 1 << 10
	vmaAreaSocket   = 1 << 11
	vmaAreaVVAR     = 1 << 12
	vmaAreaAIORing  = 1 << 13
	vmaAreaMemfd    = 1 << 14
	vmaUnsupp       = 1 << 31
)

// vmaStatus is the CRIU status word for a kind.
func vmaStatus(k VMAKind) uint32 {
	switch k {
	case KindPrivateAnon:
		return vmaAreaRegular | vmaAnonPrivate
	case KindSharedAnon:
		return vmaAreaRegular | vmaAnonShared
	case KindMemfd:
		return vmaAreaRegular | vmaFileShared | vmaAreaMemfd
	case KindPrivateFile:
		return vmaAreaRegular | vmaFilePrivate
	case KindSharedFile:
		return vmaAreaRegular | vmaFileShared
	case KindHeap:
		return vmaAreaRegular | vmaAnonPrivate | vmaAreaHeap
	case KindStack:
		return vmaAreaRegular | vmaAnonPrivate | vmaAreaStack
	case KindVDSO:
		return vmaAreaRegular | vmaAnonPrivate | vmaAreaVDSO
	case KindVVAR, KindVVARVclock:
		return vmaAreaRegular | vmaAnonPrivate | vmaAreaVVAR
	case KindVsyscall:
		return vmaAreaVsyscall
	case KindAIORing:
		return vmaAreaRegular | vmaAreaAIORing
	}
	return vmaUnsupp
}

// kindOf maps a CRIU status word back to a kind ([vvar_vclock] comes from
// the extension file).
func kindOf(st uint32) (VMAKind, error) {
	switch {
	case st&vmaUnsupp != 0:
		return 0, fmt.Errorf("VMA marked unsupported (status %#x)", st)
	case st&vmaAreaSysVIPC != 0:
		return 0, fmt.Errorf("SysV IPC shared memory VMAs are not supported")
	case st&vmaAreaSocket != 0:
		return 0, fmt.Errorf("socket (packet ring) VMAs are not supported")
	case st&vmaAreaAIORing != 0:
		return KindAIORing, nil
	case st&vmaAreaVsyscall != 0:
		return KindVsyscall, nil
	case st&vmaAreaVDSO != 0:
		return KindVDSO, nil
	case st&vmaAreaVVAR != 0:
		return KindVVAR, nil
	case st&vmaAreaMemfd != 0:
		if st&vmaFileShared == 0 {
			return 0, fmt.Errorf("private memfd VMAs are not supported")
		}
		return KindMemfd, nil
	case st&vmaAnonShared != 0:
		return KindSharedAnon, nil
	case st&vmaFileShared != 0:
		return KindSharedFile, nil
	case st&vmaFilePrivate != 0:
		return KindPrivateFile, nil
	case st&vmaAreaHeap != 0:
		return KindHeap, nil
	case st&vmaAreaStack != 0:
		return KindStack, nil
	case st&vmaAnonPrivate != 0:
		return KindPrivateAnon, nil
	}
	return 0, fmt.Errorf("unknown VMA status %#x", st)
}

// checkTree rejects a tree the images could not describe faithfully.
func checkTree(t *Tree) error {
	if t == nil || len(t.Tasks) == 0 {
		return fmt.Errorf("image: empty tree")
	}
	for i, f := range t.Files {
		if f == nil || f.ID != uint32(i+1) {
			return fmt.Errorf("image: Files[%d] has a wrong ID (IDs must be dense from 1)", i)
		}
	}
	for i, so := range t.SharedObjects {
		if so == nil || so.ID != uint32(i+1) {
			return fmt.Errorf("image: SharedObjects[%d] has a wrong ID (IDs must be dense from 1)", i)
		}
		if err := checkSharedHugetlb(so); err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if err := checkSysV(so); err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if err := checkMemfdInode(so); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	}
	seen := map[int]bool{}
	for _, task := range t.Tasks {
		if task == nil || len(task.Threads) == 0 || task.Threads[0] == nil || task.Threads[0].TID != task.PID {
			return fmt.Errorf("image: task %v: Threads[0] must be the leader", taskPID(task))
		}
		for _, th := range task.Threads {
			if th == nil || th.TID <= 0 || seen[th.TID] {
				return fmt.Errorf("image: task %d: nil, bad or duplicate thread", task.PID)
			}
			seen[th.TID] = true
			if th.Sched != nil {
				if err := th.Sched.check(); err != nil {
					return fmt.Errorf("image: task %d: thread %d: %w", task.PID, th.TID, err)
				}
			}
			if err := checkMemPolicy(th.MemPolicy); err != nil {
				return fmt.Errorf("image: task %d: thread %d: %w", task.PID, th.TID, err)
			}
			if n := len(th.CPUAffinity); n > 16 || n > 0 && slices.Max(th.CPUAffinity) == 0 {
				return fmt.Errorf("image: task %d: thread %d: CPU mask of %d words, or of no CPU", task.PID, th.TID, n)
			}
			if th.IOPrio>>13 > 3 || th.IOPrio != 0 && th.IOPrio>>13 == 0 {
				return fmt.Errorf("image: task %d: thread %d: I/O priority %#x", task.PID, th.TID, th.IOPrio)
			}
			if err := checkSeccomp(th.Seccomp); err != nil {
				return fmt.Errorf("image: task %d: thread %d: %w", task.PID, th.TID, err)
			}
		}
		if task.OomScoreAdj != nil {
			if err := checkOomScoreAdj(*task.OomScoreAdj); err != nil {
				return fmt.Errorf("image: task %d: %w", task.PID, err)
			}
		}
		if err := checkMlockFuture(task.Mm.MlockFuture); err != nil {
			return fmt.Errorf("image: task %d: %w", task.PID, err)
		}
		if err := checkMembarrier(task.Mm.Membarrier); err != nil {
			return fmt.Errorf("image: task %d: %w", task.PID, err)
		}
		if err := checkAIORings(task); err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if err := checkPosixTimers(task); err != nil {
			return fmt.Errorf("image: task %d: %w", task.PID, err)
		}
		if err := checkLocks(task); err != nil {
			return fmt.Errorf("image: task %d: %w", task.PID, err)
		}
		if len(task.SigActions) > 64 || len(task.Rlimits) > 64 {
			return fmt.Errorf("image: task %d: too many sigactions or rlimits", task.PID)
		}
		var prevEnd uint64
		for _, v := range task.VMAs {
			if v == nil || vmaStatus(v.Kind) == vmaUnsupp {
				return fmt.Errorf("image: task %d: nil VMA or unknown kind", task.PID)
			}
			if v.Start%PageSize != 0 || v.End%PageSize != 0 || v.Start >= v.End || v.Start < prevEnd {
				return fmt.Errorf("image: task %d: VMA %#x-%#x unaligned, empty or out of order", task.PID, v.Start, v.End)
			}
			if err := checkHugetlb(v, t.SharedObjectByID(v.ShmID)); err != nil {
				return fmt.Errorf("image: task %d: %w", task.PID, err)
			}
			if err := checkMemPolicy(v.MemPolicy); err != nil {
				return fmt.Errorf("image: task %d: VMA %#x-%#x: %w", task.PID, v.Start, v.End, err)
			}
			prevEnd = v.End
			if (v.Kind == KindPrivateFile || v.Kind == KindSharedFile || v.FileID != 0) && t.FileByID(v.FileID) == nil {
				return fmt.Errorf("image: task %d: VMA %#x-%#x refers to unknown file %d", task.PID, v.Start, v.End, v.FileID)
			}
			if (v.Kind == KindSharedAnon || v.Kind == KindMemfd || v.ShmID != 0) && t.SharedObjectByID(v.ShmID) == nil {
				return fmt.Errorf("image: task %d: VMA %#x-%#x refers to unknown shared object %d", task.PID, v.Start, v.End, v.ShmID)
			}
			if so := t.SharedObjectByID(v.ShmID); v.Kind == KindMemfd && (so == nil || !so.Memfd) {
				return fmt.Errorf("image: task %d: memfd VMA %#x-%#x refers to shared object %d, not a memfd",
					task.PID, v.Start, v.End, v.ShmID)
			}
		}
		for _, fd := range task.FDs {
			if fd == nil || fd.Num < 0 || fd.Kind < FDRegular || fd.Kind > lastFDKind {
				return fmt.Errorf("image: task %d: bad fd", task.PID)
			}
			if err := checkFDKind(task, fd); err != nil {
				return fmt.Errorf("image: task %d: %w", task.PID, err)
			}
			if (fd.Kind <= FDCharDev || fd.FileID != 0) && t.FileByID(fd.FileID) == nil {
				return fmt.Errorf("image: task %d: fd %d refers to unknown file %d", task.PID, fd.Num, fd.FileID)
			}
		}
		for _, id := range []uint32{task.CwdFileID, task.RootFileID, task.Mm.ExeFileID} {
			if id != 0 && t.FileByID(id) == nil {
				return fmt.Errorf("image: task %d: cwd, root or exe refers to unknown file %d", task.PID, id)
			}
		}
		if task.PID <= 0 || task.PPID < 0 || task.PGID < 0 || task.SID < 0 {
			return fmt.Errorf("image: task %d: bad pid, ppid %d, pgid %d or sid %d", task.PID, task.PPID, task.PGID, task.SID)
		}
	}
	for i := range t.Tasks {
		if err := checkCOW(t.Tasks, i); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	}
	if err := checkZombies(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkPipes(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkSockets(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkInetSockets(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkOpens(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkEpolls(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := checkOwners(t); err != nil {
		return err
	}
	if err := checkPidfds(t); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

func taskPID(t *Task) any {
	if t == nil {
		return "nil"
	}
	return t.PID
}

// writeTree writes every metadata image of t.
func (w *Writer) writeTree(t *Tree) error {
	root := uint32(t.Tasks[0].PID)
	var ps [][]byte
	for i, task := range t.Tasks {
		ppid := uint32(task.PPID)
		if i == 0 {
			ppid = 0 // CRIU's mark of the root; its real parent is in the extension file
		}
		ps = append(ps, pstreeEntry(task, ppid))
	}
	if err := w.writeImage(pstreeName, "PSTREE", ps...); err != nil {
		return err
	}

	ext := extImage{Format: extFormat, Version: extVersion, RootPPID: t.Tasks[0].PPID}
	for _, f := range t.Files {
		ext.Files = append(ext.Files, extFile{ID: f.ID, Dev: f.Dev, Ino: f.Ino, MtimeNsec: f.MtimeNsec,
			UID: f.UID, GID: f.GID, Deleted: f.Deleted, Renamed: f.Renamed})
	}
	for _, so := range t.SharedObjects {
		ext.SharedObjects = append(ext.SharedObjects, extShm{ID: so.ID, Dev: so.Dev, Ino: so.Ino,
			Size: so.Size, Memfd: so.Memfd, Name: so.Name, HugePageSize: so.HugePageSize,
			Seals: so.Seals, Mode: so.Mode, UID: so.UID, GID: so.GID, Length: so.Length})
		if so.Seals != 0 || so.Mode != 0 || so.UID != 0 || so.GID != 0 || so.Length != 0 {
			ext.Version = max(ext.Version, extVersion7)
		}
		if s := so.SysV; s != nil {
			ext.SharedObjects[len(ext.SharedObjects)-1].SysV = &extSysV{Key: s.Key, ID: s.ID, Mode: s.Mode, UID: s.UID, GID: s.GID, Size: s.Size}
		}
		if so.HugePageSize != 0 || so.SysV != nil {
			ext.Version = max(ext.Version, extVersion4)
		}
	}

	// files.img: first the files of the tree (id = File.ID), then one entry
	// per file descriptor (its own open file description: flags, pos).
	var files [][]byte
	for _, f := range t.Files {
		files = append(files, regFileEntry(f.ID, 0, 0, f.Path, uint64(f.Size), f.Mode, nil))
	}
	nextID := uint32(len(t.Files)) + 1

	// A memfd object is, as in CRIU, a MEMFD file entry (what memfd VMAs'
	// shmid names) pointing at a memfd-inode.img entry whose shmid names
	// its pagemap-shmem image. mmcr uses the SharedObject ID for both the
	// inode id and the shmid.
	memfdFile := map[uint32]uint32{}
	var inodes [][]byte
	for _, so := range t.SharedObjects {
		if !so.Memfd {
			continue
		}
		id := nextID
		nextID++
		memfdFile[so.ID] = id
		files = append(files, memfdFileEntry(id, so.ID))
		inodes = append(inodes, memfdInodeEntry(so))
	}
	if len(inodes) > 0 {
		if err := w.writeImage(memfdInodeName, "MEMFD_INODE", inodes...); err != nil {
			return err
		}
	}

	if locks := fileLockEntries(t); len(locks) > 0 {
		ext.Version = max(ext.Version, extVersion6)
		if err := w.writeImage(fileLocksName, "FILE_LOCKS", locks...); err != nil {
			return err
		}
	}
	seccompFilters, seccompLast := seccompTable(t)
	if len(seccompFilters) > 0 {
		ext.Version = max(ext.Version, extVersion6)
		entry := encodeMsg(func(e *protoEnc) {
			for _, f := range seccompFilters {
				e.bytes(1, f) // seccomp_entry.seccomp_filters
			}
		})
		if err := w.writeImage(seccompName, "SECCOMP", entry); err != nil {
			return err
		}
	}

	openFile := map[uint32]uint32{} // OpenID: its file entry id
	sockFile := map[uint32]uint32{} // socket ID: its file entry id
	for _, task := range t.Tasks {
		if task.Zombie {
			// As CRIU writes one: its core and nothing else.
			ext.Version = max(ext.Version, extVersion6)
			ext.Tasks = append(ext.Tasks, extTask{PID: task.PID, Threads: []extThread{{TID: task.PID}}})
			if err := w.writeImage(coreName(task.PID), "CORE", zombieCoreEntry(task)); err != nil {
				return err
			}
			continue
		}
		et := extTask{PID: task.PID, CapAmb: task.Creds.CapAmb, NoNewPrivs: task.Creds.NoNewPrivs, MDWE: task.Mm.MDWE,
			MergeAny: task.Mm.MergeAny, THPExceptAdvised: task.Mm.THPExceptAdvised, MlockFuture: task.Mm.MlockFuture,
			Membarrier: task.Mm.Membarrier}
		if task.Mm.Membarrier != 0 {
			ext.Version = max(ext.Version, extVersion7)
		}
		et.CoredumpFilter = task.CoredumpFilter
		if task.CoredumpFilter != nil {
			ext.Version = max(ext.Version, extVersion6)
		}
		if task.Mm.THPExceptAdvised || len(task.Guards) > 0 {
			ext.Version = max(ext.Version, extVersion3)
		}
		if task.Mm.MlockFuture != 0 {
			ext.Version = max(ext.Version, extVersion4)
		}
		if len(task.PosixTimers) > 0 {
			ext.Version = max(ext.Version, extVersion6)
		}
		for _, r := range task.Guards {
			et.Guards = append(et.Guards, [2]uint64{r.Start, r.End})
		}
		for _, r := range task.ParentPages {
			et.ParentPages = append(et.ParentPages, [2]uint64{r.Start, r.End})
		}
		// ids-PID.img: crit's explore commands find fdinfo-FILES_ID.img through it.
		if err := w.writeImage(idsName(task.PID), "IDS", encodeMsg(func(e *protoEnc) { kobjIDs(e, uint32(task.PID)) })); err != nil {
			return err
		}
		for i, th := range task.Threads {
			et.Threads = append(et.Threads, extThread{TID: th.TID, Xsave: th.Xsave, TimerSlackNs: th.TimerSlackNs, CPUs: th.CPUAffinity,
				IOPrio: th.IOPrio})
			if len(th.CPUAffinity) > 0 || th.IOPrio != 0 {
				ext.Version = max(ext.Version, extVersion6)
			}
			if p := th.MemPolicy; p != nil {
				et.Threads[len(et.Threads)-1].MemPolicy = &extMemPolicy{Mode: p.Mode, Nodes: p.Nodes}
				ext.Version = max(ext.Version, extVersion4)
			}
			if err := w.writeImage(coreName(th.TID), "CORE", coreEntry(task, th, i == 0, seccompLast[th])); err != nil {
				return err
			}
		}
		// The VMAs' shmid field: what it names depends on the kind; the
		// extension file keeps the FileID or ShmID it cannot carry.
		shmids := make([]uint64, len(task.VMAs))
		for i, v := range task.VMAs {
			ev := extVMA{Name: v.Name, VmFlags: v.VmFlags, VvarVclock: v.Kind == KindVVARVclock, FromParent: v.FromParent}
			if v.FromParent {
				ext.Version = max(ext.Version, extVersionCOW)
			}
			if p := v.MemPolicy; p != nil {
				ev.MemPolicy = &extMemPolicy{Mode: p.Mode, Nodes: p.Nodes}
				ext.Version = max(ext.Version, extVersion7)
			}
			switch v.Kind {
			case KindPrivateFile, KindSharedFile:
				shmids[i] = uint64(v.FileID)
				ev.ShmID = v.ShmID
			case KindSharedAnon:
				shmids[i] = uint64(v.ShmID)
				ev.FileID = v.FileID
			case KindMemfd:
				shmids[i] = uint64(memfdFile[v.ShmID])
				ev.FileID = v.FileID
			default:
				ev.FileID, ev.ShmID = v.FileID, v.ShmID
			}
			et.VMAs = append(et.VMAs, ev)
		}
		if err := w.writeImage(mmName(task.PID), "MM", mmEntry(task, shmids)); err != nil {
			return err
		}
		if err := w.writeImage(fsName(task.PID), "FS", fsEntry(task)); err != nil {
			return err
		}
		var fdis [][]byte
		// The file entry id of each fd: its own, or that of the open file
		// description it shares with fds before it (CRIU's way: one
		// entry per description, fdinfo entries naming it); own says the
		// entry is the fd's to write. An epoll's targets name theirs.
		fdIDs := make(map[int]uint32, len(task.FDs))
		own := make(map[int]bool, len(task.FDs))
		for _, fd := range task.FDs {
			if fd.OpenID != 0 && openFile[fd.OpenID] != 0 {
				fdIDs[fd.Num] = openFile[fd.OpenID]
				continue
			}
			fdIDs[fd.Num], own[fd.Num] = nextID, true
			if fd.OpenID != 0 {
				openFile[fd.OpenID] = nextID
			}
			nextID++
		}
		for _, fd := range task.FDs {
			id := fdIDs[fd.Num]
			efd := extFD{Num: fd.Num, Kind: fd.Kind.String(), FileID: fd.FileID, ExternalType: fd.ExternalType}
			if o := fd.Owner; o != nil && fd.Kind != FDExternal {
				efd.Owner = &extOwner{Type: o.Type, PID: o.PID, Signal: o.Signal, UID: o.UID, EUID: o.EUID}
				ext.Version = max(ext.Version, extVersion9)
			}
			flags := uint32(fd.Flags) &^ oCloexec // the open file description's; FD_CLOEXEC is the fd's
			owner := fd.Owner
			if fd.Kind == FDExternal {
				owner = nil // restore hands over its own stdio as it is
			}
			var typ int32
			var entry []byte
			switch fd.Kind {
			case FDEventfd:
				typ = fdTypeEventfd
				efd.EventfdSemaphore = fd.Eventfd.Semaphore
				entry = counterFileEntry(typ, 8, id, flags, fd.Eventfd.Count, owner)
			case FDSignalfd:
				typ = fdTypeSignalfd
				entry = counterFileEntry(typ, 10, id, flags, fd.Signalfd.Mask, owner)
				ext.Version = max(ext.Version, extVersion7)
			case FDTimerfd:
				typ = fdTypeTimerfd
				entry = timerfdFileEntry(id, flags, fd.Timerfd, owner)
				ext.Version = max(ext.Version, extVersion7)
			case FDInotify:
				typ = fdTypeInotify
				entry = inotifyFileEntry(id, flags, fd.Inotify, owner)
				ext.Version = max(ext.Version, extVersion7)
			case FDEpoll:
				typ = fdTypeEventpoll
				entry = eventpollFileEntry(id, flags, fd.Epoll, fdIDs, owner)
				if fd.OpenID != 0 {
					ext.Version = max(ext.Version, extVersion8)
				}
			case FDExternal:
				typ = fdTypeExt
				efd.Flags, efd.Pos = fd.Flags, fd.Pos
				entry = extFileEntry(id, owner)
			case FDPidfd:
				typ = fdTypeExt
				efd.Flags, efd.PidfdPID = fd.Flags, fd.PidfdPID
				entry = extFileEntry(id, owner)
				ext.Version = max(ext.Version, extVersion7)
			case FDPipe:
				typ = fdTypePipe
				p := t.PipeByID(fd.PipeID)
				entry = pipeFileEntry(id, flags, p.Ino, owner)
				if p.FileID != 0 {
					// fifo_entry has no place for the flags.
					typ, efd.Flags = fdTypeFifo, int(flags)
					entry = fifoFileEntry(id, p.Ino, p.FileID)
				}
			case FDInet:
				typ = fdTypeInetSk
				entry = inetSkFileEntry(id, flags, t.InetByID(fd.InetID), owner)
				ext.Version = max(ext.Version, extVersion8)
			case FDSocket:
				typ = fdTypeUnixSk
				s := t.SocketByID(fd.SocketID)
				var peerIno uint32
				if p := t.SocketByID(s.Peer); p != nil {
					peerIno = p.Ino
				}
				entry = unixSkFileEntry(id, flags, s, peerIno, owner)
				sockFile[s.ID] = id
			default:
				typ = fdTypeReg
				var path string
				var size uint64
				var mode uint32
				if f := t.FileByID(fd.FileID); f != nil {
					path, size, mode = f.Path, uint64(f.Size), f.Mode
				}
				entry = regFileEntry(id, flags, uint64(fd.Pos), path, size, mode, owner)
			}
			if own[fd.Num] {
				files = append(files, entry)
			}
			if fd.OpenID != 0 {
				ext.Version = max(ext.Version, extVersion5)
			}
			et.FDs = append(et.FDs, efd)
			fdis = append(fdis, fdinfoEntry(id, fd, typ))
		}
		if err := w.writeImage(fdinfoName(task.PID), "FDINFO", fdis...); err != nil {
			return err
		}
		ext.Tasks = append(ext.Tasks, et)
	}
	if err := w.writeImage(filesName, "FILES", files...); err != nil {
		return err
	}
	if len(t.Pipes) > 0 {
		if err := w.writePipesData(t.Pipes); err != nil {
			return err
		}
	}
	if len(t.Sockets) > 0 {
		if err := w.writeSkQueues(t.Sockets, sockFile); err != nil {
			return err
		}
	}

	// remap-fpath.img tells CRIU tools which files have ghost content.
	var remaps [][]byte
	w.mu.Lock()
	for _, f := range t.Files {
		if w.ghosts[f.ID] {
			remaps = append(remaps, remapGhostEntry(f.ID))
		}
	}
	w.mu.Unlock()
	if len(remaps) > 0 {
		if err := w.writeImage(remapName, "REMAP_FPATH", remaps...); err != nil {
			return err
		}
	}

	// The extension file and then the inventory go last, in that order: a
	// directory with an inventory but no extension file is then never an
	// mmcr dump killed before its manifest but someone else's (CRIU's)
	// image, and Open can say so.
	data, err := json.MarshalIndent(&ext, "", " ")
	if err != nil {
		return fmt.Errorf("image: %s: %w", ExtName, err)
	}
	if err := w.writeWhole(ExtName, append(data, '\n')); err != nil {
		return err
	}
	return w.writeImage(inventoryName, "INVENTORY", inventoryEntry(root))
}

// CRIU enum values the images carry.
const (
	fdTypeReg       = 1  // fd_types REG
	fdTypeEventfd   = 6  // fd_types EVENTFD
	fdTypeEventpoll = 7  // fd_types EVENTPOLL
	fdTypeInotify   = 8  // fd_types INOTIFY
	fdTypeSignalfd  = 9  // fd_types SIGNALFD
	fdTypeExt       = 16 // fd_types EXT
	fdTypeTimerfd   = 17 // fd_types TIMERFD
	fdTypeMemfd     = 18 // fd_types MEMFD
	marchX86_64     = 1  // core_entry.march X86_64
	regsModeNative  = 1  // user_x86_regs_mode NATIVE
	regsModeCompat  = 2  // user_x86_regs_mode COMPAT
	remapGhost      = 1  // remap_type GHOST
	lsmNone         = 0  // lsmtype NO_LSM
)

// The functions below encode one CRIU message each, field by field in
// field-number order; the numbers are those of CRIU's images/*.proto (as
// go-criu's crit/images carries them). Fields mmcr does not set are absent.

// encodeMsg returns the message fill encodes.
func encodeMsg(fill func(e *protoEnc)) []byte {
	var e protoEnc
	fill(&e)
	return e.b
}

// pstreeEntry: pstree_entry.
func pstreeEntry(task *Task, ppid uint32) []byte {
	var e protoEnc
	e.uint32(1, uint32(task.PID))
	e.uint32(2, ppid)
	e.uint32(3, uint32(task.PGID))
	e.uint32(4, uint32(task.SID))
	for _, th := range task.Threads {
		e.uint32(5, uint32(th.TID)) // threads
	}
	return e.b
}

// zeroFown: a fown_entry of zeros (no F_SETOWN owner).
func zeroFown(e *protoEnc) { fownOf(nil)(e) }

// fownOf returns the encoder of o as a fown_entry (uid, euid, signum,
// pid_type, pid; pid_type as F_GETOWN_EX's type, as CRIU keeps it): zeros
// for nil.
func fownOf(o *FDOwner) func(e *protoEnc) {
	return func(e *protoEnc) {
		if o == nil {
			o = &FDOwner{}
		}
		e.uint32(1, o.UID)
		e.uint32(2, o.EUID)
		e.uint32(3, uint32(o.Signal))
		e.uint32(4, uint32(o.Type))
		e.uint32(5, uint32(o.PID))
	}
}

// regFileEntry: file_entry {type REG, reg_file_entry}.
func regFileEntry(id, flags uint32, pos uint64, path string, size uint64, mode uint32, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeReg)
	e.uint32(2, id)
	e.message(3, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, flags)
		e.uint64(3, pos)
		e.message(5, fownOf(own))
		e.string(6, path)
		e.uint64(8, size)
		e.uint32(10, mode)
	})
	return e.b
}

// memfdFileEntry: file_entry {type MEMFD, memfd_file_entry}.
func memfdFileEntry(id, inode uint32) []byte {
	var e protoEnc
	e.int32(1, fdTypeMemfd)
	e.uint32(2, id)
	e.message(20, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, unix.O_RDWR) // flags
		e.uint64(3, 0)           // pos
		e.message(4, zeroFown)
		e.uint32(5, inode)
	})
	return e.b
}

// memfdInodeEntry: memfd_inode_entry; inode_id and shmid are the object's ID.
func memfdInodeEntry(so *SharedObject) []byte {
	var e protoEnc
	e.string(1, "memfd:"+so.Name)
	e.uint32(2, so.UID)
	e.uint32(3, so.GID)
	size := so.Size
	if so.Length != 0 {
		size = so.Length // its st_size, where recorded
	}
	e.uint64(4, size)
	e.uint32(5, so.ID) // shmid
	e.uint32(6, so.Seals)
	e.uint64(7, uint64(so.ID))
	return e.b
}

// counterFileEntry: file_entry {type typ, entry in field}, for the two
// file kinds whose entry is {id, flags, fown, one 64-bit value}: EVENTFD
// (8: eventfd_file_entry, the counter) and SIGNALFD (10: signalfd_entry,
// the mask).
func counterFileEntry(typ int32, field protowire.Number, id, flags uint32, v uint64, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, typ)
	e.uint32(2, id)
	e.message(field, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, flags)
		e.message(3, fownOf(own))
		e.uint64(4, v)
	})
	return e.b
}

// inotifyFileEntry: file_entry {type INOTIFY, inotify_file_entry with an
// inotify_wd_entry per watch}. The handle goes as CRIU's fh_entry has it,
// in 64-bit words, at least 16; the path in its path field.
func inotifyFileEntry(id, flags uint32, ws []InotifyWatch, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeInotify)
	e.uint32(2, id)
	e.message(13, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, flags)
		e.message(4, fownOf(own))
		for _, w := range ws {
			e.message(5, func(e *protoEnc) {
				e.uint32(1, id)
				e.uint64(2, w.Ino)
				e.uint32(3, w.Mask)
				e.uint32(4, w.IgnoredMask)
				e.uint32(5, w.Sdev)
				e.uint32(6, uint32(w.WD))
				e.message(7, func(e *protoEnc) {
					e.uint32(1, uint32(len(w.Handle)))
					e.uint32(2, uint32(w.HandleType))
					words := make([]uint64, max(16, (len(w.Handle)+7)/8))
					for i, b := range w.Handle {
						words[i/8] |= uint64(b) << (8 * (i % 8))
					}
					e.uint64s(3, words)
					e.string(4, w.Path)
				})
			})
		}
	})
	return e.b
}

// timerfdFileEntry: file_entry {type TIMERFD, timerfd_entry}.
func timerfdFileEntry(id, flags uint32, t *Timerfd, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeTimerfd)
	e.uint32(2, id)
	e.message(12, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, flags)
		e.message(3, fownOf(own))
		e.uint32(4, uint32(t.Clock))
		e.uint64(5, t.Ticks)
		e.uint32(6, t.SettimeFlags)
		e.uint64(7, uint64(t.ValueNsec/1e9))
		e.uint64(8, uint64(t.ValueNsec%1e9))
		e.uint64(9, uint64(t.IntervalNsec/1e9))
		e.uint64(10, uint64(t.IntervalNsec%1e9))
	})
	return e.b
}

// eventpollFileEntry: file_entry {type EVENTPOLL, eventpoll_file_entry with
// an eventpoll_tfd_entry per target}; fdIDs maps a target fd to its file id.
func eventpollFileEntry(id, flags uint32, targets []EpollTarget, fdIDs map[int]uint32, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeEventpoll)
	e.uint32(2, id)
	e.message(9, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, flags)
		e.message(3, fownOf(own))
		for _, tg := range targets {
			e.message(4, func(e *protoEnc) {
				e.uint32(1, fdIDs[tg.FD])
				e.uint32(2, uint32(tg.FD))
				e.uint32(3, tg.Events)
				e.uint64(4, tg.Data)
			})
		}
	})
	return e.b
}

// extFileEntry: file_entry {type EXT, ext_file_entry}.
func extFileEntry(id uint32, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeExt)
	e.uint32(2, id)
	e.message(15, func(e *protoEnc) {
		e.uint32(1, id)
		e.message(5, fownOf(own))
	})
	return e.b
}

// fdinfoEntry: fdinfo_entry.
func fdinfoEntry(id uint32, fd *FD, typ int32) []byte {
	var flags uint32
	if fd.Flags&oCloexec != 0 {
		flags = fdCloexec
	}
	var e protoEnc
	e.uint32(1, id)
	e.uint32(2, flags)
	e.int32(3, typ)
	e.uint32(4, uint32(fd.Num))
	return e.b
}

// remapGhostEntry: remap_file_path_entry of a ghost file.
func remapGhostEntry(id uint32) []byte {
	var e protoEnc
	e.uint32(1, id) // orig_id
	e.uint32(2, id) // remap_id
	e.int32(3, remapGhost)
	return e.b
}

// inventoryEntry: inventory_entry.
func inventoryEntry(root uint32) []byte {
	var e protoEnc
	e.uint32(1, criuImagesV1_1)
	e.bool(2, true) // fdinfo_per_id
	e.message(3, func(e *protoEnc) { kobjIDs(e, root) })
	e.int32(6, lsmNone)
	return e.b
}

// kobjIDs: task_kobj_ids_entry, every id the PID.
func kobjIDs(e *protoEnc, pid uint32) {
	e.uint32(1, pid) // vm_id
	e.uint32(2, pid) // files_id
	e.uint32(3, pid) // fs_id
	e.uint32(4, pid) // sighand_id
}

// fsEntry: fs_entry.
func fsEntry(task *Task) []byte {
	var e protoEnc
	e.uint32(1, task.CwdFileID)
	e.uint32(2, task.RootFileID)
	e.uint32(3, task.Umask)
	return e.b
}

// mmEntry: mm_entry with a vma_entry per VMA (shmids[i] is VMA i's shmid).
func mmEntry(task *Task, shmids []uint64) []byte {
	m := &task.Mm
	var e protoEnc
	for i, v := range []uint64{m.StartCode, m.EndCode, m.StartData, m.EndData, m.StartStack,
		m.StartBrk, m.Brk, m.ArgStart, m.ArgEnd, m.EnvStart, m.EnvEnd} {
		e.uint64(protowire.Number(i+1), v) // mm_start_code .. mm_env_end
	}
	e.uint32(12, m.ExeFileID)
	e.uint64s(13, m.Auxv) // mm_saved_auxv
	for i, v := range task.VMAs {
		e.message(14, func(e *protoEnc) {
			e.uint64(1, v.Start)
			e.uint64(2, v.End)
			e.uint64(3, v.Pgoff)
			e.uint64(4, shmids[i])
			e.uint32(5, v.Prot)
			e.uint32(6, v.Flags)
			e.uint32(7, vmaStatus(v.Kind))
			e.sint64(8, -1) // fd: none at restore time
			e.uint64(9, v.Madv)
		})
	}
	e.int32(15, m.Dumpable)
	for _, r := range m.AIORings {
		e.message(16, func(e *protoEnc) { // aio_ring_entry
			e.uint64(1, r.Addr)
			e.uint32(2, r.NrReq)
			e.uint32(3, uint32(r.Len))
		})
	}
	e.bool(17, m.THPDisabled)
	return e.b
}

// sigQueue: a signal_queue_entry field, absent when there is no signal.
func sigQueue(e *protoEnc, num protowire.Number, sigs []SigInfo) {
	if len(sigs) == 0 {
		return
	}
	e.message(num, func(e *protoEnc) {
		for i := range sigs {
			e.message(1, func(e *protoEnc) { e.bytes(1, sigs[i][:]) }) // siginfo_entry
		}
	})
}

// itimer: an itimer_entry field.
func itimer(e *protoEnc, num protowire.Number, it Itimer) {
	e.message(num, func(e *protoEnc) {
		e.uint64(1, uint64(it.IntervalUsec/1e6))
		e.uint64(2, uint64(it.IntervalUsec%1e6))
		e.uint64(3, uint64(it.ValueUsec/1e6))
		e.uint64(4, uint64(it.ValueUsec%1e6))
	})
}

// capWords splits a capability set into CRIU's two 32-bit words.
func capWords(c uint64) []uint32 { return []uint32{uint32(c), uint32(c >> 32)} }

// credsEntry: creds_entry.
func credsEntry(e *protoEnc, c *Creds) {
	for i, v := range []uint32{c.UID, c.GID, c.EUID, c.EGID, c.SUID, c.SGID, c.FSUID, c.FSGID} {
		e.uint32(protowire.Number(i+1), v)
	}
	e.uint32s(9, capWords(c.CapInh))
	e.uint32s(10, capWords(c.CapPrm))
	e.uint32s(11, capWords(c.CapEff))
	e.uint32s(12, capWords(c.CapBnd))
	e.uint32(13, c.Securebits)
	e.uint32s(14, c.Groups)
}

// coreEntry builds core-TID.img: a core_entry. The leader's carries the
// task-wide part (tc).
// seccompLast is the thread's last filter in seccomp.img, for a thread
// with filters.
func coreEntry(task *Task, th *Thread, leader bool, seccompLast uint32) []byte {
	var e protoEnc
	e.int32(1, marchX86_64)
	e.message(2, func(e *protoEnc) { threadInfo(e, th) })
	if leader {
		e.message(3, func(e *protoEnc) { taskCore(e, task, th) })
	}
	e.message(5, func(e *protoEnc) { threadCore(e, task, th, seccompLast) })
	return e.b
}

// zombieCoreEntry: a zombie's core_entry, a task_core_entry with its
// state, exit status and name.
func zombieCoreEntry(task *Task) []byte {
	var e protoEnc
	e.int32(1, marchX86_64)
	e.message(3, func(e *protoEnc) {
		e.uint32(1, taskDead)
		e.uint32(2, uint32(task.ExitStatus))
		e.uint32(3, 0) // personality
		e.uint32(4, 0) // flags
		e.uint64(5, 0) // blk_sigset
		e.string(6, task.Comm)
	})
	return e.b
}

// threadInfo: thread_info_x86.
func threadInfo(e *protoEnc, th *Thread) {
	e.uint64(1, th.ClearTID)
	e.message(2, func(e *protoEnc) { // user_x86_regs_entry
		r := &th.Regs
		for i, v := range []uint64{r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8,
			r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Orig_rax, r.Rip, r.Cs, r.Eflags, r.Rsp, r.Ss,
			r.Fs_base, r.Gs_base, r.Ds, r.Es, r.Fs, r.Gs} {
			e.uint64(protowire.Number(i+1), v)
		}
		e.int32(28, regsModeNative)
	})
	e.message(3, func(e *protoEnc) { fpregsEntry(e, th.Xsave) })
}

// threadCore: thread_core_entry.
func threadCore(e *protoEnc, task *Task, th *Thread, seccompLast uint32) {
	e.uint64(1, th.RobustList)
	e.uint32(2, th.RobustListLen)
	if s := th.Sched; s != nil {
		e.sint32(3, s.Nice)
		e.uint32(4, s.Policy)
		e.uint32(5, s.Prio)
	}
	e.uint64(6, th.SigMask)
	e.message(7, func(e *protoEnc) { // thread_sas_entry
		e.uint64(1, th.AltStack.SP)
		e.uint64(2, th.AltStack.Size)
		e.uint32(3, uint32(th.AltStack.Flags))
	})
	e.uint32(8, th.PdeathSig)
	sigQueue(e, 9, th.Pending)
	e.message(10, func(e *protoEnc) { credsEntry(e, &task.Creds) })
	if len(th.Seccomp) > 0 {
		e.uint32(11, seccompModeFilter)
		e.uint32(12, seccompLast)
	}
	if th.Comm != "" {
		e.string(13, th.Comm)
	}
	if rs := th.Rseq; rs.Addr != 0 || rs.Len != 0 || rs.Sig != 0 {
		e.message(15, func(e *protoEnc) { // rseq_entry
			e.uint64(1, rs.Addr)
			e.uint32(2, rs.Len)
			e.uint32(3, rs.Sig)
		})
	}
}

// taskCore: task_core_entry (the leader's th gives blk_sigset).
func taskCore(e *protoEnc, task *Task, th *Thread) {
	state := uint32(taskAlive)
	if task.Stopped {
		state = taskStopped
	}
	e.uint32(1, state)
	e.uint32(2, 0) // exit_code
	e.uint32(3, task.Personality)
	e.uint32(4, 0) // flags
	e.uint64(5, th.SigMask)
	e.string(6, task.Comm)
	e.message(7, func(e *protoEnc) { // task_timers_entry
		itimer(e, 1, task.Itimers[0])
		itimer(e, 2, task.Itimers[1])
		itimer(e, 3, task.Itimers[2])
		for _, pt := range task.PosixTimers {
			e.message(4, func(e *protoEnc) { posixTimer(e, pt) })
		}
	})
	if len(task.Rlimits) > 0 {
		e.message(8, func(e *protoEnc) { // task_rlimits_entry
			for _, rl := range task.Rlimits {
				e.message(1, func(e *protoEnc) {
					e.uint64(1, rl.Cur)
					e.uint64(2, rl.Max)
				})
			}
		})
	}
	sigQueue(e, 10, task.SharedPending)
	if task.OomScoreAdj != nil {
		e.int32(14, int32(*task.OomScoreAdj))
	}
	for _, sa := range task.SigActions {
		e.message(15, func(e *protoEnc) { // sa_entry
			e.uint64(1, sa.Handler)
			e.uint64(2, sa.Flags)
			e.uint64(3, sa.Restorer)
			e.uint64(4, sa.Mask)
		})
	}
	e.bool(18, task.ChildSubreaper)
}

// posixTimer: posix_timer_entry.
func posixTimer(e *protoEnc, pt PosixTimer) {
	e.uint32(1, uint32(pt.ID))
	e.uint32(2, uint32(pt.Clock))
	e.uint32(3, uint32(pt.Signo))
	e.uint32(4, uint32(pt.Notify))
	e.uint64(5, pt.SigValue)
	e.uint32(6, uint32(pt.Overrun))
	e.uint64(7, uint64(pt.IntervalNsec/1e9))
	e.uint64(8, uint64(pt.IntervalNsec%1e9))
	e.uint64(9, uint64(pt.ValueNsec/1e9))
	e.uint64(10, uint64(pt.ValueNsec%1e9))
	if pt.Notify == SigevThreadID {
		e.int32(11, pt.NotifyTID)
	}
}

// xsave layout (the standard, non-compacted format of NT_X86_XSTATE).
const (
	fxsaveSize   = 512
	xsaveHdrOff  = 512 // xstate_bv is its first u64
	ymmhOff      = 576
	ymmhSize     = 256
	xsaveMinSize = xsaveHdrOff + 64
)

func u32s(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// fpregsEntry writes CRIU's user_x86_fpregs_entry from the raw xsave area
// as far as CRIU's fields reach (fxsave part, xstate_bv, AVX upper
// halves...). The exact bytes are kept in the extension file.
func fpregsEntry(e *protoEnc, x []byte) {
	var fx [fxsaveSize]byte
	copy(fx[:], x)
	le := binary.LittleEndian
	e.uint32(1, uint32(le.Uint16(fx[0:]))) // cwd
	e.uint32(2, uint32(le.Uint16(fx[2:]))) // swd
	e.uint32(3, uint32(le.Uint16(fx[4:]))) // twd
	e.uint32(4, uint32(le.Uint16(fx[6:]))) // fop
	e.uint64(5, le.Uint64(fx[8:]))         // rip
	e.uint64(6, le.Uint64(fx[16:]))        // rdp
	e.uint32(7, le.Uint32(fx[24:]))        // mxcsr
	e.uint32(8, le.Uint32(fx[28:]))        // mxcsr_mask
	e.uint32s(9, u32s(fx[32:160]))         // st_space
	e.uint32s(10, u32s(fx[160:416]))       // xmm_space
	e.uint32s(11, u32s(fx[416:512]))       // padding
	if len(x) < xsaveMinSize {
		return
	}
	bv := le.Uint64(x[xsaveHdrOff:])
	// Components at their standard-format offsets (what NT_X86_XSTATE
	// uses), when present.
	part := func(bit uint, off, size int) []byte {
		if bv&(1<<bit) == 0 || len(x) < off+size {
			return nil
		}
		return x[off : off+size]
	}
	e.message(13, func(e *protoEnc) { // user_x86_xsave_entry
		e.uint64(1, bv)
		e.uint32s(2, u32s(part(2, ymmhOff, ymmhSize))) // ymmh_space
		e.uint64s(3, u64s(part(3, 960, 64)))           // bndreg_state
		e.uint64s(4, u64s(part(4, 1024, 64)))          // bndcsr_state
		e.uint64s(5, u64s(part(5, 1088, 64)))          // opmask_reg
		e.uint64s(6, u64s(part(6, 1152, 512)))         // zmm_upper
		e.uint64s(7, u64s(part(7, 1664, 1024)))        // hi16_zmm
		e.uint32s(8, u32s(part(9, 2688, 8)))           // pkru
	})
}

func u64s(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}

// ghostEntry: ghost_file_entry of a deleted file of size bytes.
func ghostEntry(st fs.FileInfo, size int64, chunked bool) []byte {
	uid, gid, mode := uint32(0), uint32(0), uint32(st.Mode().Perm())|syscall.S_IFREG
	sys, _ := st.Sys().(*syscall.Stat_t)
	if sys != nil {
		uid, gid, mode = sys.Uid, sys.Gid, sys.Mode
	}
	var e protoEnc
	e.uint32(1, uid)
	e.uint32(2, gid)
	e.uint32(3, mode)
	if sys != nil {
		e.uint64(5, sys.Ino)
		timeval(&e, 7, sys.Atim) // atim
		timeval(&e, 8, sys.Mtim) // mtim
	}
	e.bool(9, chunked) // chunks
	e.uint64(10, uint64(size))
	return e.b
}

// timeval: a timeval field (microseconds, as CRIU).
func timeval(e *protoEnc, num protowire.Number, ts syscall.Timespec) {
	e.message(num, func(e *protoEnc) {
		e.uint64(1, uint64(ts.Sec))
		e.uint64(2, uint64(ts.Nsec/1000))
	})
}

// ghostChunkEntry: ghost_chunk_entry.
func ghostChunkEntry(s segment) []byte {
	var e protoEnc
	e.uint64(1, uint64(s.len))
	e.uint64(2, uint64(s.off))
	return e.b
}

// checkPidfds checks that every pidfd refers to a task of the tree.
func checkPidfds(t *Tree) error {
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind == FDPidfd && t.TaskByPID(fd.PidfdPID) == nil {
				return fmt.Errorf("task %d: fd %d: pidfd of %d, no task of the tree", task.PID, fd.Num, fd.PidfdPID)
			}
		}
	}
	return nil
}

// checkOwners checks that every fd's owner is a thread, a task or a
// process group of the tree (restore sets it again once they exist) and
// its signal a signal.
func checkOwners(t *Tree) error {
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			o := fd.Owner
			if o == nil || fd.Kind == FDExternal {
				continue // restore hands over its own stdio as it is
			}
			if o.Signal < 0 || o.Signal > 64 || o.PID < 0 {
				return fmt.Errorf("task %d: fd %d: owner %d, signal %d", task.PID, fd.Num, o.PID, o.Signal)
			}
			if o.PID != 0 && !t.hasOwner(o.Type, o.PID) {
				return fmt.Errorf("task %d: fd %d: its owner (F_SETOWN) %s %d is not of the tree", task.PID, fd.Num, ownerTypeName(o.Type), o.PID)
			}
		}
	}
	return nil
}

// hasOwner reports a thread (F_OWNER_TID), task (F_OWNER_PID) or process
// group (F_OWNER_PGRP) of the tree with that id.
func (t *Tree) hasOwner(typ, id int) bool {
	for _, task := range t.Tasks {
		switch typ {
		case kernel.FOwnerTID:
			for _, th := range task.Threads {
				if th.TID == id {
					return true
				}
			}
		case kernel.FOwnerPID:
			if task.PID == id {
				return true
			}
		case kernel.FOwnerPGRP:
			if task.PGID == id {
				return true
			}
		}
	}
	return false
}

func ownerTypeName(typ int) string {
	switch typ {
	case kernel.FOwnerTID:
		return "thread"
	case kernel.FOwnerPID:
		return "process"
	case kernel.FOwnerPGRP:
		return "process group"
	}
	return fmt.Sprintf("owner type %d", typ)
}

// checkFDKind checks what an fd's kind needs: an eventfd its state, and no
// kind-specific state where it means nothing. An epoll's targets are
// checked tree-wide (checkEpolls).
func checkFDKind(task *Task, fd *FD) error {
	if (fd.Kind == FDEventfd) != (fd.Eventfd != nil) {
		return fmt.Errorf("fd %d: eventfd state on a %s fd, or none on an eventfd", fd.Num, fd.Kind)
	}
	if (fd.Kind == FDSignalfd) != (fd.Signalfd != nil) || (fd.Kind == FDTimerfd) != (fd.Timerfd != nil) {
		return fmt.Errorf("fd %d: signalfd or timerfd state on a %s fd, or none on one", fd.Num, fd.Kind)
	}
	if fd.Timerfd != nil {
		if err := checkTimerfd(fd.Timerfd); err != nil {
			return fmt.Errorf("fd %d: %w", fd.Num, err)
		}
	}
	if (fd.Kind == FDPidfd) != (fd.PidfdPID != 0) {
		return fmt.Errorf("fd %d: a pidfd's process on a %s fd, or none on a pidfd", fd.Num, fd.Kind)
	}
	if fd.Kind != FDInotify && len(fd.Inotify) > 0 {
		return fmt.Errorf("fd %d: inotify watches on a %s fd", fd.Num, fd.Kind)
	}
	if err := checkInotify(fd.Inotify); err != nil {
		return fmt.Errorf("fd %d: %w", fd.Num, err)
	}
	if fd.Kind != FDEpoll && len(fd.Epoll) > 0 {
		return fmt.Errorf("fd %d: epoll targets on a %s fd", fd.Num, fd.Kind)
	}
	return nil
}

// checkEpolls checks that every epoll's targets are other fds of the task
// that registers them again at restore: the first in the tree that holds
// the epoll (one a child inherited may have closed some since).
func checkEpolls(t *Tree) error {
	first := make(map[uint32]bool)
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDEpoll || fd.OpenID != 0 && first[fd.OpenID] {
				continue
			}
			first[fd.OpenID] = true
			for _, tg := range fd.Epoll {
				if tg.FD == fd.Num || !slices.ContainsFunc(task.FDs, func(o *FD) bool { return o != nil && o.Num == tg.FD }) {
					return fmt.Errorf("task %d: epoll fd %d watches fd %d, which is not another fd of the task", task.PID, fd.Num, tg.FD)
				}
			}
		}
	}
	return nil
}
