package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMlockFutureRoundTrip: a task's mlockall(MCL_FUTURE) flags come back
// and make the ext file version 4, also when a later task's THP setting
// asks for version 3.
func TestMlockFutureRoundTrip(t *testing.T) {
	want := sampleTree()
	want.Tasks[0].Mm.MlockFuture = unix.MCL_FUTURE | unix.MCL_ONFAULT
	want.Tasks[1].Mm.THPExceptAdvised = true // asks for version 3, after task 0's 4
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"mlock_future": 6`) || !strings.Contains(string(ext), `"version": 4`) {
		t.Fatalf("%s lacks mlock_future or version 4 (%v):\n%s", ExtName, err, ext)
	}
	_, got := openTree(t, dir)
	for i, task := range got.Tasks {
		if task.Mm.MlockFuture != want.Tasks[i].Mm.MlockFuture {
			t.Errorf("task %d: MlockFuture %#x, want %#x", task.PID, task.Mm.MlockFuture, want.Tasks[i].Mm.MlockFuture)
		}
	}
}

// TestMlockFutureRejected: flags mlockall would read as "lock everything
// now" are refused at commit and, from a doctored ext file, at load.
func TestMlockFutureRejected(t *testing.T) {
	tree := sampleTree()
	tree.Tasks[0].Mm.MlockFuture = unix.MCL_CURRENT | unix.MCL_FUTURE
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "mlock_future 0x3") {
		t.Fatalf("commit: got %v, want an error naming mlock_future 0x3", err)
	}
	tree.Tasks[0].Mm.MlockFuture = unix.MCL_FUTURE
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	_, files := readFiles(t, dir)
	doctored := strings.Replace(string(files[ExtName]), `"mlock_future": 2`, `"mlock_future": 1`, 1)
	if doctored == string(files[ExtName]) {
		t.Fatalf("no mlock_future 2 in %s", files[ExtName])
	}
	files[ExtName] = []byte(doctored)
	if _, err := memReader(files).Tree(); err == nil || !strings.Contains(err.Error(), "mlock_future 0x1") {
		t.Fatalf("load: got %v, want an error naming mlock_future 0x1", err)
	}
}

// TestMembarrierRoundTrip: a task's membarrier registrations come back
// and make the ext file version 7; bits that are no register command are
// refused at commit and, from a doctored ext file, at load.
func TestMembarrierRoundTrip(t *testing.T) {
	tree := sampleTree()
	tree.Tasks[1].Mm.Membarrier = 1<<4 | 1<<8 // REGISTER_PRIVATE_EXPEDITED, _RSEQ
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	_, files := readFiles(t, dir)
	if ext := string(files[ExtName]); !strings.Contains(ext, `"membarrier": 272`) || !strings.Contains(ext, `"version": 7`) {
		t.Fatalf("%s lacks membarrier or version 7:\n%s", ExtName, ext)
	}
	_, got := openTree(t, dir)
	for i, task := range got.Tasks {
		if task.Mm.Membarrier != tree.Tasks[i].Mm.Membarrier {
			t.Errorf("task %d: Membarrier %#x, want %#x", task.PID, task.Mm.Membarrier, tree.Tasks[i].Mm.Membarrier)
		}
	}
	files[ExtName] = []byte(strings.Replace(string(files[ExtName]), `"membarrier": 272`, `"membarrier": 8`, 1))
	if _, err := memReader(files).Tree(); err == nil || !strings.Contains(err.Error(), "membarrier registrations 0x8") {
		t.Fatalf("load of PRIVATE_EXPEDITED (a barrier, not a registration): %v, want a refusal", err)
	}
	tree.Tasks[1].Mm.Membarrier = 1 << 9
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "membarrier registrations 0x200") {
		t.Fatalf("commit of GET_REGISTRATIONS: %v, want a refusal", err)
	}
}
