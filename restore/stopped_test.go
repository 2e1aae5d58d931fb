package restore

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"
)

// threadStat is a thread's state letter and CPU ticks (utime+stime) from
// /proc/PID/task/TID/stat.
func threadStat(pid, tid int) (byte, uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:]) // f[0] is the state, field 3
	if i < 0 || len(f) < 13 {
		return 0, 0, fmt.Errorf("short stat %q", s)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64) // utime, field 14
	st, _ := strconv.ParseUint(f[12], 10, 64) // stime, field 15
	return f[0][0], ut + st, nil
}

// TestRestoreLeaveStopped: with LeaveStopped every restored thread is
// stopped when Run returns and stays so, using no CPU, with its memory
// laid out as dumped; SIGCONT lets the tree go on and pass its checks.
func TestRestoreLeaveStopped(t *testing.T) {
	needRoot(t)
	bin := testproc.BuildC(t, testproc.ThreadsC, "-O1", "-Wall", "-pthread")
	d := dumpWorkload(t, false, bin)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := Run(Options{Dir: d.dir, LeaveStopped: true, Log: testLog(t), Stdin: w, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer unix.Kill(root, unix.SIGKILL) // unless it exited as it should
	tids := d.tree.Tasks[0].Threads
	if len(tids) != 3 {
		t.Fatalf("image has %d threads, want 3", len(tids))
	}
	ticks := make(map[int]uint64)
	for _, th := range tids {
		// The SIGSTOP of the detach is taken before the thread runs on,
		// but asynchronously: give it a moment to reach the stop.
		deadline := time.Now().Add(2 * time.Second)
		for {
			state, n, err := threadStat(root, th.TID)
			if err != nil {
				t.Fatalf("thread %d: %v", th.TID, err)
			}
			if state == 'T' {
				ticks[th.TID] = n
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %d in state %c, want T (stopped)", th.TID, state)
			}
			time.Sleep(time.Millisecond)
		}
	}
	after := treeMaps(t, root)
	for pid, want := range d.before {
		if got := after[pid]; got != want {
			t.Errorf("maps of %d differ after restore:\n%s", pid, lineDiff(want, got))
		}
	}
	time.Sleep(300 * time.Millisecond) // a running thread would spend ticks here (it loops on nanosleep)
	for _, th := range tids {
		state, n, err := threadStat(root, th.TID)
		if err != nil || state != 'T' || n != ticks[th.TID] {
			t.Errorf("thread %d: state %c, CPU ticks %d then %d (%v): want it stopped throughout", th.TID, state, ticks[th.TID], n, err)
		}
	}

	continueAndCheck(t, root, r)
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
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if state, _, err := threadStat(root, root); err == nil && state == 'T' {
				return nil
			}
		}
		return fmt.Errorf("workload %d did not stop", root)
	}
	d := dumpWorkloadWhen(t, false, stop, bin)
	if !d.tree.Tasks[0].Stopped {
		t.Fatal("the image does not say the task was stopped")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := Run(Options{Dir: d.dir, Log: testLog(t), Stdin: w, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer unix.Kill(root, unix.SIGKILL) // unless it exited as it should
	for _, th := range d.tree.Tasks[0].Threads {
		var state byte
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if state, _, err = threadStat(root, th.TID); err != nil || state == 'T' {
				break
			}
		}
		if state != 'T' {
			t.Fatalf("thread %d in state %c (%v), want T: it was stopped at dump", th.TID, state, err)
		}
	}
	continueAndCheck(t, root, r)
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
