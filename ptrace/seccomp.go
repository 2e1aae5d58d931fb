package ptrace

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	reqSeccompGetFilter   = 0x420c // PTRACE_SECCOMP_GET_FILTER
	reqSeccompGetMetadata = 0x420d // PTRACE_SECCOMP_GET_METADATA

	// SeccompFilterFlagLog is SECCOMP_FILTER_FLAG_LOG, the one flag of an
	// installed filter the kernel reports (PTRACE_SECCOMP_GET_METADATA).
	SeccompFilterFlagLog = 2
	// sockFilterSize is sizeof(struct sock_filter): code, jt, jf, k.
	sockFilterSize = 8
	// maxSeccompInsns is BPF_MAXINSNS, the longest filter the kernel takes.
	maxSeccompInsns = 4096
)

// SeccompFilter is one seccomp filter of a thread: its classic BPF program
// (struct sock_filter array, as given to seccomp(2)) and its flags.
type SeccompFilter struct {
	Prog  []byte
	Flags uint32
}

// ErrSeccompUnreadable is a filter the kernel cannot give back (an eBPF
// one, -EMEDIUMTYPE).
var ErrSeccompUnreadable = errors.New("seccomp filter that is not classic BPF")

// SeccompFilters returns the seccomp filters of stopped tracee tid, the
// first installed first; none when it runs without (or in strict mode:
// the caller tells those apart by /proc/PID/status). Reading them takes
// CAP_SYS_ADMIN and a tracer under no seccomp filter of its own.
func SeccompFilters(tid int) ([]SeccompFilter, error) {
	var filters []SeccompFilter
	for i := 0; ; i++ {
		n, err := req("PTRACE_SECCOMP_GET_FILTER", reqSeccompGetFilter, tid, uintptr(i), 0)
		switch {
		case errors.Is(err, unix.EINVAL) && i == 0:
			return nil, nil // not in filter mode
		case errors.Is(err, unix.ENOENT):
			return filters, nil // past the last one
		case errors.Is(err, unix.EMEDIUMTYPE):
			return nil, fmt.Errorf("thread %d filter %d: %w", tid, i, ErrSeccompUnreadable)
		case err != nil:
			return nil, err
		case n == 0 || n > maxSeccompInsns:
			return nil, fmt.Errorf("thread %d: seccomp filter %d of %d instructions", tid, i, n)
		}
		prog := make([]byte, n*sockFilterSize)
		got, err := reqPtr("PTRACE_SECCOMP_GET_FILTER", reqSeccompGetFilter, tid, uintptr(i), unsafe.Pointer(&prog[0]))
		if err != nil {
			return nil, err
		}
		if got != n {
			return nil, fmt.Errorf("thread %d: seccomp filter %d changed while read (%d, then %d instructions)", tid, i, n, got)
		}
		md := struct{ FilterOff, Flags uint64 }{FilterOff: uint64(i)}
		if _, err := reqPtr("PTRACE_SECCOMP_GET_METADATA", reqSeccompGetMetadata, tid, unsafe.Sizeof(md), unsafe.Pointer(&md)); err != nil {
			return nil, err
		}
		filters = append(filters, SeccompFilter{Prog: prog, Flags: uint32(md.Flags)})
	}
}
