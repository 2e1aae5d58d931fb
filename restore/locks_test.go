package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreFileLocks dumps a tree holding file locks of every kind
// (flock, shared by parent and child through one description; POSIX
// record locks; an OFD lock) and leaves it running: the original finds
// its locks as they were. A restore while another process holds one of
// the files' locks fails naming the file, and nothing of it runs; then
// the restored tree holds them all again, as a process sharing nothing
// with it finds.
func TestRestoreFileLocks(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	d := dumpWorkload(t, true, buildC(t, "locks"), dir)
	kinds := map[image.LockKind]int{}
	for _, task := range d.tree.Tasks {
		for _, fd := range task.FDs {
			for _, l := range fd.Locks {
				kinds[l.Kind]++
			}
		}
	}
	// a's flock and c's OFD lock on the parent's and the child's fds (one
	// description), d's flock on the child's.
	if kinds[image.LockFlock] != 3 || kinds[image.LockPOSIX] != 2 || kinds[image.LockOFD] != 2 {
		t.Errorf("locks in the image by kind: %v", kinds)
	}

	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v (its locks changed)", err)
	}
	waitGone(t, d.pids)

	// Another process holds a's lock now: the restore fails naming the
	// file, and nothing of the tree is left.
	a, err := os.OpenFile(filepath.Join(dir, "a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(a.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil { // restored without the lock: not to be left running
		for _, pid := range d.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	waitGone(t, d.pids)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a")) {
		t.Errorf("restore while another process holds a's lock: %v, want a failure naming %s", err, filepath.Join(dir, "a"))
	}
	a.Close()

	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
