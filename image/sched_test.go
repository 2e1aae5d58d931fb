package image

import (
	"errors"
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"google.golang.org/protobuf/proto"
)

// TestDecodeSched: the scheduling fields of a thread core and the task's
// oom_score_adj decode as written, at the ends of their ranges too; an
// image without them decodes to "unknown" (nil), not to zero; anything a
// thread cannot have is a corrupt image naming the core file.
func TestDecodeSched(t *testing.T) {
	_, _, files := sampleFiles(t)
	const name = "core-100.img" // the root's leader: thread and task fields
	for _, tc := range []struct {
		what    string
		mangle  func(ce *criu_core.CoreEntry)
		msg     string // "": decodes
		sched   *Sched
		oomAdj  *int
		noSched bool
	}{
		{what: "fifo 99, nice -20, oom -1000", mangle: func(ce *criu_core.CoreEntry) {
			setSched(ce, SchedFIFO, 99, -20)
			ce.Tc.OomScoreAdj = proto.Int32(-1000)
		}, sched: &Sched{Policy: SchedFIFO, Prio: 99, Nice: -20}, oomAdj: new(-1000)},
		{what: "rr 1 reset-on-fork, nice 19, oom 1000", mangle: func(ce *criu_core.CoreEntry) {
			setSched(ce, SchedRR|SchedResetOnFork, 1, 19)
			ce.Tc.OomScoreAdj = proto.Int32(1000)
		}, sched: &Sched{Policy: SchedRR | SchedResetOnFork, Prio: 1, Nice: 19}, oomAdj: new(1000)},
		{what: "batch", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedBatch, 0, 7) },
			sched: &Sched{Policy: SchedBatch, Nice: 7}, oomAdj: new(0)},
		{what: "absent", mangle: func(ce *criu_core.CoreEntry) {
			tc := ce.ThreadCore
			tc.SchedPolicy, tc.SchedPrio, tc.SchedNice, ce.Tc.OomScoreAdj = nil, nil, nil, nil
		}, noSched: true},
		{what: "deadline", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, 6, 0, 0) }, msg: "scheduling policy 0x6"},
		{what: "unknown flag", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedOther|0x100, 0, 0) }, msg: "scheduling policy 0x100"},
		{what: "fifo 0", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedFIFO, 0, 0) }, msg: "real-time priority 0 under policy 1, want 1..99"},
		{what: "rr 100", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedRR, 100, 0) }, msg: "real-time priority 100"},
		{what: "other with a priority", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedOther, 5, 0) }, msg: "want 0"},
		{what: "nice 20", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedIdle, 0, 20) }, msg: "nice 20"},
		{what: "nice -21", mangle: func(ce *criu_core.CoreEntry) { setSched(ce, SchedBatch, 0, -21) }, msg: "nice -21"},
		{what: "nice without policy", mangle: func(ce *criu_core.CoreEntry) {
			ce.ThreadCore.SchedPolicy = nil
		}, msg: "without a scheduling policy"},
		{what: "oom 1001", mangle: func(ce *criu_core.CoreEntry) { ce.Tc.OomScoreAdj = proto.Int32(1001) }, msg: "oom_score_adj 1001"},
		{what: "oom -1001", mangle: func(ce *criu_core.CoreEntry) { ce.Tc.OomScoreAdj = proto.Int32(-1001) }, msg: "oom_score_adj -1001"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var ce criu_core.CoreEntry
			if err := decodeOneBytes(name, files[name], "CORE", protoInto(&ce)); err != nil {
				t.Fatal(err)
			}
			tc.mangle(&ce)
			m := make(map[string][]byte, len(files))
			for k, v := range files {
				m[k] = v
			}
			m[name] = encodeImage(t, "CORE", &ce)
			tree, err := memReader(m).Tree()
			if tc.msg != "" {
				if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name+": ") ||
					!strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want a corrupt %s containing %q", err, name, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			task := tree.Tasks[0]
			got := task.Threads[0].Sched
			if tc.noSched {
				if got != nil || task.OomScoreAdj != nil {
					t.Fatalf("image without the fields: sched %+v, oom_score_adj %v; want both unknown (nil)", got, task.OomScoreAdj)
				}
				return
			}
			if got == nil || *got != *tc.sched {
				t.Errorf("sched %+v, want %+v", got, *tc.sched)
			}
			if task.OomScoreAdj == nil || *task.OomScoreAdj != *tc.oomAdj {
				t.Errorf("oom_score_adj %v, want %d", task.OomScoreAdj, *tc.oomAdj)
			}
		})
	}
}

func setSched(ce *criu_core.CoreEntry, policy, prio uint32, nice int32) {
	tc := ce.ThreadCore
	tc.SchedPolicy, tc.SchedPrio, tc.SchedNice = proto.Uint32(policy), proto.Uint32(prio), proto.Int32(nice)
}
