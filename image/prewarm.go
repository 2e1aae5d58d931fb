package image

import (
	"sync"

	core_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	criu_sa "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-sa"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventpoll"
	ext_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ext-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap_file_path "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rlimit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rseq"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/siginfo"
	crtime "github.com/checkpoint-restore/go-criu/v7/crit/images/time"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protobuf-go builds a message type's encoder and decoder the first time a
// message of that type is marshaled or unmarshaled: ~5 ms for the CRIU
// types an image uses, paid in the middle of a dump's commit or a
// restore's image read. Prewarm pays it ahead, on whatever CPU is idle:
// dump and restore start it on a goroutine of its own while they freeze
// the tree or check the image directory. It is safe to race with real use
// (protobuf initializes each type once, under a lock).
func Prewarm() { prewarmOnce.Do(prewarm) }

var prewarmOnce sync.Once

// imageRoots are the messages image files hold; imageTypes adds every
// message nested in them that mmcr writes or reads. Other nested kinds
// (sockets, other architectures...) are never met and stay cold.
func imageRoots() []proto.Message {
	return []proto.Message{
		&criu_core.CoreEntry{}, &criu_core.TaskKobjIdsEntry{}, &mm.MmEntry{},
		&pagemap.PagemapHead{}, &pagemap.PagemapEntry{}, &pstree.PstreeEntry{},
		&fdinfo.FileEntry{}, &fdinfo.FdinfoEntry{}, &fsimg.FsEntry{},
		&inventory.InventoryEntry{}, &memfd.MemfdInodeEntry{},
		&ghost_file.GhostFileEntry{}, &ghost_file.GhostChunkEntry{},
		&remap_file_path.RemapFilePathEntry{},
	}
}

func imageTypes() []proto.Message {
	return append(imageRoots(),
		&core_x86.ThreadInfoX86{}, &core_x86.UserX86RegsEntry{}, &core_x86.UserX86FpregsEntry{},
		&core_x86.UserX86XsaveEntry{}, &criu_core.TaskCoreEntry{}, &criu_core.ThreadCoreEntry{},
		&criu_core.TaskRlimitsEntry{}, &criu_core.ThreadSasEntry{}, &rlimit.RlimitEntry{},
		&timer.TaskTimersEntry{}, &timer.ItimerEntry{}, &siginfo.SignalQueueEntry{},
		&siginfo.SiginfoEntry{}, &criu_sa.SaEntry{}, &creds.CredsEntry{}, &rseq.RseqEntry{},
		&vma.VmaEntry{}, &regfile.RegFileEntry{}, &fown.FownEntry{}, &memfd.MemfdFileEntry{},
		&eventfd.EventfdFileEntry{}, &eventpoll.EventpollFileEntry{}, &eventpoll.EventpollTfdEntry{},
		&ext_file.ExtFileEntry{}, &crtime.Timeval{},
	)
}

func prewarm() {
	// A warm-up only: whatever goes wrong here, real use meets and reports
	// it; it must not take mmcr down from a goroutine of its own.
	defer func() { _ = recover() }()
	used := map[protoreflect.FullName]bool{}
	for _, m := range imageTypes() {
		used[m.ProtoReflect().Descriptor().FullName()] = true
	}
	for _, root := range imageRoots() {
		m := root.ProtoReflect()
		fillUsed(m, used, 0)
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(m.Interface())
		if err != nil {
			continue // a warm-up only: real use reports its own errors
		}
		out := m.Type().New().Interface()
		_ = proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(b, out)
	}
}

// fillUsed sets every message field of m whose type is in used to an empty
// message (a list gets one element), recursively, so that marshaling m
// touches each of those types.
func fillUsed(m protoreflect.Message, used map[protoreflect.FullName]bool, depth int) {
	if depth > 8 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.IsMap() || !used[fd.Message().FullName()] {
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			e := l.NewElement()
			fillUsed(e.Message(), used, depth+1)
			l.Append(e)
			continue
		}
		fillUsed(m.Mutable(fd).Message(), used, depth+1)
	}
}
