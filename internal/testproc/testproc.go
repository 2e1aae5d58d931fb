// Package testproc starts, waits for and kills the processes of mmcr's
// tests, its end-to-end suite and its benchmark: C workloads built with
// gcc, mmcr itself, and whatever trees they leave behind.
//
// A driver that makes itself a child subreaper (BecomeSubreaper) gets every
// orphan below it: a dumped tree's children, a restored tree once mmcr
// exits. pid 1 reaps slowly in this sandbox and a restore needs the dumped
// pids free, so such a driver reaps at once with StartReaping. From then on
// one goroutine waits for any child: nothing else may wait (os/exec's Wait
// would lose the race), so processes are started with Start and waited for
// with WaitExit.
package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/childreaper"
)

// CloseOnExecAbove2 sets FD_CLOEXEC on every fd of this process above 2.
// Whatever started us may leave fds open without it (this sandbox hands
// children a pipe on fd 251 and /dev/null on fd 10, a CI runner its own
// pipes): they would leak into every workload, and mmcr refuses to dump
// pipes.
func CloseOnExecAbove2() error {
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

// BecomeSubreaper makes this process the parent of every orphan below it,
// so that killed or dumped trees are reaped here, at once, and their pids
// are free for a restore.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// reaper is the process's one reaper: it waits for any child.
var reaper = childreaper.New()

// StartReaping starts reaping every child; later calls do nothing.
func StartReaping() { reaper.Start() }

// Mark returns a point in time: Exited(pid, mark) ignores earlier exits of
// the same pid (a dumped task and its restored copy share the pid).
func Mark() uint64 { return reaper.Mark() }

// Exited reports pid's first exit after since, if it was reaped.
func Exited(pid int, since uint64) (childreaper.Exit, bool) { return reaper.Exited(pid, since) }

// WaitExit waits up to timeout for pid to exit after since.
func WaitExit(pid int, since uint64, timeout time.Duration) (childreaper.Exit, bool) {
	return reaper.WaitExit(pid, since, timeout)
}

// DescribeStatus says how a process ended, for failure messages.
func DescribeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit code %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("status 0x%x", int(ws))
}

// Spec is a process to start: stdin /dev/null, stdout and stderr to the
// named files. Only fds 0-2 are passed: nothing else the driver holds
// reaches the process.
type Spec struct {
	Path   string
	Args   []string // without argv[0]
	Dir    string
	Env    []string // nil: this process's environment
	Stdout string
	Stderr string
	Append bool // append to Stdout and Stderr instead of truncating them
	Setsid bool
}

// Started is a running process: its pid, the reaper mark taken just
// before it was forked and when it was.
type Started struct {
	Pid  int
	Mark uint64
	At   time.Time
}

// Start starts p with ForkExec (not os/exec: the reaper owns all children).
func Start(p Spec) (Started, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Started{}, err
	}
	defer devnull.Close()
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if p.Append {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	out, err := os.OpenFile(p.Stdout, mode, 0o644)
	if err != nil {
		return Started{}, err
	}
	defer out.Close()
	errf, err := os.OpenFile(p.Stderr, mode, 0o644)
	if err != nil {
		return Started{}, err
	}
	defer errf.Close()
	env := p.Env
	if env == nil {
		env = os.Environ()
	}
	mark := Mark()
	at := time.Now()
	pid, err := syscall.ForkExec(p.Path, append([]string{p.Path}, p.Args...), &syscall.ProcAttr{
		Dir:   p.Dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), out.Fd(), errf.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: p.Setsid},
	})
	if err != nil {
		return Started{}, fmt.Errorf("start %s: %w", p.Path, err)
	}
	return Started{pid, mark, at}, nil
}

// WaitPidfile waits up to timeout for s, a workload started in dir, to
// write dir/pidfile: workloads write it (atomically, by rename) once every
// task of their tree is ready. It fails at once if s exits first.
func WaitPidfile(dir string, s Started, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "pidfile"))
		if err == nil {
			if got := strings.TrimSpace(string(b)); got != strconv.Itoa(s.Pid) {
				return fmt.Errorf("workload pidfile says %q, started pid %d", got, s.Pid)
			}
			return nil
		}
		if e, ok := Exited(s.Pid, s.Mark); ok {
			return fmt.Errorf("workload %d exited during setup: %s", s.Pid, DescribeStatus(e.Status))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("workload %d wrote no pidfile within %v", s.Pid, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Children lists the children of pid, of every thread, sorted.
func Children(pid int) []int {
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
	sort.Ints(out)
	return out
}

// Descendants returns root and every process below it, sorted.
func Descendants(root int) []int {
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, Children(out[i])...)
	}
	sort.Ints(out)
	return out
}

// Alive reports whether pid exists (a zombie's pid is still taken).
func Alive(pid int) bool { return unix.Kill(pid, 0) != unix.ESRCH }

