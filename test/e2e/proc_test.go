package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/childreaper"
)

// The test process is a child subreaper: every process a test starts, and
// every orphan below it (a dumped tree's children, a restored tree once
// mmcr exits), becomes our child and is reaped at once by one goroutine.
// pid 1 here reaps slowly, and restore needs the original pids free.
//
// Because that goroutine waits for any child, nothing after TestMain's
// builds may use os/exec (its Wait would lose the race): processes are
// started with startProc and waited for with reaper.waitExit.

// reaperT adapts childreaper to the driver's needs: exit statuses only.
type reaperT struct{ r *childreaper.Reaper }

var reaper = reaperT{childreaper.New()}

// loop starts reaping (the goroutine is childreaper's own).
func (x reaperT) loop() { x.r.Start() }

// mark returns a point in time: waitExit(pid, mark) ignores earlier exits
// of the same pid (a dumped task and its restored copy share the pid).
func (x reaperT) mark() uint64 { return x.r.Mark() }

func (x reaperT) exited(pid int, since uint64) (unix.WaitStatus, bool) {
	e, ok := x.r.Exited(pid, since)
	return e.Status, ok
}

// waitExit waits up to timeout for pid to exit after since.
func (x reaperT) waitExit(pid int, since uint64, timeout time.Duration) (unix.WaitStatus, bool) {
	e, ok := x.r.WaitExit(pid, since, timeout)
	return e.Status, ok
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit code %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("status 0x%x", int(ws))
}

// procSpec describes a process to start: stdin is /dev/null, stdout and
// stderr go to the named files (created or truncated).
type procSpec struct {
	path   string
	args   []string // without argv[0]
	dir    string
	env    []string
	stdout string
	stderr string
	setsid bool
}

// startProc starts p and returns its pid and the reaper mark taken just before.
func startProc(p procSpec) (int, uint64, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, 0, err
	}
	defer devnull.Close()
	open := func(name string) (*os.File, error) {
		return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	out, err := open(p.stdout)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	errf, err := open(p.stderr)
	if err != nil {
		return 0, 0, err
	}
	defer errf.Close()
	env := p.env
	if env == nil {
		env = os.Environ()
	}
	mark := reaper.mark()
	pid, err := syscall.ForkExec(p.path, append([]string{p.path}, p.args...), &syscall.ProcAttr{
		Dir:   p.dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), out.Fd(), errf.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: p.setsid},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", p.path, err)
	}
	return pid, mark, nil
}

// procTable reads pid → ppid for every process in /proc.
func procTable() map[int]int {
	ents, _ := os.ReadDir("/proc")
	t := make(map[int]int, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok {
			t[pid] = ppid
		}
	}
	return t
}

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

// descendants returns root and all processes below it, sorted by pid.
func descendants(root int) []int {
	kids := map[int][]int{}
	for pid, ppid := range procTable() {
		kids[ppid] = append(kids[ppid], pid)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		out = append(out, p)
		for _, k := range kids[p] {
			walk(k)
		}
	}
	walk(root)
	sort.Ints(out)
	return out
}

// alive reports whether pid exists at all (zombies included: a zombie's
// pid is still taken).
func alive(pid int) bool {
	return unix.Kill(pid, 0) != unix.ESRCH
}

// killDescendants SIGKILLs every process below the test process, by pid,
// until none is left (reaped) or 10 s pass. It returns what it killed.
func killDescendants() []int {
	self := os.Getpid()
	var killed []int
	seen := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ds := descendants(self)[1:]
		if len(ds) == 0 {
			break
		}
		for _, pid := range ds {
			if pid == self {
				continue
			}
			if !seen[pid] {
				seen[pid] = true
				killed = append(killed, pid)
			}
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return killed
}

// waitGone waits until none of pids exists (all reaped).
func waitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNoDescendants waits until the test process has no descendant left
// and returns those still there at the timeout.
func waitNoDescendants(timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := descendants(os.Getpid())[1:]
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
