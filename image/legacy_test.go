package image

import (
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"syscall"
	"testing"

	core_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	criu_sa "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-sa"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventpoll"
	ext_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ext-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fifo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap_file_path "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rlimit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rseq"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/siginfo"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	sk_unix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	crtime "github.com/checkpoint-restore/go-criu/v7/crit/images/time"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// The encoder of mmcr before wire.go, kept verbatim but for names (and the
// writer it wrote through) as the reference of wire_compat_test.go.

// legacyWriter collects images the way Writer.writeImage framed them.
type legacyWriter struct {
	tb  testing.TB
	out map[string][]byte
}

func (w legacyWriter) writeImage(name, magicName string, entries ...proto.Message) error {
	w.out[name] = encodeImage(w.tb, magicName, entries...)
	return nil
}

// legacyPagemap is PageWriter.Close's pagemap image as it was.
func legacyPagemap(tb testing.TB, pagesID uint32, runs []PageRun) []byte {
	entries := []proto.Message{&pagemap.PagemapHead{PagesId: proto.Uint32(pagesID)}}
	for _, r := range runs {
		for a, left := r.Addr, r.Len/PageSize; left > 0; {
			n := min(left, maxRunPages)
			entries = append(entries, &pagemap.PagemapEntry{Vaddr: proto.Uint64(a),
				NrPages: proto.Uint32(uint32(n)), Flags: proto.Uint32(pePresent)})
			a += n * PageSize
			left -= n
		}
	}
	return encodeImage(tb, "PAGEMAP", entries...)
}

// legacyImages is mmcr's writeTree as it was with go-criu's types and
// proto.Marshal: the metadata files of t's image (ghosts: the File IDs
// with ghost content), the reference the hand-written encoder must match
// byte for byte.
func legacyImages(tb testing.TB, t *Tree, ghosts map[uint32]bool) map[string][]byte {
	out := map[string][]byte{}
	w := legacyWriter{tb: tb, out: out}
	root := uint32(t.Tasks[0].PID)
	var ps []proto.Message
	for i, task := range t.Tasks {
		ppid := uint32(task.PPID)
		if i == 0 {
			ppid = 0 // CRIU's mark of the root; its real parent is in the extension file
		}
		e := &pstree.PstreeEntry{Pid: proto.Uint32(uint32(task.PID)), Ppid: proto.Uint32(ppid),
			Pgid: proto.Uint32(uint32(task.PGID)), Sid: proto.Uint32(uint32(task.SID))}
		for _, th := range task.Threads {
			e.Threads = append(e.Threads, uint32(th.TID))
		}
		ps = append(ps, e)
	}
	if err := w.writeImage(pstreeName, "PSTREE", ps...); err != nil {
		return nil
	}

	ext := extImage{Format: extFormat, Version: extVersion, RootPPID: t.Tasks[0].PPID}
	for _, f := range t.Files {
		ext.Files = append(ext.Files, extFile{ID: f.ID, Dev: f.Dev, Ino: f.Ino, MtimeNsec: f.MtimeNsec,
			UID: f.UID, GID: f.GID, Deleted: f.Deleted, Renamed: f.Renamed})
	}
	for _, so := range t.SharedObjects {
		ext.SharedObjects = append(ext.SharedObjects, extShm{ID: so.ID, Dev: so.Dev, Ino: so.Ino,
			Size: so.Size, Memfd: so.Memfd, Name: so.Name})
	}

	// files.img: first the files of the tree (id = File.ID), then one entry
	// per file descriptor (its own open file description: flags, pos).
	var files []proto.Message
	for _, f := range t.Files {
		files = append(files, &fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(f.ID),
			Reg: &regfile.RegFileEntry{Id: proto.Uint32(f.ID), Flags: proto.Uint32(0), Pos: proto.Uint64(0),
				Fown: legacyZeroFown(), Name: proto.String(f.Path), Size: proto.Uint64(uint64(f.Size)),
				Mode: proto.Uint32(f.Mode)}})
	}
	nextID := uint32(len(t.Files)) + 1

	// A memfd object is, as in CRIU, a MEMFD file entry (what memfd VMAs'
	// shmid names) pointing at a memfd-inode.img entry whose shmid names
	// its pagemap-shmem image. mmcr uses the SharedObject ID for both the
	// inode id and the shmid.
	memfdFile := map[uint32]uint32{}
	var inodes []proto.Message
	for _, so := range t.SharedObjects {
		if !so.Memfd {
			continue
		}
		id := nextID
		nextID++
		memfdFile[so.ID] = id
		files = append(files, &fdinfo.FileEntry{Type: fdinfo.FdTypes_MEMFD.Enum(), Id: proto.Uint32(id),
			Memfd: &memfd.MemfdFileEntry{Id: proto.Uint32(id), Flags: proto.Uint32(unix.O_RDWR), Pos: proto.Uint64(0),
				Fown: legacyZeroFown(), InodeId: proto.Uint32(so.ID)}})
		inodes = append(inodes, &memfd.MemfdInodeEntry{Name: proto.String("memfd:" + so.Name), Uid: proto.Uint32(0),
			Gid: proto.Uint32(0), Size: proto.Uint64(so.Size), Shmid: proto.Uint32(so.ID), Seals: proto.Uint32(0),
			InodeId: proto.Uint64(uint64(so.ID))})
	}
	if len(inodes) > 0 {
		if err := w.writeImage(memfdInodeName, "MEMFD_INODE", inodes...); err != nil {
			return nil
		}
	}

	openFile := map[uint32]uint32{} // OpenID: its file entry id
	sockFile := map[uint32]uint32{} // socket ID: its file entry id
	for _, task := range t.Tasks {
		et := extTask{PID: task.PID, CapAmb: task.Creds.CapAmb, NoNewPrivs: task.Creds.NoNewPrivs, MDWE: task.Mm.MDWE, MergeAny: task.Mm.MergeAny}
		for _, r := range task.ParentPages {
			et.ParentPages = append(et.ParentPages, [2]uint64{r.Start, r.End})
		}
		// ids-PID.img: crit's explore commands find fdinfo-FILES_ID.img through it.
		if err := w.writeImage(idsName(task.PID), "IDS", legacyKobjIDs(uint32(task.PID))); err != nil {
			return nil
		}
		for i, th := range task.Threads {
			et.Threads = append(et.Threads, extThread{TID: th.TID, Xsave: th.Xsave, TimerSlackNs: th.TimerSlackNs})
			if err := w.writeImage(coreName(th.TID), "CORE", legacyCoreEntry(task, th, i == 0)); err != nil {
				return nil
			}
		}
		me := &mm.MmEntry{
			MmStartCode: proto.Uint64(task.Mm.StartCode), MmEndCode: proto.Uint64(task.Mm.EndCode),
			MmStartData: proto.Uint64(task.Mm.StartData), MmEndData: proto.Uint64(task.Mm.EndData),
			MmStartStack: proto.Uint64(task.Mm.StartStack),
			MmStartBrk:   proto.Uint64(task.Mm.StartBrk), MmBrk: proto.Uint64(task.Mm.Brk),
			MmArgStart: proto.Uint64(task.Mm.ArgStart), MmArgEnd: proto.Uint64(task.Mm.ArgEnd),
			MmEnvStart: proto.Uint64(task.Mm.EnvStart), MmEnvEnd: proto.Uint64(task.Mm.EnvEnd),
			ExeFileId: proto.Uint32(task.Mm.ExeFileID), MmSavedAuxv: task.Mm.Auxv,
			Dumpable: proto.Int32(task.Mm.Dumpable), ThpDisabled: proto.Bool(task.Mm.THPDisabled),
		}
		for _, r := range task.Mm.AIORings {
			me.Aios = append(me.Aios, &mm.AioRingEntry{Id: proto.Uint64(r.Addr), NrReq: proto.Uint32(r.NrReq), RingLen: proto.Uint32(uint32(r.Len))})
		}
		for _, v := range task.VMAs {
			ev := extVMA{Name: v.Name, VmFlags: v.VmFlags, VvarVclock: v.Kind == KindVVARVclock, FromParent: v.FromParent}
			if v.FromParent {
				ext.Version = extVersionCOW
			}
			var shmid uint64
			switch v.Kind {
			case KindPrivateFile, KindSharedFile:
				shmid = uint64(v.FileID)
				ev.ShmID = v.ShmID
			case KindSharedAnon:
				shmid = uint64(v.ShmID)
				ev.FileID = v.FileID
			case KindMemfd:
				shmid = uint64(memfdFile[v.ShmID])
				ev.FileID = v.FileID
			default:
				ev.FileID, ev.ShmID = v.FileID, v.ShmID
			}
			et.VMAs = append(et.VMAs, ev)
			me.Vmas = append(me.Vmas, &vma.VmaEntry{Start: proto.Uint64(v.Start), End: proto.Uint64(v.End),
				Pgoff: proto.Uint64(v.Pgoff), Shmid: proto.Uint64(shmid), Prot: proto.Uint32(v.Prot),
				Flags: proto.Uint32(v.Flags), Status: proto.Uint32(vmaStatus(v.Kind)), Fd: proto.Int64(-1),
				Madv: proto.Uint64(v.Madv)})
		}
		if err := w.writeImage(mmName(task.PID), "MM", me); err != nil {
			return nil
		}
		fse := &fsimg.FsEntry{CwdId: proto.Uint32(task.CwdFileID), RootId: proto.Uint32(task.RootFileID),
			Umask: proto.Uint32(task.Umask)}
		if err := w.writeImage(fsName(task.PID), "FS", fse); err != nil {
			return nil
		}
		var fdis []proto.Message
		// The file entry id of each fd: an epoll's targets name theirs.
		// Fds sharing an open file description share its entry.
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
			fdi := &fdinfo.FdinfoEntry{Id: proto.Uint32(id), Fd: proto.Uint32(uint32(fd.Num)), Flags: proto.Uint32(0)}
			if fd.Flags&oCloexec != 0 {
				fdi.Flags = proto.Uint32(fdCloexec)
			}
			if fd.OpenID != 0 {
				ext.Version = max(ext.Version, extVersion5)
			}
			var fe *fdinfo.FileEntry
			switch fd.Kind {
			case FDEventfd:
				fdi.Type = fdinfo.FdTypes_EVENTFD.Enum()
				efd.EventfdSemaphore = fd.Eventfd.Semaphore
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_EVENTFD.Enum(), Id: proto.Uint32(id),
					Efd: &eventfd.EventfdFileEntry{Id: proto.Uint32(id), Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec),
						Fown: legacyZeroFown(), Counter: proto.Uint64(fd.Eventfd.Count)}}
			case FDEpoll:
				fdi.Type = fdinfo.FdTypes_EVENTPOLL.Enum()
				ep := &eventpoll.EventpollFileEntry{Id: proto.Uint32(id), Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec),
					Fown: legacyZeroFown()}
				for _, tg := range fd.Epoll {
					ep.Tfd = append(ep.Tfd, &eventpoll.EventpollTfdEntry{Id: proto.Uint32(fdIDs[tg.FD]),
						Tfd: proto.Uint32(uint32(tg.FD)), Events: proto.Uint32(tg.Events), Data: proto.Uint64(tg.Data)})
				}
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_EVENTPOLL.Enum(), Id: proto.Uint32(id), Epfd: ep}
			case FDExternal:
				fdi.Type = fdinfo.FdTypes_EXT.Enum()
				efd.Flags, efd.Pos = fd.Flags, fd.Pos
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_EXT.Enum(), Id: proto.Uint32(id),
					Ext: &ext_file.ExtFileEntry{Id: proto.Uint32(id), Fown: legacyZeroFown()}}
			case FDPipe:
				fdi.Type = fdinfo.FdTypes_PIPE.Enum()
				p := t.PipeByID(fd.PipeID)
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_PIPE.Enum(), Id: proto.Uint32(id),
					Pipe: &pipe.PipeEntry{Id: proto.Uint32(id), PipeId: proto.Uint32(p.Ino),
						Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec), Fown: legacyZeroFown()}}
				if p.FileID != 0 {
					fdi.Type = fdinfo.FdTypes_FIFO.Enum()
					efd.Flags = int(uint32(fd.Flags) &^ oCloexec)
					fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_FIFO.Enum(), Id: proto.Uint32(id),
						Fifo: &fifo.FifoEntry{Id: proto.Uint32(id), PipeId: proto.Uint32(p.Ino), RegfId: proto.Uint32(p.FileID)}}
				}
			case FDInet:
				ext.Version = max(ext.Version, extVersion8)
				fdi.Type = fdinfo.FdTypes_INETSK.Enum()
				sk := t.InetByID(fd.InetID)
				z := proto.Uint64(0)
				raw := sk.Addr.Addr().AsSlice()
				typ, prot, state := uint32(unix.SOCK_STREAM), uint32(unix.IPPROTO_TCP), uint32(10) // TCP_LISTEN
				if sk.UDP {
					typ, prot, state = unix.SOCK_DGRAM, unix.IPPROTO_UDP, 7 // TCP_CLOSE
					if sk.Peer.IsValid() {
						state = 1 // TCP_ESTABLISHED
					}
				}
				isk := &sk_inet.InetSkEntry{Id: proto.Uint32(id), Ino: proto.Uint32(sk.Ino), Family: proto.Uint32(uint32(sk.Family())),
					Type: proto.Uint32(typ), Proto: proto.Uint32(prot), State: proto.Uint32(state),
					SrcPort: proto.Uint32(uint32(sk.Addr.Port())), DstPort: proto.Uint32(uint32(sk.Peer.Port())),
					Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec), Backlog: proto.Uint32(sk.Backlog), Fown: legacyZeroFown(),
					Opts: &sk_opts.SkOptsEntry{SoSndbuf: proto.Uint32(sk.Opts.SndBuf), SoRcvbuf: proto.Uint32(sk.Opts.RcvBuf),
						SoSndTmoSec: z, SoSndTmoUsec: z, SoRcvTmoSec: z, SoRcvTmoUsec: z,
						Reuseaddr: proto.Bool(sk.ReuseAddr), SoReuseport: proto.Bool(sk.ReusePort),
						SoPriority: proto.Uint32(sk.Opts.Priority), SoRcvlowat: proto.Uint32(sk.Opts.RcvLowat),
						SoDontroute: proto.Bool(sk.Opts.DontRoute), SoBroadcast: proto.Bool(sk.Opts.Broadcast),
						SoKeepalive: proto.Bool(sk.Opts.KeepAlive), SoOobinline: proto.Uint32(boolUint32(sk.Opts.OOBInline)),
						SoBufLock: proto.Uint32(sk.Opts.BufLock)}}
				if !sk.UDP {
					isk.Opts.TcpKeepcnt, isk.Opts.TcpKeepidle = proto.Uint32(sk.Opts.KeepCnt), proto.Uint32(sk.Opts.KeepIdle)
					isk.Opts.TcpKeepintvl = proto.Uint32(sk.Opts.KeepIntvl)
				}
				if sk.Opts.Linger != nil {
					isk.Opts.SoLinger = proto.Uint32(*sk.Opts.Linger)
				}
				dst := make([]byte, len(raw))
				if sk.Peer.IsValid() {
					dst = sk.Peer.Addr().AsSlice()
				}
				for i := 0; i < len(raw); i += 4 {
					isk.SrcAddr = append(isk.SrcAddr, binary.LittleEndian.Uint32(raw[i:]))
					isk.DstAddr = append(isk.DstAddr, binary.LittleEndian.Uint32(dst[i:]))
				}
				if sk.Family() == unix.AF_INET6 {
					isk.V6Only = proto.Bool(sk.V6Only)
				}
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_INETSK.Enum(), Id: proto.Uint32(id), Isk: isk}
			case FDSocket:
				fdi.Type = fdinfo.FdTypes_UNIXSK.Enum()
				sk := t.SocketByID(fd.SocketID)
				z := proto.Uint64(0)
				usk := &sk_unix.UnixSkEntry{Id: proto.Uint32(id), Ino: proto.Uint32(sk.Ino), Type: proto.Uint32(uint32(sk.Type)),
					State: proto.Uint32(uint32(sk.State)), Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec),
					Uflags: proto.Uint32(0), Backlog: proto.Uint32(sk.Backlog), Peer: proto.Uint32(0),
					Fown: legacyZeroFown(), Opts: &sk_opts.SkOptsEntry{SoSndbuf: proto.Uint32(sk.SndBuf), SoRcvbuf: proto.Uint32(sk.RcvBuf),
						SoSndTmoSec: z, SoSndTmoUsec: z, SoRcvTmoSec: z, SoRcvTmoUsec: z},
					Name: append([]byte{}, sk.Name...)}
				if p := sk.Perms; p != nil {
					usk.FilePerms = &sk_unix.FilePermsEntry{Mode: proto.Uint32(p.Mode), Uid: proto.Uint32(p.UID), Gid: proto.Uint32(p.GID)}
				}
				if sk.Shutdown != 0 {
					usk.Shutdown = sk_opts.SkShutdown(sk.Shutdown).Enum()
				}
				if p := t.SocketByID(sk.Peer); p != nil {
					usk.Peer = proto.Uint32(p.Ino)
				}
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_UNIXSK.Enum(), Id: proto.Uint32(id), Usk: usk}
				sockFile[sk.ID] = id
			default:
				fdi.Type = fdinfo.FdTypes_REG.Enum()
				var path string
				var size uint64
				var mode uint32
				if f := t.FileByID(fd.FileID); f != nil {
					path, size, mode = f.Path, uint64(f.Size), f.Mode
				}
				fe = &fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: proto.Uint32(id),
					Reg: &regfile.RegFileEntry{Id: proto.Uint32(id), Flags: proto.Uint32(uint32(fd.Flags) &^ oCloexec),
						Pos: proto.Uint64(uint64(fd.Pos)), Fown: legacyZeroFown(), Name: proto.String(path),
						Size: proto.Uint64(size), Mode: proto.Uint32(mode)}}
			}
			if own[fd.Num] {
				files = append(files, fe)
			}
			et.FDs = append(et.FDs, efd)
			fdis = append(fdis, fdi)
		}
		if err := w.writeImage(fdinfoName(task.PID), "FDINFO", fdis...); err != nil {
			return nil
		}
		ext.Tasks = append(ext.Tasks, et)
	}
	if err := w.writeImage(filesName, "FILES", files...); err != nil {
		return nil
	}
	// Each pipe_data_entry is followed by the pipe's bytes; a FIFO's go to
	// fifo-data.img.
	for _, f := range []struct {
		name, magic string
		fifo        bool
	}{{pipesDataName, "PIPES_DATA", false}, {fifoDataName, "FIFO_DATA", true}} {
		data := encodeImage(tb, f.magic)
		n := 0
		for _, p := range t.Pipes {
			if (p.FileID != 0) != f.fifo {
				continue
			}
			e, err := proto.Marshal(&pipe_data.PipeDataEntry{PipeId: proto.Uint32(p.Ino),
				Bytes: proto.Uint32(uint32(len(p.Data))), Size: proto.Uint32(p.Size)})
			if err != nil {
				tb.Fatal(err)
			}
			data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
			data = append(append(data, e...), p.Data...)
			n++
		}
		if n > 0 {
			out[f.name] = data
		}
	}
	if len(t.Sockets) > 0 {
		// Each sk_packet_entry is followed by the message's bytes.
		data := encodeImage(tb, "SK_QUEUES")
		for _, sk := range t.Sockets {
			for _, m := range sk.Queue {
				e, err := proto.Marshal(&sk_packet.SkPacketEntry{IdFor: proto.Uint32(sockFile[sk.ID]), Length: proto.Uint32(uint32(len(m)))})
				if err != nil {
					tb.Fatal(err)
				}
				data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
				data = append(append(data, e...), m...)
			}
		}
		out[skQueuesName] = data
	}

	// remap-fpath.img tells CRIU tools which files have ghost content.
	var remaps []proto.Message
	for _, f := range t.Files {
		if ghosts[f.ID] {
			remaps = append(remaps, &remap_file_path.RemapFilePathEntry{OrigId: proto.Uint32(f.ID),
				RemapId: proto.Uint32(f.ID), RemapType: remap_file_path.RemapType_GHOST.Enum()})
		}
	}
	if len(remaps) > 0 {
		if err := w.writeImage(remapName, "REMAP_FPATH", remaps...); err != nil {
			return nil
		}
	}

	// The inventory and the extension file go last: a directory with an
	// inventory but no extension file is then not an interrupted mmcr dump
	// but someone else's (CRIU's) image, and Open can say so.
	inv := &inventory.InventoryEntry{
		ImgVersion:  proto.Uint32(criuImagesV1_1),
		FdinfoPerId: proto.Bool(true),
		RootIds:     legacyKobjIDs(root),
		Lsmtype:     inventory.Lsmtype_NO_LSM.Enum(),
	}
	if err := w.writeImage(inventoryName, "INVENTORY", inv); err != nil {
		return nil
	}
	data, err := json.MarshalIndent(&ext, "", " ")
	if err != nil {
		tb.Fatal(err)
	}
	out[ExtName] = append(data, '\n')
	return out
}

