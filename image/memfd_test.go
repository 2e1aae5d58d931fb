package image

import (
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
)

// TestMemfdInodeRoundTrip: a memfd's seals, mode and owner come back, make
// the ext file version 7 and go into CRIU's memfd_inode_entry; seals or a
// mode a memfd cannot have, or seals on an object that is no memfd, are
// refused at commit and, from a doctored ext file, at load.
func TestMemfdInodeRoundTrip(t *testing.T) {
	tree := sampleTree()
	so := tree.SharedObjects[1]
	if !so.Memfd {
		t.Fatal("the sample's object 2 is no memfd")
	}
	so.Seals, so.Mode, so.UID, so.GID, so.Length = 0xf, 0o640, 1234, 5678, so.Size-100
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	_, files := readFiles(t, dir)
	if ext := string(files[ExtName]); !strings.Contains(ext, `"seals": 15`) || !strings.Contains(ext, `"version": 7`) {
		t.Fatalf("%s lacks the seals or version 7:\n%s", ExtName, ext)
	}
	inode := critDecode(t, dir, memfdInodeName, &memfd.MemfdInodeEntry{}).Entries[0].Message.(*memfd.MemfdInodeEntry)
	if inode.GetUid() != 1234 || inode.GetGid() != 5678 || inode.GetSeals() != 0xf {
		t.Errorf("memfd_inode_entry uid %d gid %d seals %#x, want 1234 5678 0xf", inode.GetUid(), inode.GetGid(), inode.GetSeals())
	}
	_, got := openTree(t, dir)
	if !reflect.DeepEqual(got.SharedObjects, tree.SharedObjects) {
		t.Errorf("shared objects came back as %+v, want %+v", got.SharedObjects[1], so)
	}
	files[ExtName] = []byte(strings.Replace(string(files[ExtName]), `"seals": 15`, `"seals": 64`, 1))
	if _, err := memReader(files).Tree(); err == nil || !strings.Contains(err.Error(), "seals 0x40") {
		t.Errorf("load of seal 0x40: %v, want a refusal", err)
	}
	so.Seals = 0
	tree.SharedObjects[0].Seals = 1
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "is no memfd") {
		t.Errorf("commit of seals on shared anonymous memory: %v, want a refusal", err)
	}
}
