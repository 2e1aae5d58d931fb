package dump

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Who may dump what.
//
// mmcr dumps only tasks its caller may ptrace, and lets the kernel decide:
// the seize of every thread is a PTRACE_MODE_ATTACH_REALCREDS check. mmcr
// makes no uid comparison of its own. For root that is everything. For a
// non-root user running a copy of mmcr that was granted capabilities with
// setcap (CAP_CHECKPOINT_RESTORE for /proc/PID/map_files, CAP_SYS_PTRACE
// for restore, see README), the capabilities would widen that check to
// every process of the machine: so the dumping thread lowers its effective
// set to CAP_CHECKPOINT_RESTORE alone for the whole dump (capset is per
// thread, and the dump runs on one locked thread), and the kernel then
// answers with the user's own rights.

// capCheckpointRestore is CAP_CHECKPOINT_RESTORE (Linux 5.9).
const capCheckpointRestore = 40

// capData is the two 32-bit halves of one capability set pair.
type capState [2]unix.CapUserData

func getThreadCaps() (capState, error) {
	var data capState
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return data, os.NewSyscallError("capget", err)
	}
	return data, nil
}

func setThreadCaps(data capState) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// lowerPrivileges keeps only CAP_CHECKPOINT_RESTORE in the calling
// thread's effective set when mmcr's real uid is not root, and returns
// the function that puts the set back. Precondition: the OS thread is
// locked (capabilities are per thread).
func lowerPrivileges() (restore func(), err error) {
	if unix.Getuid() == 0 {
		return func() {}, nil
	}
	old, err := getThreadCaps()
	if err != nil {
		return nil, err
	}
	lowered := old
	lowered[0].Effective &= 0
	lowered[1].Effective &= 1 << (capCheckpointRestore - 32)
	if lowered == old {
		return func() {}, nil
	}
	if err := setThreadCaps(lowered); err != nil {
		return nil, err
	}
	return func() { setThreadCaps(old) }, nil
}

// statusField returns the value of one "Key:\tvalue" line of a
// /proc/.../status file, "" when absent.
func statusField(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", nil
}

// tracerOf returns the pid tracing thread tid of pid, 0 when none.
func tracerOf(pid, tid int) (int, error) {
	v, err := statusField(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid), "TracerPid")
	if err != nil || v == "" {
		return 0, err
	}
	return strconv.Atoi(v)
}

// processOf returns the process (thread group) of thread tid: TracerPid
// names the tracing thread, a user knows the process.
func processOf(tid int) int {
	v, err := statusField(fmt.Sprintf("/proc/%d/status", tid), "Tgid")
	if err != nil {
		return tid
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return tid
}

// explainDenied turns the EPERM of a seize into the reason a user can act
// on: whose process it is and who mmcr runs as.
func explainDenied(pid int, err error) error {
	owner := "?"
	if v, serr := statusField(fmt.Sprintf("/proc/%d/status", pid), "Uid"); serr == nil {
		if f := strings.Fields(v); len(f) > 0 {
			owner = f[0]
		}
	}
	if unix.Getuid() != 0 {
		return fmt.Errorf("not permitted to trace pid %d (owned by uid %s) as uid %d: "+
			"a non-root user may dump only processes it may ptrace itself (its own, dumpable ones): %w",
			pid, owner, unix.Getuid(), err)
	}
	return fmt.Errorf("not permitted to trace pid %d (owned by uid %s): %w", pid, owner, err)
}
