package restore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
	"github.com/mmcr/mmcr/procfs"
)

// schedTask is a one-thread task of pid for restoreSched.
func schedTask(pid int, s *image.Sched, oom *int) *task {
	th := &image.Thread{TID: pid, Sched: s}
	return &task{t: &image.Task{PID: pid, Threads: []*image.Thread{th}, OomScoreAdj: oom},
		threads: []*thread{{tid: pid, th: th}}}
}

// schedOf reads what the kernel says of pid: its policy as
// sched_getscheduler reports it, real-time priority, nice and
// oom_score_adj.
func schedOf(t *testing.T, pid int) (image.Sched, int) {
	t.Helper()
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, pid)
	if err != nil {
		t.Fatal(err)
	}
	s := image.Sched{Policy: attr.Policy, Prio: attr.Priority, Nice: int32(20 - prio)}
	if attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0 {
		s.Policy |= image.SchedResetOnFork
	}
	oom, err := procfs.Default.OomScoreAdj(pid)
	if err != nil {
		t.Fatal(err)
	}
	return s, oom
}

// TestRestoreSchedAbsent: a thread and task of an image without the
// fields (written before mmcr kept them) keep what they have: neither nice
// 0 nor SCHED_OTHER nor oom_score_adj 0 is forced on them.
func TestRestoreSchedAbsent(t *testing.T) {
	pid := testproc.Sleeper(t)
	// The highest values: anybody may set them on his own process.
	if err := unix.SchedSetAttr(pid, &unix.SchedAttr{Policy: unix.SCHED_BATCH, Nice: 19}, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("1000"), 0); err != nil {
		t.Fatal(err)
	}
	rs := &restorer{log: testLog(t)}
	if err := rs.restoreSched(schedTask(pid, nil, nil)); err != nil {
		t.Fatal(err)
	}
	s, oom := schedOf(t, pid)
	if want := (image.Sched{Policy: image.SchedBatch, Nice: 19}); s != want || oom != 1000 {
		t.Fatalf("after restoreSched without the fields: %+v, oom_score_adj %d; want %+v, 1000 as they were", s, oom, want)
	}
}

// TestRestoreSched: the dumped state is what the thread has afterwards,
// the nice value of a real-time thread included.
func TestRestoreSched(t *testing.T) {
	needRoot(t)
	pid := testproc.Sleeper(t)
	rs := &restorer{log: testLog(t)}
	for _, tc := range []struct {
		s   image.Sched
		oom int
	}{
		{image.Sched{Policy: image.SchedFIFO | image.SchedResetOnFork, Prio: 10, Nice: 7}, 300},
		{image.Sched{Policy: image.SchedIdle, Nice: 19}, 0},
		{image.Sched{Policy: image.SchedRR, Prio: 1, Nice: -20}, 1000},
		{image.Sched{Policy: image.SchedBatch, Nice: -3}, 999},
		{image.Sched{Policy: image.SchedOther}, 1000},
	} {
		if err := rs.restoreSched(schedTask(pid, &tc.s, &tc.oom)); err != nil {
			t.Fatalf("%+v: %v", tc.s, err)
		}
		if s, oom := schedOf(t, pid); s != tc.s || oom != tc.oom {
			t.Errorf("restored %+v, oom_score_adj %d: the kernel says %+v, %d", tc.s, tc.oom, s, oom)
		}
	}
	// A thread that is gone is an error naming it, not a warning.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := gone.Process.Pid
	err := rs.restoreSched(schedTask(dead, &image.Sched{Policy: image.SchedBatch}, nil))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("thread %d", dead)) {
		t.Fatalf("restoreSched of a gone thread: %v", err)
	}
}

// TestRestoreSchedWithoutRights: what mmcr may not set (a lower nice, a
// real-time policy, a lower oom_score_adj) is a warning naming the pid
// and tid and what was kept, and the rest goes on. mmcr's lack of
// CAP_SYS_NICE and CAP_SYS_RESOURCE is played by a thread that drops
// them from its effective set.
func TestRestoreSchedWithoutRights(t *testing.T) {
	needRoot(t)
	pid := testproc.Sleeper(t)
	before, _ := schedOf(t, pid) // this test's own, inherited
	if before.Policy != image.SchedOther || before.Nice <= -5 {
		t.Skipf("this test runs under %+v; it needs SCHED_OTHER above nice -5", before)
	}
	var logBuf bytes.Buffer
	rs := &restorer{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	want := image.Sched{Policy: image.SchedFIFO, Prio: 10, Nice: -5}
	oom := -1000
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread with fewer capabilities exits with
		// this goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: capV3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1<<unix.CAP_SYS_NICE | 1<<unix.CAP_SYS_RESOURCE
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- rs.restoreSched(schedTask(pid, &want, &oom))
	}()
	if err := <-errc; err != nil {
		t.Fatalf("restoreSched without rights: %v", err)
	}
	log := logBuf.String()
	t.Log(log)
	s, gotOom := schedOf(t, pid)
	if s != before {
		t.Errorf("thread has %+v, want %+v as it had", s, before)
	}
	for _, w := range []string{
		fmt.Sprintf(`msg="nice value not restored" pid=%d tid=%d nice=-5 kept=%d`, pid, pid, before.Nice),
		fmt.Sprintf(`msg="scheduling policy not restored" pid=%d tid=%d policy=SCHED_FIFO priority=10 kept="SCHED_OTHER priority 0"`, pid, pid),
	} {
		if !strings.Contains(log, w) {
			t.Errorf("no warning %q", w)
		}
	}
	if gotOom == oom {
		t.Logf("oom_score_adj -1000 was allowed without CAP_SYS_RESOURCE (this process may go that low): its refusal is not tested")
	} else if w := fmt.Sprintf(`msg="oom_score_adj not restored" pid=%d oom_score_adj=-1000 kept=%d`, pid, gotOom); !strings.Contains(log, w) {
		t.Errorf("no warning %q", w)
	}
}
