package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mmcr/mmcr/internal/testproc"
)

// Processes are started, reaped and killed with internal/testproc: the
// test process is a child subreaper that reaps every child at once, so
// nothing after TestMain's builds may use os/exec.

// procStat returns the state letter and ppid of pid.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], ppid, true
}

// waitNoDescendants waits until the test process has no descendant left
// and returns those still there at the timeout.
func waitNoDescendants(timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := testproc.Descendants(os.Getpid())[1:]
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describePids(pids []int) string {
	var s []string
	for _, p := range pids {
		st, ppid, ok := procStat(p)
		if !ok {
			s = append(s, fmt.Sprintf("%d (gone)", p))
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		s = append(s, fmt.Sprintf("%d (%s, state %c, ppid %d)", p, strings.TrimSpace(string(comm)), st, ppid))
	}
	return strings.Join(s, ", ")
}

// readMaps returns the lines of /proc/PID/maps.
func readMaps(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

// normalizeMapsLine masks the one field a faithful restore cannot keep:
// the inode number of objects that restore must create anew (shared
// anonymous memory, memfds, SysV shm, deleted files). Everything else —
// range, perms, offset, device, path — must match exactly.
func normalizeMapsLine(l string) string {
	f := strings.Fields(l)
	if len(f) < 6 {
		return strings.Join(f, " ")
	}
	path := strings.Join(f[5:], " ")
	if strings.HasSuffix(path, "(deleted)") || strings.HasPrefix(path, "/memfd:") ||
		strings.HasPrefix(path, "/SYSV") || strings.HasPrefix(path, "/dev/zero") {
		f[4] = "*"
	}
	return strings.Join(f[:5], " ") + " " + path
}

// diffMaps compares two maps snapshots and describes the first difference.
// Every VMA counts: restore keeps touching anonymous VMAs apart as the
// kernel had them (restore.keepApart).
func diffMaps(before, after []string) string {
	n := len(before)
	if len(after) > n {
		n = len(after)
	}
	for i := 0; i < n; i++ {
		var b, a string
		if i < len(before) {
			b = before[i]
		}
		if i < len(after) {
			a = after[i]
		}
		if normalizeMapsLine(a) != normalizeMapsLine(b) {
			return fmt.Sprintf("first difference at line %d of %d/%d:\n  before: %s\n  after:  %s",
				i+1, len(before), len(after), orNone(b), orNone(a))
		}
	}
	return ""
}

// namedMappings drops the unnamed anonymous lines of a maps listing (no
// pathname column), keeping files, shared objects and [heap]/[stack]/...
func namedMappings(lines []string) []string {
	var out []string
	for _, l := range lines {
		if len(strings.Fields(l)) > 5 {
			out = append(out, l)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(no line)"
	}
	return s
}

// tail returns the last n lines of a file, or a note why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) == 0 {
		return "(empty)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	pre := ""
	if len(lines) > n {
		pre = fmt.Sprintf("(... %d earlier lines in %s)\n", len(lines)-n, filepath.Base(path))
		lines = lines[len(lines)-n:]
	}
	return pre + strings.Join(lines, "\n")
}

// threadReport describes every thread of pid for a hang: its state, CPU
// time, what it waits in, and its signal masks. A restored task that never
// answers SIGTERM either blocks it (SigBlk), never saw it (SigPnd/ShdPnd),
// or spins (state R, utime growing, syscall "running").
func threadReport(pid int) string {
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return fmt.Sprintf("task %d: %v", pid, err)
	}
	var b strings.Builder
	for _, d := range tids {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, d.Name())
		comm, _ := os.ReadFile(dir + "comm")
		fmt.Fprintf(&b, "\n  tid %s (%s)", d.Name(), strings.TrimSpace(string(comm)))
		if st, err := os.ReadFile(dir + "stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i >= 0 {
				if f := strings.Fields(string(st[i+1:])); len(f) > 12 {
					fmt.Fprintf(&b, " state %s utime %s stime %s", f[0], f[11], f[12])
				}
			}
		}
		wchan, _ := os.ReadFile(dir + "wchan")
		sc, _ := os.ReadFile(dir + "syscall")
		fmt.Fprintf(&b, " wchan %q syscall %q", wchan, strings.TrimSpace(string(sc)))
		status, _ := os.ReadFile(dir + "status")
		for _, l := range strings.Split(string(status), "\n") {
			for _, k := range []string{"SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:"} {
				if strings.HasPrefix(l, k) {
					fmt.Fprintf(&b, " %s %s", k, strings.TrimSpace(l[len(k):]))
				}
			}
		}
	}
	return b.String()
}
