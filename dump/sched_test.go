package dump

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// TestReadSched: readSched says what the kernel was told, the nice value
// of a real-time thread and the reset-on-fork flag included, and refuses
// SCHED_DEADLINE naming the thread and its task.
func TestReadSched(t *testing.T) {
	requireRoot(t) // real-time policies need CAP_SYS_NICE
	pid := testproc.Sleeper(t)
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, 4); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attr unix.SchedAttr
		want image.Sched
	}{
		{unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 10, Flags: unix.SCHED_FLAG_RESET_ON_FORK},
			image.Sched{Policy: image.SchedFIFO | image.SchedResetOnFork, Prio: 10, Nice: 4}},
		{unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 99}, image.Sched{Policy: image.SchedRR, Prio: 99, Nice: 4}},
		{unix.SchedAttr{Policy: unix.SCHED_IDLE}, image.Sched{Policy: image.SchedIdle, Nice: 4}},
		{unix.SchedAttr{Policy: unix.SCHED_BATCH, Nice: -7}, image.Sched{Policy: image.SchedBatch, Nice: -7}},
		{unix.SchedAttr{Policy: unix.SCHED_NORMAL, Nice: 19}, image.Sched{Policy: image.SchedOther, Nice: 19}},
	} {
		if err := unix.SchedSetAttr(pid, &tc.attr, 0); err != nil {
			t.Fatalf("sched_setattr %+v: %v", tc.attr, err)
		}
		got, err := readSched(pid, pid)
		if err != nil || *got != tc.want {
			t.Errorf("after sched_setattr %+v: %+v %v, want %+v", tc.attr, got, err, tc.want)
		}
	}

	dl := unix.SchedAttr{Policy: unix.SCHED_DEADLINE, Runtime: 1e6, Deadline: 10e6, Period: 10e6}
	if err := unix.SchedSetAttr(pid, &dl, 0); err != nil {
		t.Skipf("cannot put a process under SCHED_DEADLINE here: %v", err)
	}
	_, err := readSched(pid, pid)
	want := fmt.Sprintf("thread %d of task %d runs SCHED_DEADLINE", pid, pid)
	if err == nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), want) {
		t.Fatalf("SCHED_DEADLINE: %v, want %q wrapping ErrUnsupported", err, want)
	}
}

// TestDumpSched: a dump keeps each thread's scheduling state and the
// task's oom_score_adj, as the kernel reports them at dump.
func TestDumpSched(t *testing.T) {
	requireRoot(t)
	bin := buildThreads(t)
	w := startWorkload(t, bin, "ready")
	pid, tid1, tid2 := w.pid(t, 1), w.pid(t, 2), w.pid(t, 3)
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, 5); err != nil {
		t.Fatal(err)
	}
	if err := unix.SchedSetAttr(tid1, &unix.SchedAttr{Policy: unix.SCHED_BATCH, Nice: 3}, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.SchedSetAttr(tid2, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: 3,
		Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("250"), 0); err != nil {
		t.Fatal(err)
	}
	_, task := dumpLeaveRunning(t, pid)
	if task.OomScoreAdj == nil || *task.OomScoreAdj != 250 {
		t.Errorf("oom_score_adj %v, want 250", task.OomScoreAdj)
	}
	want := map[int]image.Sched{
		pid:  {Policy: image.SchedOther, Nice: 5},
		tid1: {Policy: image.SchedBatch, Nice: 3},
		tid2: {Policy: image.SchedRR | image.SchedResetOnFork, Prio: 3}, // nice 0, as the workload's
	}
	for _, th := range task.Threads {
		if th.Sched == nil || *th.Sched != want[th.TID] {
			t.Errorf("thread %d: sched %+v, want %+v", th.TID, th.Sched, want[th.TID])
		}
	}
	w.finish(t)
}
