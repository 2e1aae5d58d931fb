package image

import (
	"reflect"
	"strings"
	"testing"

	file_lock "github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
)

// lockTree is the sample tree with locks on its regular files' fds.
func lockTree() *Tree {
	tree := sampleTree()
	fds := tree.Tasks[0].FDs
	fds[2].Locks = []FileLock{{Kind: LockFlock, Write: true}}                                                    // fd 3
	fds[5].Locks = []FileLock{{Kind: LockPOSIX, Write: true, Start: 10, Len: 10}, {Kind: LockPOSIX, Start: 100}} // fd 9
	fds[5].Locks = append(fds[5].Locks, FileLock{Kind: LockOFD, Start: 0, Len: 4096})
	return tree
}

// File locks go to filelocks.img as CRIU writes them and come back on
// their fds.
func TestFileLocksRoundTrip(t *testing.T) {
	want := lockTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	img := critDecode(t, dir, fileLocksName, &file_lock.FileLockEntry{})
	if len(img.Entries) != 4 {
		t.Fatalf("%d entries in %s, want 4", len(img.Entries), fileLocksName)
	}
	e := img.Entries[1].Message.(*file_lock.FileLockEntry)
	if e.GetFlag() != uint32(LockPOSIX) || e.GetType() != 1 || e.GetPid() != 100 || e.GetFd() != 9 || e.GetStart() != 10 || e.GetLen() != 10 {
		t.Errorf("a POSIX write lock as crit sees it: %v", e)
	}
	if e := img.Entries[0].Message.(*file_lock.FileLockEntry); e.GetFlag() != uint32(LockFlock) || e.GetType() != 2 {
		t.Errorf("an exclusive flock as crit sees it: %v", e)
	}
	r, got := openTree(t, dir)
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	sum.WriteText(&text)
	if !strings.Contains(text.String(), "fd 9: regular (3 locks held)") {
		t.Errorf("mmcr show does not count fd 9's locks:\n%s", text.String())
	}
	want.Tasks[0].VMAs[7].VmFlags = nil // empty slices come back nil
	if !reflect.DeepEqual(got.Tasks[0].FDs, want.Tasks[0].FDs) {
		t.Errorf("fds differ:\n got %+v\nwant %+v", got.Tasks[0].FDs, want.Tasks[0].FDs)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("tree differs")
	}
}

func TestFileLocksRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"lock on a directory", func(tr *Tree) { tr.Tasks[0].FDs[3].Locks = []FileLock{{Kind: LockFlock}} }, "fd 4 (dir) holds a file lock"},
		{"flock of a range", func(tr *Tree) { tr.Tasks[0].FDs[2].Locks[0].Start = 5 }, "fd 3: lock of kind 2 on 5+0"},
		{"unknown kind", func(tr *Tree) { tr.Tasks[0].FDs[5].Locks[0].Kind = 8 }, "lock of kind 8"},
		{"negative length", func(tr *Tree) { tr.Tasks[0].FDs[5].Locks[1].Len = -1 }, "on 100+-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := lockTree()
			tc.mangle(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}
