package main

import (
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

// The harness is a child subreaper: every process it starts, and every
// orphan below it (a dumped tree's children, a restored tree once mmcr
// exits), becomes its child and is reaped at once by one goroutine. pid 1
// reaps slowly, and restore needs the original pids free.
//
// That goroutine waits for any child, so once it runs nothing may use
// os/exec (its Wait would lose the race): processes are started with
// startProc and waited for with reaper.waitExit, which also gives their
// exit time and rusage (peak RSS).

// exitEvent is one reaped child.
type exitEvent struct {
	status unix.WaitStatus
	rusage unix.Rusage
	at     time.Time
}

// reaperT adapts childreaper to the harness's needs.
type reaperT struct{ r *childreaper.Reaper }

var reaper = reaperT{childreaper.New()}

// start runs the reaping loop once per process.
func (x reaperT) start() { x.r.Start() }

// mark returns a point in time: waitExit(pid, mark) ignores earlier exits
// of the same pid (a dumped task and its restored copy share the pid).
func (x reaperT) mark() uint64 { return x.r.Mark() }

func (x reaperT) exited(pid int, since uint64) (exitEvent, bool) {
	e, ok := x.r.Exited(pid, since)
	return exitEvent{e.Status, e.Rusage, e.At}, ok
}

// waitExit waits up to timeout for pid to exit after since.
func (x reaperT) waitExit(pid int, since uint64, timeout time.Duration) (exitEvent, bool) {
	e, ok := x.r.WaitExit(pid, since, timeout)
	return exitEvent{e.Status, e.Rusage, e.At}, ok
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

// procSpec is a process to start: stdin /dev/null, stdout and stderr to
// the named files (appended to), fds above 2 never inherited.
type procSpec struct {
	path   string
	args   []string // without argv[0]
	dir    string
	stdout string
	stderr string
	setsid bool
}

// started is a running process and when it was started.
type started struct {
	pid  int
	mark uint64
	at   time.Time
}

// startProc starts p. ForkExec passes only the fds in Files; closeOnExecAll
// made sure nothing else the harness holds leaks.
func startProc(p procSpec) (started, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return started{}, err
	}
	defer devnull.Close()
	open := func(name string) (*os.File, error) {
		return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	out, err := open(p.stdout)
	if err != nil {
		return started{}, err
	}
	defer out.Close()
	errf, err := open(p.stderr)
	if err != nil {
		return started{}, err
	}
	defer errf.Close()
	mark := reaper.mark()
	at := time.Now()
	pid, err := syscall.ForkExec(p.path, append([]string{p.path}, p.args...), &syscall.ProcAttr{
		Dir:   p.dir,
		Env:   []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
		Files: []uintptr{devnull.Fd(), out.Fd(), errf.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: p.setsid},
	})
	if err != nil {
		return started{}, fmt.Errorf("start %s: %w", p.path, err)
	}
	return started{pid, mark, at}, nil
}

// runResult is a finished process: wall time from fork to reap, status,
// and its peak RSS (ru_maxrss, KiB).
type runResult struct {
	wall      time.Duration
	status    unix.WaitStatus
	maxRSSKiB int64
}

func (r runResult) ok() bool { return r.status.Exited() && r.status.ExitStatus() == 0 }

// runTimed starts p and waits up to timeout for it; on timeout it is killed.
func runTimed(p procSpec, timeout time.Duration) (runResult, error) {
	s, err := startProc(p)
	if err != nil {
		return runResult{}, err
	}
	e, ok := reaper.waitExit(s.pid, s.mark, timeout)
	if !ok {
		unix.Kill(s.pid, unix.SIGKILL)
		reaper.waitExit(s.pid, s.mark, 10*time.Second)
		return runResult{}, fmt.Errorf("%s %s did not finish within %v (killed)", filepath.Base(p.path), strings.Join(p.args, " "), timeout)
	}
	return runResult{wall: e.at.Sub(s.at), status: e.status, maxRSSKiB: e.rusage.Maxrss}, nil
}

// children lists the children of pid from /proc/PID/task/*/children.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// descendants returns root and every process below it, sorted.
func descendants(root int) []int {
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children(out[i])...)
	}
	sort.Ints(out)
	return out
}

// alive reports whether pid exists (a zombie's pid is still taken).
func alive(pid int) bool { return unix.Kill(pid, 0) != unix.ESRCH }

// waitGone waits until none of pids exists and returns those left.
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
		time.Sleep(2 * time.Millisecond)
	}
}

// killDescendants SIGKILLs every process below the harness, by pid, until
// none is left (they are reaped by the reaper) or 10 s pass.
func killDescendants() []int {
	self := os.Getpid()
	var killed []int
	seen := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ds := descendants(self)
		if len(ds) <= 1 {
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
		time.Sleep(10 * time.Millisecond)
	}
	return killed
}

// closeOnExecAll sets FD_CLOEXEC on every fd above 2 of the harness, so
// that a pipe inherited from a terminal or CI runner never reaches a
// workload (mmcr refuses to dump pipes).
func closeOnExecAll() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The fd of the directory read above is gone by now: EBADF is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return fmt.Errorf("set close-on-exec on fd %d: %w", fd, err)
		}
	}
	return nil
}

// pssKiB sums the Pss of every task of pids from /proc/PID/smaps_rollup.
func pssKiB(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			return 0, err
		}
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Pss:"); ok {
				f := strings.Fields(v)
				if len(f) == 0 {
					break
				}
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("smaps_rollup of %d: Pss %q: %w", pid, v, err)
				}
				sum += n
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("smaps_rollup of %d has no Pss line", pid)
		}
	}
	return sum, nil
}

// diskBytes is what the files under dir occupy (du: allocated blocks).
func diskBytes(dir string) (int64, error) {
	var sum int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if !d.IsDir() {
			sum += st.Blocks * 512
		}
		return nil
	})
	return sum, err
}