func legacyZeroFown() *fown.FownEntry {
	z := proto.Uint32(0)
	return &fown.FownEntry{Uid: z, Euid: z, Signum: z, PidType: z, Pid: z}
}

func legacyKobjIDs(pid uint32) *criu_core.TaskKobjIdsEntry {
	return &criu_core.TaskKobjIdsEntry{VmId: proto.Uint32(pid), FilesId: proto.Uint32(pid),
		FsId: proto.Uint32(pid), SighandId: proto.Uint32(pid)}
}

func legacySigQueue(sigs []SigInfo) *siginfo.SignalQueueEntry {
	if len(sigs) == 0 {
		return nil
	}
	q := &siginfo.SignalQueueEntry{}
	for i := range sigs {
		q.Signals = append(q.Signals, &siginfo.SiginfoEntry{Siginfo: append([]byte(nil), sigs[i][:]...)})
	}
	return q
}

func legacyItimer(it Itimer) *timer.ItimerEntry {
	return &timer.ItimerEntry{
		Isec: proto.Uint64(uint64(it.IntervalUsec / 1e6)), Iusec: proto.Uint64(uint64(it.IntervalUsec % 1e6)),
		Vsec: proto.Uint64(uint64(it.ValueUsec / 1e6)), Vusec: proto.Uint64(uint64(it.ValueUsec % 1e6)),
	}
}

