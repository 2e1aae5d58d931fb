package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/ptrace"
)

const seccompSetModeFilter = 1 // SECCOMP_SET_MODE_FILTER

// installSeccomp gives thread thr of task pid its dumped seccomp filters,
// the first installed first, with seccomp(2) as the thread itself would.
// It runs at release, after every other remote syscall of the thread but
// the restorer area's unmapping: a filter may refuse what restore runs.
// The kernel takes a filter from a thread with no_new_privs set (restored
// before) or CAP_SYS_ADMIN, as when the task installed it.
func (rs *restorer) installSeccomp(pid int, thr *thread) error {
	for i, f := range thr.th.Seccomp {
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
		if _, err := thr.r.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, uint64(f.Flags), fprog); err != nil {
			return fmt.Errorf("task %d thread %d: install seccomp filter %d of %d: %w", pid, thr.tid, i+1, len(thr.th.Seccomp), err)
		}
	}
	return nil
}
