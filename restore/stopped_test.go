package restore

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"
)

// TestRestoreLeaveStopped: with LeaveStopped every restored thread is
// stopped when Run returns and stays so, using no CPU, with its memory
// laid out as dumped; SIGCONT lets the tree go on and pass its checks.
func TestRestoreLeaveStopped(t *testing.T) {
	needRoot(t)
	bin := testproc.BuildC(t, testproc.ThreadsC, "-O1", "-Wall", "-pthread")
	d := dumpWorkload(t, false, bin)
	root, out := restoreWithOutput(t, Options{Dir: d.dir, LeaveStopped: true})
	if n := len(d.tree.Tasks[0].Threads); n != 3 {
		t.Fatalf("image has %d threads, want 3", n)
	}
	// The SIGSTOP of the detach is taken before a thread runs on, but
	// asynchronously: give the threads a moment to reach the stop.
	if !testproc.WaitStopped(root, 5*time.Second) {
		t.Fatalf("restored task %d not stopped", root)
	}
	ticks := make(map[int]uint64)
	for _, th := range d.tree.Tasks[0].Threads {
		_, n, err := testproc.ThreadStat(root, th.TID)
		if err != nil {
			t.Fatal(err)
		}
		ticks[th.TID] = n
	}
	after := treeMaps(t, root)
	for pid, want := range d.before {
		if got := after[pid]; got != want {
			t.Errorf("maps of %d differ after restore:\n%s", pid, lineDiff(want, got))
		}
	}
	time.Sleep(300 * time.Millisecond) // a running thread would spend ticks here (it loops on nanosleep)
	for _, th := range d.tree.Tasks[0].Threads {
		state, n, err := testproc.ThreadStat(root, th.TID)
		if err != nil || state != 'T' || n != ticks[th.TID] {
			t.Errorf("thread %d: state %c, CPU ticks %d then %d (%v): want it stopped throughout", th.TID, state, ticks[th.TID], n, err)
		}
	}
	continueAndCheck(t, root, out)
}

// TestRestoreJobStopped: a tree dumped while in a job-control stop comes
// back stopped (without LeaveStopped), and SIGCONT lets it go on.
func TestRestoreJobStopped(t *testing.T) {
	needRoot(t)
	bin := testproc.BuildC(t, testproc.ThreadsC, "-O1", "-Wall", "-pthread")
	stop := func(root int) error {
		if err := unix.Kill(root, unix.SIGSTOP); err != nil {
			return err
		}
		if !testproc.WaitStopped(root, 5*time.Second) {
			return fmt.Errorf("workload %d did not stop", root)
		}
		return nil
	}
	d := dumpWorkloadWhen(t, false, stop, bin)
	if !d.tree.Tasks[0].Stopped {
		t.Fatal("the image does not say the task was stopped")
	}
	root, out := restoreWithOutput(t, Options{Dir: d.dir})
	if !testproc.WaitStopped(root, 5*time.Second) {
		t.Fatalf("restored task %d not stopped: it was stopped at dump", root)
	}
	continueAndCheck(t, root, out)
}

// restoreWithOutput restores with opts, the tree's external fds 0-2 on a
// pipe whose read end it returns. The root of a test that failed is
// killed at cleanup (it may be left stopped).
func restoreWithOutput(t *testing.T, opts Options) (int, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	opts.Log, opts.Stdin, opts.Stdout, opts.Stderr = testLog(t), w, w, w
	root, err := Run(opts)
	w.Close()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			unix.Kill(root, unix.SIGKILL)
			Wait(root)
		}
	})
	return root, r
}

// continueAndCheck sends SIGTERM to a stopped restored root (the signal
// waits for the stop's end) and SIGCONT, then wants its exit 0 and PASS
// on r, its output.
func continueAndCheck(t *testing.T, root int, r *os.File) {
	t.Helper()
	unix.Kill(root, unix.SIGTERM)
	unix.Kill(root, unix.SIGCONT)
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	code, err := Wait(root)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		if code != 0 || !strings.Contains(string(out), "PASS") {
			t.Fatalf("restored workload after SIGCONT: exit %d, output %q", code, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("output pipe not closed")
	}
}