func legacyCredsEntry(c *Creds) *creds.CredsEntry {
	return &creds.CredsEntry{
		Uid: proto.Uint32(c.UID), Gid: proto.Uint32(c.GID), Euid: proto.Uint32(c.EUID), Egid: proto.Uint32(c.EGID),
		Suid: proto.Uint32(c.SUID), Sgid: proto.Uint32(c.SGID), Fsuid: proto.Uint32(c.FSUID), Fsgid: proto.Uint32(c.FSGID),
		CapInh: capWords(c.CapInh), CapPrm: capWords(c.CapPrm), CapEff: capWords(c.CapEff), CapBnd: capWords(c.CapBnd),
		Secbits: proto.Uint32(c.Securebits), Groups: c.Groups,
	}
}

// coreEntry builds core-TID.img. The leader's carries the task-wide part (tc).
func legacyCoreEntry(task *Task, th *Thread, leader bool) *criu_core.CoreEntry {
	r := &th.Regs
	gp := &core_x86.UserX86RegsEntry{
		R15: proto.Uint64(r.R15), R14: proto.Uint64(r.R14), R13: proto.Uint64(r.R13), R12: proto.Uint64(r.R12),
		Bp: proto.Uint64(r.Rbp), Bx: proto.Uint64(r.Rbx), R11: proto.Uint64(r.R11), R10: proto.Uint64(r.R10),
		R9: proto.Uint64(r.R9), R8: proto.Uint64(r.R8), Ax: proto.Uint64(r.Rax), Cx: proto.Uint64(r.Rcx),
		Dx: proto.Uint64(r.Rdx), Si: proto.Uint64(r.Rsi), Di: proto.Uint64(r.Rdi), OrigAx: proto.Uint64(r.Orig_rax),
		Ip: proto.Uint64(r.Rip), Cs: proto.Uint64(r.Cs), Flags: proto.Uint64(r.Eflags), Sp: proto.Uint64(r.Rsp),
		Ss: proto.Uint64(r.Ss), FsBase: proto.Uint64(r.Fs_base), GsBase: proto.Uint64(r.Gs_base),
		Ds: proto.Uint64(r.Ds), Es: proto.Uint64(r.Es), Fs: proto.Uint64(r.Fs), Gs: proto.Uint64(r.Gs),
		Mode: core_x86.UserX86RegsMode_NATIVE.Enum(),
	}
	ce := &criu_core.CoreEntry{
		Mtype: criu_core.CoreEntry_X86_64.Enum(),
		ThreadInfo: &core_x86.ThreadInfoX86{ClearTidAddr: proto.Uint64(th.ClearTID), Gpregs: gp,
			Fpregs: legacyFpregsEntry(th.Xsave)},
		ThreadCore: &criu_core.ThreadCoreEntry{
			FutexRla: proto.Uint64(th.RobustList), FutexRlaLen: proto.Uint32(th.RobustListLen),
			BlkSigset: proto.Uint64(th.SigMask),
			Sas: &criu_core.ThreadSasEntry{SsSp: proto.Uint64(th.AltStack.SP), SsSize: proto.Uint64(th.AltStack.Size),
				SsFlags: proto.Uint32(uint32(th.AltStack.Flags))},
			SignalsP:  legacySigQueue(th.Pending),
			Creds:     legacyCredsEntry(&task.Creds),
			PdeathSig: proto.Uint32(th.PdeathSig),
		},
	}
	if th.Comm != "" {
		ce.ThreadCore.Comm = proto.String(th.Comm)
	}
	if s := th.Sched; s != nil {
		ce.ThreadCore.SchedPolicy = proto.Uint32(s.Policy)
		ce.ThreadCore.SchedPrio = proto.Uint32(s.Prio)
		ce.ThreadCore.SchedNice = proto.Int32(s.Nice)
	}
	if th.Rseq.Addr != 0 || th.Rseq.Len != 0 || th.Rseq.Sig != 0 {
		ce.ThreadCore.RseqEntry = &rseq.RseqEntry{RseqAbiPointer: proto.Uint64(th.Rseq.Addr),
			RseqAbiSize: proto.Uint32(th.Rseq.Len), Signature: proto.Uint32(th.Rseq.Sig)}
	}
	if !leader {
		return ce
	}
	state := uint32(taskAlive)
	if task.Stopped {
		state = taskStopped
	}
	tc := &criu_core.TaskCoreEntry{
		TaskState: proto.Uint32(state), ExitCode: proto.Uint32(0),
		Personality: proto.Uint32(task.Personality), Flags: proto.Uint32(0),
		BlkSigset: proto.Uint64(th.SigMask), Comm: proto.String(task.Comm),
		Timers: &timer.TaskTimersEntry{Real: legacyItimer(task.Itimers[0]), Virt: legacyItimer(task.Itimers[1]),
			Prof: legacyItimer(task.Itimers[2])},
		SignalsS:       legacySigQueue(task.SharedPending),
		ChildSubreaper: proto.Bool(task.ChildSubreaper),
	}
	if task.OomScoreAdj != nil {
		tc.OomScoreAdj = proto.Int32(int32(*task.OomScoreAdj))
	}
	if len(task.Rlimits) > 0 {
		tc.Rlimits = &criu_core.TaskRlimitsEntry{}
		for _, rl := range task.Rlimits {
			tc.Rlimits.Rlimits = append(tc.Rlimits.Rlimits, &rlimit.RlimitEntry{Cur: proto.Uint64(rl.Cur), Max: proto.Uint64(rl.Max)})
		}
	}
	for _, sa := range task.SigActions {
		tc.Sigactions = append(tc.Sigactions, &criu_sa.SaEntry{Sigaction: proto.Uint64(sa.Handler),
			Flags: proto.Uint64(sa.Flags), Restorer: proto.Uint64(sa.Restorer), Mask: proto.Uint64(sa.Mask)})
	}
	ce.Tc = tc
	return ce
}

