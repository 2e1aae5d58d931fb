package restore

import (
	"fmt"

	"github.com/mmcr/mmcr/ptrace"
)

// Restore's syscall batches run ptrace's batch loop (ptrace.Batch): its
// code sits in the restorer area at batchCodeOff, its table takes the
// second half of the area, so that its syscalls can point at arguments
// written in the first half.
var batchCode = ptrace.BatchCode()

const (
	batchCodeOff  = 16 // in the restorer area, after `syscall; int3`
	batchEntry    = ptrace.BatchEntrySize
	batchTableOff = restorerSize / 2
	batchMax      = (restorerSize - batchTableOff) / batchEntry
)

// op is one syscall of a batch; what names it in errors.
type op struct {
	nr   uintptr
	args [6]uint64
	what string
	// want, when check is set, is the result later entries rely on (the
	// fd number an open returns, predicted by the caller).
	want  uint64
	check bool
}

// batch collects syscalls that need no result from each other.
type batch struct{ ops []op }

func (b *batch) add(what string, nr uintptr, args ...uint64) {
	o := op{nr: nr, what: what}
	copy(o.args[:], args)
	b.ops = append(b.ops, o)
}

// runBatch executes the batch in tk (leader), batchMax entries per round
// trip, and empties it. The first failing syscall is the error.
func (rs *restorer) runBatch(tk *task, b *batch) error {
	defer func() { b.ops = b.ops[:0] }()
	var pb ptrace.Batch
	for _, o := range b.ops {
		pb.Add(o.what, o.nr, o.args[:]...)
	}
	area := ptrace.BatchArea{Code: rs.area + batchCodeOff, Table: rs.area + batchTableOff, Max: batchMax}
	if err := ptrace.RunBatch(tk.t.PID, area, &pb); err != nil {
		return fmt.Errorf("task %d: %w", tk.t.PID, err)
	}
	for i, o := range b.ops {
		if got := pb.Result(i); o.check && got != o.want {
			return fmt.Errorf("task %d: %s returned %d, not the %d the entries after it relied on", tk.t.PID, o.what, got, o.want)
		}
	}
	return nil
}