// WaitGone waits up to timeout until none of pids exists and returns
// those left.
func WaitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, p := range pids {
			if Alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// KillDescendants SIGKILLs every process below this one, by pid (never by
// name: other people's processes share the machine), until none is left
// (reaped) or 10 s pass. It returns what it killed.
func KillDescendants() []int {
	self := os.Getpid()
	var killed []int
	seen := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ds := Descendants(self)
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

// CompileC runs gcc -o out src flags... (flags after src, so that -l
// libraries resolve). Drivers build their workloads with it before they
// start reaping: it uses os/exec.
func CompileC(gcc, out, src string, flags ...string) error {
	args := append([]string{"-o", out, src}, flags...)
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc %s: %v\n%s", src, err, b)
	}
	return nil
}

// BuildC compiles the C workload src into a temporary binary named after
// it (a workload may check its own comm) and returns its path. Without gcc
// the test is skipped: the workloads cannot exist.
func BuildC(t testing.TB, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the workloads are built from C sources")
	}
	bin := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	if err := CompileC(gcc, bin, src, flags...); err != nil {
		t.Fatal(err)
	}
	return bin
}

// PssKiB sums the Pss of every task of pids from /proc/PID/smaps_rollup:
// memory shared copy-on-write counts once for the tree, so a restore that
// loses the sharing shows.
func PssKiB(pids []int) (int64, error) {
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

// ThreadsC is the threads workload (testdata/threads.c here) that the dump
// and the restore tests share, as a path from either package's directory.
const ThreadsC = "../internal/testproc/testdata/threads.c"

// EintrC is the workload of a signal already pending when a traced task
// is let go (testdata/eintr.c), shared by the dump and restore tests.
const EintrC = "../internal/testproc/testdata/eintr.c"

// WaitInSyscall waits until pid's main thread sleeps in syscall nr
// (/proc/PID/syscall), up to timeout: a test that means to checkpoint a
// task inside a blocking syscall must not catch it on its way there.
func WaitInSyscall(pid, nr int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	path := fmt.Sprintf("/proc/%d/syscall", pid)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 && f[0] == strconv.Itoa(nr) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %d not in syscall %d after %v (%s: %q, %v)", pid, nr, timeout, path, b, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Sleeper starts a process that only sleeps, killed and waited for at
// cleanup. It uses os/exec: not for drivers that reap with StartReaping.
func Sleeper(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// ThreadStat returns thread tid of pid's state letter and CPU time in
// clock ticks (utime+stime), from /proc/PID/task/TID/stat.
func ThreadStat(pid, tid int) (state byte, ticks uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("task %d thread %d: bad stat %q", pid, tid, b)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("task %d thread %d: short stat %q", pid, tid, b)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // utime, field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("task %d thread %d: bad stat %q", pid, tid, b)
	}
	return f[0][0], ut + st, nil
}

// WaitStopped waits, up to timeout, until every thread of pid is in a
// stop (state T), and reports whether they got there. A task let go into
// a group stop enters it from the kernel, but on a loaded machine it may
// show R a moment first.
func WaitStopped(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		stopped := len(ents) > 0
		for _, ent := range ents {
			tid, _ := strconv.Atoi(ent.Name())
			if st, _, err := ThreadStat(pid, tid); err != nil || st != 'T' {
				stopped = false
			}
		}
		if stopped {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// HugePages makes sure n default-size huge pages are free for the test,
// raising vm.nr_hugepages (and putting it back at cleanup) when the pool is
// smaller, or skips the test: without root, hugetlb or enough unfragmented
// memory there are none to have. The pool is the machine's: the test holds
// a lock that the hugetlb tests of other packages, which go test runs at
// the same time, wait for (once per test: not again in its subtests).
func HugePages(t testing.TB, n int) {
	t.Helper()
	lockHugePages(t)
	const knob = "/proc/sys/vm/nr_hugepages"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("no hugetlb here: %v", err)
	}
	if free := freeHugePages(t); free < n {
		total, _ := strconv.Atoi(strings.TrimSpace(string(old)))
		if err := os.WriteFile(knob, []byte(strconv.Itoa(total+n-free)), 0); err != nil {
			t.Skipf("cannot reserve huge pages: %v", err)
		}
		t.Cleanup(func() { os.WriteFile(knob, old, 0) })
	}
	// The kernel reserves what it can find: a fragmented memory may give
	// fewer pages than asked.
	if free := freeHugePages(t); free < n {
		t.Skipf("%d free huge pages, the test needs %d", free, n)
	}
}

func freeHugePages(t testing.TB) int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("read meminfo: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "HugePages_Free:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// MountHugetlbfs mounts a hugetlbfs of 2 MiB pages on a directory of the
// test's and returns the path of a file to be in it; the file is removed
// and the mount detached at cleanup. It skips the test where the mount
// fails.
func MountHugetlbfs(t testing.TB) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount("none", mnt, "hugetlbfs", 0, "pagesize=2M"); err != nil {
		t.Skipf("mount hugetlbfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	file := filepath.Join(mnt, "buf")
	t.Cleanup(func() { os.Remove(file) })
	return file
}

// lockHugePages takes the machine-wide lock of the tests that use the huge
// page pool until t ends.
func lockHugePages(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "mmcr-test-hugepages.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("huge page test lock: %v", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("huge page test lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // the lock goes with the file
}