// fpregsEntry fills CRIU's fpregs from the raw xsave area as far as CRIU's
// fields reach (fxsave part, xstate_bv, AVX upper halves). The exact bytes
// are kept in the extension file.
func legacyFpregsEntry(x []byte) *core_x86.UserX86FpregsEntry {
	var fx [fxsaveSize]byte
	copy(fx[:], x)
	le := binary.LittleEndian
	e := &core_x86.UserX86FpregsEntry{
		Cwd: proto.Uint32(uint32(le.Uint16(fx[0:]))), Swd: proto.Uint32(uint32(le.Uint16(fx[2:]))),
		Twd: proto.Uint32(uint32(le.Uint16(fx[4:]))), Fop: proto.Uint32(uint32(le.Uint16(fx[6:]))),
		Rip: proto.Uint64(le.Uint64(fx[8:])), Rdp: proto.Uint64(le.Uint64(fx[16:])),
		Mxcsr: proto.Uint32(le.Uint32(fx[24:])), MxcsrMask: proto.Uint32(le.Uint32(fx[28:])),
		StSpace: u32s(fx[32:160]), XmmSpace: u32s(fx[160:416]), Padding: u32s(fx[416:512]),
	}
	if len(x) >= xsaveMinSize {
		bv := le.Uint64(x[xsaveHdrOff:])
		xs := &core_x86.UserX86XsaveEntry{XstateBv: proto.Uint64(bv)}
		// Components at their standard-format offsets (what NT_X86_XSTATE
		// uses), when present.
		part := func(bit uint, off, size int) []byte {
			if bv&(1<<bit) == 0 || len(x) < off+size {
				return nil
			}
			return x[off : off+size]
		}
		if b := part(2, ymmhOff, ymmhSize); b != nil {
			xs.YmmhSpace = u32s(b)
		}
		xs.BndregState = legacyU64s(part(3, 960, 64))
		xs.BndcsrState = legacyU64s(part(4, 1024, 64))
		xs.OpmaskReg = legacyU64s(part(5, 1088, 64))
		xs.ZmmUpper = legacyU64s(part(6, 1152, 512))
		xs.Hi16Zmm = legacyU64s(part(7, 1664, 1024))
		if b := part(9, 2688, 8); b != nil {
			xs.Pkru = u32s(b)
		}
		e.Xsave = xs
	}
	return e
}

