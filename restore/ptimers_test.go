package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestorePosixTimers dumps a task with POSIX timers (one signalling
// the process with a sigev_value, one a thread, a disarmed one, one after
// a deleted id, on another clock) and leaves it running, then restores
// it: in both, the timers have their ids and settings and keep firing.
func TestRestorePosixTimers(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, true, buildC(t, "ptimers"))
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v", err)
	}
	waitGone(t, d.pids)
	task := d.tree.Tasks[0]
	var ids []int32
	for _, pt := range task.PosixTimers {
		ids = append(ids, pt.ID)
	}
	if len(ids) != 4 || ids[3] != 4 {
		t.Fatalf("POSIX timers in the image: %v, want 0 1 2 4", ids)
	}
	if pt := task.PosixTimers[1]; pt.Notify != 4 || int(pt.NotifyTID) != task.Threads[1].TID || pt.Signo != int32(unix.SIGUSR2) {
		t.Errorf("timer 1: %+v, want SIGUSR2 to thread %d", pt, task.Threads[1].TID)
	}
	if pt := task.PosixTimers[0]; pt.SigValue != 0x1234 || pt.IntervalNsec != 1e7 || pt.ValueNsec <= 0 || pt.ValueNsec > 1e7 {
		t.Errorf("timer 0: %+v", pt)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
