package restore

import (
	"fmt"

	"github.com/mmcr/mmcr/image"
)

// calls gathers syscalls for one thread together with the argument bytes
// they point at (paths, structs), and runs them as one batch: one write of
// the arguments into the restorer area's scratch, one ptrace round trip
// for the syscalls (runBatch). A remote syscall of its own costs two
// round trips (entry and exit stop); most per-task steps need no result
// from each other, so a task's state goes in one batch or, with more
// threads, one per thread and one more.
//
// Arguments are added before the syscall that uses them; an argument that
// does not fit any more runs what was gathered first. Nothing else may
// write the scratch between adding an argument and run: a step that needs
// a single remote syscall with a result (remoteOpen, tk.sys) calls run
// first.
type calls struct {
	rs  *restorer
	tid int
	s   *scratch
	b   batch
}

// scratchMax is how many bytes of arguments fit before the batch table.
const scratchMax = batchTableOff - scratchOff

// callsIn starts a batch for thread tid (a leader or another thread).
func (rs *restorer) callsIn(tid int) *calls {
	return &calls{rs: rs, tid: tid, s: rs.newScratch()}
}

// add appends syscall nr; what names it in an error.
func (c *calls) add(what string, nr uintptr, args ...uint64) { c.b.add(what, nr, args...) }

// addWant is add for a syscall whose result later entries rely on: run
// fails if it returns anything but want.
func (c *calls) addWant(what string, want uint64, nr uintptr, args ...uint64) {
	c.b.add(what, nr, args...)
	last := &c.b.ops[len(c.b.ops)-1]
	last.want, last.check = want, true
}

// arg puts b into the scratch and returns its address in the task. When
// the scratch is full, what was gathered so far runs first.
func (c *calls) arg(b []byte) (uint64, error) {
	if len(b)+8 > scratchMax {
		return 0, fmt.Errorf("thread %d: a syscall argument of %d bytes does not fit the restorer area", c.tid, len(b))
	}
	if len(c.s.buf)+len(b)+8 > scratchMax {
		if err := c.run(); err != nil {
			return 0, err
		}
	}
	return c.s.add(b), nil
}

// str puts a NUL-terminated string into the scratch.
func (c *calls) str(v string) (uint64, error) { return c.arg(append([]byte(v), 0)) }

// u64s puts 64-bit words into the scratch.
func (c *calls) u64s(words ...uint64) (uint64, error) {
	s := scratch{}
	s.u64s(words...)
	return c.arg(s.buf)
}

// run writes the arguments and runs the syscalls gathered so far, then
// starts afresh. The first failing syscall is the error.
func (c *calls) run() error {
	defer func() { c.s.buf, c.b.ops = c.s.buf[:0], c.b.ops[:0] }()
	if len(c.b.ops) == 0 {
		return nil
	}
	if len(c.s.buf) > 0 {
		if err := c.s.write(c.tid); err != nil {
			return err
		}
	}
	// runBatch runs in the thread named by the task's PID: any thread of
	// the task can run the loop, its syscalls then act on that thread.
	return c.rs.runBatch(&task{t: &image.Task{PID: c.tid}}, &c.b)
}
