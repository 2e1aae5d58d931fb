package image

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	file_lock "github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	remap_file_path "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	"google.golang.org/protobuf/proto"
)

// critEntryType mirrors go-criu's crit/cli protoHandler for the magics mmcr
// writes (crit/cli itself pulls in cobra, which is not in go.mod).
func critEntryType(magicName string) (proto.Message, bool) {
	switch magicName {
	case "INVENTORY":
		return &inventory.InventoryEntry{}, true
	case "PSTREE":
		return &pstree.PstreeEntry{}, true
	case "CORE":
		return &criu_core.CoreEntry{}, true
	case "MM":
		return &mm.MmEntry{}, true
	case "FS":
		return &fsimg.FsEntry{}, true
	case "FDINFO":
		return &fdinfo.FdinfoEntry{}, true
	case "FILES":
		return &fdinfo.FileEntry{}, true
	case "IDS":
		return &criu_core.TaskKobjIdsEntry{}, true
	case "MEMFD_INODE":
		return &memfd.MemfdInodeEntry{}, true
	case "REMAP_FPATH":
		return &remap_file_path.RemapFilePathEntry{}, true
	case "SECCOMP":
		return &seccomp.SeccompEntry{}, true
	case "FILE_LOCKS":
		return &file_lock.FileLockEntry{}, true
	case "PAGEMAP", "GHOST_FILE":
		return nil, true // crit's own special handlers
	}
	return nil, false
}

// TestCritDecodes checks that go-criu's crit decodes every .img file mmcr
// writes (except the raw pages files), picking the type by the file's magic.
func TestCritDecodes(t *testing.T) {
	dir, tree := writeSample(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".img") || strings.HasPrefix(name, "pages-") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		magicName, err := crit.ReadMagic(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		typ, ok := critEntryType(magicName)
		if !ok {
			t.Fatalf("%s: unexpected magic %s", name, magicName)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		img, err := crit.New(f, nil, "", false, false).Decode(typ)
		f.Close()
		if err != nil {
			t.Fatalf("crit decode %s: %v", name, err)
		}
		if len(img.Entries) == 0 && magicName != "FDINFO" {
			t.Errorf("%s: no entries", name)
		}
		seen[magicName]++
	}
	threads := 0
	for _, task := range tree.Tasks {
		threads += len(task.Threads)
	}
	if seen["CORE"] != threads || seen["MM"] != len(tree.Tasks) || seen["GHOST_FILE"] != 1 ||
		seen["PAGEMAP"] != len(tree.Tasks)+len(tree.SharedObjects) || seen["REMAP_FPATH"] != 1 ||
		seen["IDS"] != len(tree.Tasks) || seen["MEMFD_INODE"] != 1 {
		t.Errorf("images by magic: %v", seen)
	}
}

// critDecode decodes image file name of dir as go-criu's crit does, its
// entries as typ.
func critDecode(t *testing.T, dir, name string, typ proto.Message) *crit.CriuImage {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := crit.New(f, nil, "", false, false).Decode(typ)
	if err != nil {
		t.Fatalf("crit decode %s: %v", name, err)
	}
	return img
}

// TestCritValues spot-checks values as crit sees them.
func TestCritValues(t *testing.T) {
	dir, tree := writeSample(t)
	decode := func(name string, typ proto.Message) *crit.CriuImage { return critDecode(t, dir, name, typ) }
	core := decode("core-100.img", &criu_core.CoreEntry{}).Entries[0].Message.(*criu_core.CoreEntry)
	if core.GetThreadInfo().GetGpregs().GetFsBase() != tree.Tasks[0].Threads[0].Regs.Fs_base ||
		core.GetTc().GetComm() != "prog" || core.GetThreadInfo().GetFpregs().GetXsave() == nil {
		t.Errorf("core as crit sees it: %v", core)
	}
	xs := core.GetThreadInfo().GetFpregs().GetXsave()
	raw := tree.Tasks[0].Threads[0].Xsave
	if bv := binary.LittleEndian.Uint64(raw[512:]); xs.GetXstateBv() != bv ||
		(bv&(1<<2) != 0 && xs.GetYmmhSpace()[0] != binary.LittleEndian.Uint32(raw[576:])) ||
		(bv&(1<<5) != 0 && xs.GetOpmaskReg()[0] != binary.LittleEndian.Uint64(raw[1088:])) ||
		(bv&(1<<9) != 0 && xs.GetPkru()[0] != binary.LittleEndian.Uint32(raw[2688:])) {
		t.Errorf("xsave as crit sees it: %v", xs)
	}
	if fp := core.GetThreadInfo().GetFpregs(); fp.GetMxcsr() != binary.LittleEndian.Uint32(raw[24:]) || len(fp.GetXmmSpace()) != 64 {
		t.Errorf("fpregs: %v", fp)
	}
	if core.GetTc().OomScoreAdj == nil || core.GetTc().GetOomScoreAdj() != 0 {
		t.Errorf("oom_score_adj as crit sees it: %v", core.GetTc().OomScoreAdj)
	}
	tc101 := decode("core-101.img", &criu_core.CoreEntry{}).Entries[0].Message.(*criu_core.CoreEntry).GetThreadCore()
	if tc101.GetSchedPolicy() != SchedFIFO|SchedResetOnFork || tc101.GetSchedPrio() != 10 || tc101.GetSchedNice() != -3 {
		t.Errorf("scheduling state as crit sees it: policy %#x prio %d nice %d",
			tc101.GetSchedPolicy(), tc101.GetSchedPrio(), tc101.GetSchedNice())
	}
	mme := decode("mm-100.img", &mm.MmEntry{}).Entries[0].Message.(*mm.MmEntry)
	if len(mme.GetVmas()) != len(tree.Tasks[0].VMAs) || mme.GetVmas()[3].GetShmid() != 1 {
		t.Errorf("mm as crit sees it: %v", mme)
	}
	pm := decode("pagemap-100.img", nil)
	if len(pm.Entries) != 4 { // head + 3 merged runs
		t.Errorf("pagemap entries: %d", len(pm.Entries))
	}
}

// TestCritExplore runs crit's explore commands (crit x DIR ps/fds/mems/rss)
// over an mmcr image.
func TestCritExplore(t *testing.T) {
	dir, _ := writeSample(t)
	c := crit.New(nil, nil, dir, false, false)
	ps, err := c.ExplorePs()
	if err != nil || ps.PID != 100 || len(ps.Children) != 1 || ps.Comm != "prog" {
		t.Fatalf("explore ps: %+v %v", ps, err)
	}
	fds, err := c.ExploreFds()
	if err != nil || len(fds) != 2 {
		t.Fatalf("explore fds: %v %v", fds, err)
	}
	mems, err := c.ExploreMems()
	if err != nil || len(mems) != 2 || mems[0].Exe != "/usr/bin/prog" {
		t.Fatalf("explore mems: %v %v", mems, err)
	}
	if _, err := c.ExploreRss(); err != nil {
		t.Fatalf("explore rss: %v", err)
	}
}