func legacyGhostEntry(st fs.FileInfo, size int64) *ghost_file.GhostFileEntry {
	ge := &ghost_file.GhostFileEntry{Uid: proto.Uint32(0), Gid: proto.Uint32(0),
		Mode: proto.Uint32(uint32(st.Mode().Perm()) | syscall.S_IFREG), Size: proto.Uint64(uint64(size)),
		Chunks: proto.Bool(false)}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ge.Uid, ge.Gid, ge.Mode = proto.Uint32(sys.Uid), proto.Uint32(sys.Gid), proto.Uint32(sys.Mode)
		ge.Ino = proto.Uint64(sys.Ino)
		ge.Mtim = &crtime.Timeval{TvSec: proto.Uint64(uint64(sys.Mtim.Sec)), TvUsec: proto.Uint64(uint64(sys.Mtim.Nsec / 1000))}
		ge.Atim = &crtime.Timeval{TvSec: proto.Uint64(uint64(sys.Atim.Sec)), TvUsec: proto.Uint64(uint64(sys.Atim.Nsec / 1000))}
	}
	return ge
}

func legacyU64s(b []byte) []uint64 {
	if b == nil {
		return nil
	}
	return u64s(b)
}

// boolUint32 is a flag as CRIU's uint32 fields hold one (so_oobinline).
func boolUint32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
