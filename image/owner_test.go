package image

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"

	"github.com/mmcr/mmcr/internal/kernel"
)

// ownerTree is inetTree with owners on two of its sockets' fds: the root
// task, with a signal, and its process group.
func ownerTree() *Tree {
	t := inetTree()
	root := t.Tasks[0]
	root.FDs[len(root.FDs)-2].Owner = &FDOwner{Type: kernel.FOwnerPID, PID: root.PID, Signal: 10, UID: 1000, EUID: 1001}
	root.FDs[len(root.FDs)-1].Owner = &FDOwner{Type: kernel.FOwnerPGRP, PID: root.PGID}
	return t
}

// TestOwnerRoundTrip: fd owners come back from the image (ext version 9).
func TestOwnerRoundTrip(t *testing.T) {
	want := ownerTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"version": 9`) {
		t.Fatalf("%s is not version 9 (%v)", ExtName, err)
	}
	_, got := openTree(t, dir)
	if !reflect.DeepEqual(got.Tasks[0].FDs, want.Tasks[0].FDs) {
		t.Errorf("fds differ")
	}
	// CRIU's tools see the owners in the file entries' fown.
	owned := map[uint32]*FDOwner{}
	for _, fd := range want.Tasks[0].FDs {
		if fd.Owner != nil {
			owned[want.InetByID(fd.InetID).Ino] = fd.Owner
		}
	}
	seen := 0
	for _, e := range critDecode(t, dir, filesName, &fdinfo.FileEntry{}).Entries {
		isk := e.Message.(*fdinfo.FileEntry).GetIsk()
		if isk == nil {
			continue
		}
		f, o := isk.GetFown(), owned[isk.GetIno()]
		if o == nil {
			o = &FDOwner{}
		} else {
			seen++
		}
		if f.GetPid() != uint32(o.PID) || f.GetPidType() != uint32(o.Type) || f.GetSignum() != uint32(o.Signal) ||
			f.GetUid() != o.UID || f.GetEuid() != o.EUID {
			t.Errorf("inet socket %d: crit sees fown %v, want %+v", isk.GetIno(), f, o)
		}
	}
	if seen != 2 {
		t.Errorf("crit saw %d owned inet sockets, want 2", seen)
	}
}

// TestOwnerRefused: an owner that is not of the tree, or a signal that is
// none, is not written.
func TestOwnerRefused(t *testing.T) {
	for what, mangle := range map[string]func(t *Tree){
		"owner outside the tree": func(t *Tree) { t.Tasks[0].FDs[len(t.Tasks[0].FDs)-2].Owner.PID = 99999 },
		"thread outside": func(t *Tree) {
			t.Tasks[0].FDs[len(t.Tasks[0].FDs)-2].Owner.Type = kernel.FOwnerTID
			t.Tasks[0].FDs[len(t.Tasks[0].FDs)-2].Owner.PID = 99999
		},
		"group outside": func(t *Tree) { t.Tasks[0].FDs[len(t.Tasks[0].FDs)-1].Owner.PID = 99999 },
		"signal 65":     func(t *Tree) { t.Tasks[0].FDs[len(t.Tasks[0].FDs)-2].Owner.Signal = 65 },
	} {
		tree := ownerTree()
		mangle(tree)
		if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "owner") {
			t.Errorf("%s: commit %v, want a refusal naming the owner", what, err)
		}
	}
}
