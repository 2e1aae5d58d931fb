package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/ptrace"
)

const seccompSetModeFilter = 1 // SECCOMP_SET_MODE_FILTER

// seccompFilterTSync is SECCOMP_FILTER_FLAG_TSYNC: install the filter in
// every thread of the process.
const seccompFilterTSync = 1

// sharedSeccomp returns how many of the first seccomp filters every thread
// of tk has alike: the kernel shares those between the threads (they were
// inherited, or synced), and restore makes them shared again, with TSYNC,
// so that a later seccomp(TSYNC) of the task's finds its threads' filters
// its own ancestors, as it did.
func sharedSeccomp(tk *task) int {
	n := len(tk.threads[0].th.Seccomp)
	for _, thr := range tk.threads[1:] {
		fs := thr.th.Seccomp
		n = min(n, len(fs))
		for i := range n {
			a, b := tk.threads[0].th.Seccomp[i], fs[i]
			if a.Flags != b.Flags || string(a.Prog) != string(b.Prog) {
				n = i
				break
			}
		}
	}
	if len(tk.threads) == 1 {
		return 0 // nothing to share: the thread's own run installs them
	}
	return n
}

// installSeccomp gives thread thr of task pid its dumped seccomp filters
// from the from-th on, the first installed first, with seccomp(2) as the
// thread itself would (with TSYNC, to every thread of the task, when
// tsync). It runs at release, after every other remote syscall of the
// thread but the restorer area's unmapping: a filter may refuse what
// restore runs. The kernel takes a filter from a thread with
// no_new_privs set (restored before) or CAP_SYS_ADMIN, as when the task
// installed it.
func (rs *restorer) installSeccomp(pid int, thr *thread, from, to int, tsync bool) error {
	for i := from; i < to; i++ {
		f := thr.th.Seccomp[i]
		// The whole area past the `syscall` instruction is free by now
		// (a filter may be larger than the scratch part): the program,
		// then its struct sock_fprog {len; filter}.
		prog := rs.area + scratchOff
		fprog := prog + uint64(len(f.Prog)+7)&^7
		if fprog+16 > rs.area+restorerSize {
			return fmt.Errorf("task %d thread %d: seccomp filter %d of %d bytes does not fit the restorer area", pid, thr.tid, i+1, len(f.Prog))
		}
		buf := make([]byte, fprog+16-prog)
		copy(buf, f.Prog)
		binary.LittleEndian.PutUint64(buf[fprog-prog:], uint64(len(f.Prog)/8))
		binary.LittleEndian.PutUint64(buf[fprog-prog+8:], prog)
		if err := ptrace.WriteMem(thr.tid, prog, buf); err != nil {
			return fmt.Errorf("task %d thread %d: write seccomp filter %d: %w", pid, thr.tid, i+1, err)
		}
		flags := uint64(f.Flags)
		if tsync {
			flags |= seccompFilterTSync
		}
		ret, err := thr.r.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, flags, fprog)
		if err == nil && ret != 0 {
			err = fmt.Errorf("thread %d could not take it (TSYNC)", ret)
		}
		if err != nil {
			return fmt.Errorf("task %d thread %d: install seccomp filter %d of %d: %w", pid, thr.tid, i+1, len(thr.th.Seccomp), err)
		}
	}
	return nil
}
