package restore

import (
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreZombies dumps a parent whose children have ended unreaped
// (an exit code, a default-action signal, SIGKILL, a process group
// leader with a live member) and leaves it running: the original then
// finds its zombies as they were, and so does the tree restored from the
// image: still zombies with their names and group, each one's status for
// the parent's wait, no SIGCHLD since the dump, no child more.
func TestRestoreZombies(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, true, buildC(t, "zombies"))
	unix.Kill(d.pids[0], unix.SIGTERM)
	orig, _ := io.ReadAll(d.out)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v, output %q (the dump changed its zombies)", err, orig)
	}
	waitGone(t, d.pids)

	want := map[string]int{"zexit7": 7 << 8, "zusr1": int(unix.SIGUSR1), "zkilled": int(unix.SIGKILL), "zleader": 3 << 8}
	got := map[string]int{}
	for _, task := range d.tree.Tasks {
		if task.Zombie {
			got[task.Comm] = task.ExitStatus
			if task.PPID != d.pids[0] || len(task.VMAs) != 0 || len(task.FDs) != 0 {
				t.Errorf("zombie %d: ppid %d, %d VMAs, %d fds", task.PID, task.PPID, len(task.VMAs), len(task.FDs))
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("zombies in the image: %v, want %v", got, want)
	}
	for comm, ws := range want {
		if got[comm] != ws {
			t.Errorf("zombie %s: exit status %#x, want %#x", comm, got[comm], ws)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreZombiesFailure fails a restore once the zombies are made:
// nothing of the tree is left, the zombies reaped too.
func TestRestoreZombiesFailure(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "zombies"))
	testHookAfterCreate = func() error { return errors.New("injected failure") }
	defer func() { testHookAfterCreate = nil }()
	if _, err := Run(Options{Dir: d.dir, Log: testLog(t)}); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("restore: %v, want the injected failure", err)
	}
	waitGone(t, d.pids)
}
