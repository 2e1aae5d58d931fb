package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/childreaper"
	"github.com/mmcr/mmcr/internal/testproc"
)

// The harness is a child subreaper and reaps every child at once with
// internal/testproc (see there why); nothing may use os/exec once the
// reaper runs. What follows gives run.go testproc under the harness's
// names, with exit times and rusage (peak RSS) kept.

// exitEvent is one reaped child.
type exitEvent struct {
	status unix.WaitStatus
	rusage unix.Rusage
	at     time.Time
}

func exitOf(e childreaper.Exit) exitEvent { return exitEvent{e.Status, e.Rusage, e.At} }

// reaperT is the process's reaper (testproc's).
type reaperT struct{}

var reaper reaperT

func (reaperT) start() { testproc.StartReaping() }

// mark returns a point in time: waitExit(pid, mark) ignores earlier exits
// of the same pid (a dumped task and its restored copy share the pid).
func (reaperT) mark() uint64 { return testproc.Mark() }

func (reaperT) exited(pid int, since uint64) (exitEvent, bool) {
	e, ok := testproc.Exited(pid, since)
	return exitOf(e), ok
}

// waitExit waits up to timeout for pid to exit after since.
func (reaperT) waitExit(pid int, since uint64, timeout time.Duration) (exitEvent, bool) {
	e, ok := testproc.WaitExit(pid, since, timeout)
	return exitOf(e), ok
}

func describeStatus(ws unix.WaitStatus) string { return testproc.DescribeStatus(ws) }

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

// startProc starts p with a fixed minimal environment, so that runs do not
// depend on the caller's.
func startProc(p procSpec) (started, error) {
	s, err := testproc.Start(testproc.Spec{
		Path: p.path, Args: p.args, Dir: p.dir,
		Env:    []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
		Stdout: p.stdout, Stderr: p.stderr, Append: true, Setsid: p.setsid,
	})
	return started{s.Pid, s.Mark, s.At}, err
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

func descendants(root int) []int                 { return testproc.Descendants(root) }
func waitGone(pids []int, d time.Duration) []int { return testproc.WaitGone(pids, d) }
func killDescendants() []int                     { return testproc.KillDescendants() }
func closeOnExecAll() error                      { return testproc.CloseOnExecAbove2() }

// pssKiB sums the Pss of every task of pids.
func pssKiB(pids []int) (int64, error) { return testproc.PssKiB(pids) }

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
