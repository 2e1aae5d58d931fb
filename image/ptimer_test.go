package image

import (
	"reflect"
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
)

// timerTree is the sample tree whose root has POSIX timers: one
// signalling the process, one thread 101, one disarmed.
func timerTree() *Tree {
	tree := sampleTree()
	tree.Tasks[0].PosixTimers = []PosixTimer{
		{ID: 0, Clock: 1, Signo: 10, SigValue: 0x1234, IntervalNsec: 1e7, ValueNsec: 3_500_000},
		{ID: 1, Clock: 1, Notify: 4, Signo: 12, NotifyTID: 101, Overrun: 2, IntervalNsec: 2e9 + 5, ValueNsec: 1},
		{ID: 4, Clock: 0, Notify: 1},
	}
	return tree
}

// POSIX timers go into the task core's timers as CRIU writes them and
// come back as they were.
func TestPosixTimersRoundTrip(t *testing.T) {
	want := timerTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	core := critDecode(t, dir, "core-100.img", &criu_core.CoreEntry{}).Entries[0].Message.(*criu_core.CoreEntry)
	ps := core.GetTc().GetTimers().GetPosix()
	if len(ps) != 3 || ps[1].GetItSigevNotify() != 4 || ps[1].GetNotifyThreadId() != 101 || ps[1].GetIsec() != 2 ||
		ps[1].GetInsec() != 5 || ps[0].GetSivalPtr() != 0x1234 || ps[2].GetItId() != 4 {
		t.Errorf("POSIX timers as crit sees them: %v", ps)
	}
	r, got := openTree(t, dir)
	if !reflect.DeepEqual(got.Tasks[0].PosixTimers, want.Tasks[0].PosixTimers) {
		t.Errorf("timers: got %+v\nwant %+v", got.Tasks[0].PosixTimers, want.Tasks[0].PosixTimers)
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	sum.WriteText(&text)
	if !strings.Contains(text.String(), "3 POSIX timers") {
		t.Errorf("mmcr show does not count the timers:\n%s", text.String())
	}
}

func TestPosixTimersRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"out of order", func(tr *Tree) { tr.Tasks[0].PosixTimers[2].ID = 1 }, "POSIX timer 1 out of order"},
		{"to another task's thread", func(tr *Tree) { tr.Tasks[0].PosixTimers[1].NotifyTID = 102 }, "notifies thread 102"},
		{"SIGEV_THREAD", func(tr *Tree) { tr.Tasks[0].PosixTimers[0].Notify = 2 }, "POSIX timer 0: notify 2"},
		{"no signal", func(tr *Tree) { tr.Tasks[0].PosixTimers[0].Signo = 0 }, "signal 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := timerTree()
			tc.mangle(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}
