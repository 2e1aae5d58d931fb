package dump

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// countdownCtx is a context whose Err turns non-nil on its n-th call:
// cancelling the dump at its n-th check, whichever step that is.
type countdownCtx struct {
	context.Context
	left  atomic.Int64
	calls atomic.Int64
}

func newCountdown(n int64) *countdownCtx {
	c := &countdownCtx{Context: context.Background()}
	c.left.Store(n)
	return c
}

func (c *countdownCtx) Err() error {
	c.calls.Add(1)
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// untouched checks that the failed dump left each task as it was: same
// maps (no scratch page), not traced, not stopped.
func untouched(t *testing.T, before map[int][]mapsLine, what string) {
	t.Helper()
	for pid, b := range before {
		if a := readMaps(t, pid); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s: task %d: maps changed by the failed dump:\nbefore %v\nafter  %v", what, pid, b, a)
		}
		if tp, err := tracerOf(pid, pid); err != nil || tp != 0 {
			t.Errorf("%s: task %d traced by %d after the failed dump (%v)", what, pid, tp, err)
		}
		st, _ := statusField(fmt.Sprintf("/proc/%d/status", pid), "State")
		if strings.HasPrefix(st, "t") || strings.HasPrefix(st, "T") {
			t.Errorf("%s: task %d left stopped (%s)", what, pid, st)
		}
	}
}

// noImage checks that a failed dump left no image that could pass for a
// complete one: no manifest, and nothing at all in a directory it made.
func noImage(t *testing.T, dir, what string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(dir, image.ManifestName)); err == nil {
		t.Errorf("%s: a manifest was left in %s", what, dir)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s: %d files left in %s", what, len(ents), dir)
	}
	if _, err := image.Open(dir); err == nil {
		t.Errorf("%s: image.Open accepts what the failed dump left", what)
	}
}

// TestDumpCanceledAtEveryCheck cancels the dump at its first check, then
// its second, and so on until a dump completes: every step of the dump
// (freeze, collection, each page batch, shared objects, ghosts, commit)
// meets the cancellation once. After each, the tree must be untouched and
// no image left; at the end the tree verifies all its memory.
func TestDumpCanceledAtEveryCheck(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	w := startWorkload(t, bin, t.TempDir())
	parent, child := w.pid(t, 1), w.pid(t, 2)
	before := map[int][]mapsLine{parent: readMaps(t, parent), child: readMaps(t, child)}
	base := t.TempDir()
	var n int64
	for ; n < 500; n++ {
		dir := filepath.Join(base, fmt.Sprintf("img-%d", n))
		ctx := newCountdown(n)
		err := Run(Options{PID: parent, Dir: dir, LeaveRunning: true, Ctx: ctx})
		if err == nil {
			t.Logf("dump completed once its first %d checks passed (%d checks in all)", n, ctx.calls.Load())
			break
		}
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("cancel at check %d: error %v does not wrap ErrCanceled", n, err)
		}
		what := fmt.Sprintf("cancel at check %d", n)
		untouched(t, before, what)
		noImage(t, dir, what)
		if t.Failed() {
			break
		}
	}
	if n < 5 {
		t.Errorf("only %d cancellation points: the dump checks its context too rarely", n)
	}
	w.finish(t)
}

// TestDumpTaskExitsMidDump kills the child while the dump is collecting
// the parent: the dump fails naming the child, the parent is left
// running exactly as it was, and no image is left.
func TestDumpTaskExitsMidDump(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	w := startWorkload(t, bin, t.TempDir())
	parent, child := w.pid(t, 1), w.pid(t, 2)
	before := map[int][]mapsLine{parent: readMaps(t, parent)}
	testHookRemote = func(pid int, scratch uint64) error {
		if pid == parent {
			unix.Kill(child, unix.SIGKILL)
		}
		return nil
	}
	defer func() { testHookRemote = nil }()
	dir := filepath.Join(t.TempDir(), "img")
	err := Run(Options{PID: parent, Dir: dir, Log: testLogger(t)})
	if err == nil {
		t.Fatal("dump succeeded although a task was killed during it")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), fmt.Sprintf("task %d", child)) {
		t.Errorf("error %q does not name the task that exited (%d)", err, child)
	}
	untouched(t, before, "child killed mid-dump")
	noImage(t, dir, "child killed mid-dump")
	// The parent runs on: it reaps its killed child, and its verdict
	// reports the child's death (it is not asked for).
	w.cmd.Process.Kill()
	w.cmd.Wait()
	w.done = true
}

// TestDumpSecondDumperRefused runs a second dump while the first holds the
// tree and its image dir: on the same tree it is refused because the tasks
// are already traced, on the same directory because it is locked. The
// first dump is not disturbed and its image is complete.
func TestDumpSecondDumperRefused(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	w := startWorkload(t, bin, t.TempDir())
	parent, child := w.pid(t, 1), w.pid(t, 2)
	dir := filepath.Join(t.TempDir(), "img")
	other := filepath.Join(t.TempDir(), "other")
	var sameTree, sameDir error
	ran := false
	testHookRemote = func(pid int, scratch uint64) error {
		if pid != child || ran {
			return nil
		}
		ran = true
		sameTree = Run(Options{PID: parent, Dir: other})
		sameDir = Run(Options{PID: parent, Dir: dir})
		return nil
	}
	defer func() { testHookRemote = nil }()
	if err := Run(Options{PID: parent, Dir: dir, LeaveRunning: true, Log: testLogger(t)}); err != nil {
		t.Fatalf("first dump: %v", err)
	}
	if !ran {
		t.Fatal("hook did not run")
	}
	t.Logf("same tree: %v", sameTree)
	t.Logf("same dir: %v", sameDir)
	if sameTree == nil || !strings.Contains(sameTree.Error(), fmt.Sprintf("pid %d is already traced by %d (another mmcr?)", parent, os.Getpid())) {
		t.Errorf("second dump of the same tree: %v, want 'pid %d is already traced by %d (another mmcr?)'", sameTree, parent, os.Getpid())
	}
	if _, err := os.Stat(other); err == nil {
		t.Errorf("refused dump left its image dir %s", other)
	}
	if !errors.Is(sameDir, image.ErrLocked) {
		t.Errorf("second dump into the same dir: %v, want image.ErrLocked", sameDir)
	}
	r, err := image.Open(dir)
	if err != nil {
		t.Fatalf("first dump's image: %v", err)
	}
	r.Close()
	w.finish(t)
}

// TestDumpImageModes: the image dir is 0700 and every file 0600, even when
// the directory existed with a looser mode.
func TestDumpImageModes(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	w := startWorkload(t, bin, t.TempDir())
	dir := filepath.Join(t.TempDir(), "img")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Run(Options{PID: w.pid(t, 1), Dir: dir, LeaveRunning: true}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	w.finish(t)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o700 {
		t.Errorf("image dir mode %#o, want 0700", m)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if m := info.Mode(); m != 0o600 {
			t.Errorf("%s: mode %v, want -rw-------", e.Name(), m)
		}
	}
}

// TestDumpAsOtherUser: root dumps a process of another uid (rlimits come
// from /proc/PID/limits: prlimit on another uid's task needs
// CAP_SYS_RESOURCE, which root may lack).
func TestDumpAsOtherUser(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	fileDir := t.TempDir()
	// t.TempDir's directories are 0700: let uid 65534 reach the binary
	// and the workload's directory.
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin)), fileDir, filepath.Dir(fileDir), filepath.Dir(filepath.Dir(fileDir))} {
		os.Chmod(d, 0o755)
	}
	os.Chmod(fileDir, 0o777)
	w := startWorkloadAs(t, 65534, bin, fileDir)
	_, tree := dumpTreeLeaveRunning(t, w.pid(t, 1)) // a uid 65534 process
	for _, tk := range tree.Tasks {
		if tk.Creds.UID != 65534 || tk.Creds.EUID != 65534 {
			t.Errorf("task %d: uid %d euid %d, want 65534", tk.PID, tk.Creds.UID, tk.Creds.EUID)
		}
		if len(tk.Rlimits) != numRlimits {
			t.Errorf("task %d: %d rlimits", tk.PID, len(tk.Rlimits))
		}
	}
	w.finish(t)
}

// TestDumpRefusesSharedMM: two processes of the tree sharing one address
// space (clone with CLONE_VM, a vfork child before its exec) cannot be
// restored as they were; the dump says so, naming both, and leaves the
// tree as it was.
func TestDumpRefusesSharedMM(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildC(t, "sharedvm"))
	parent, child := w.pid(t, 1), w.pid(t, 2)
	requireRefusal(t, w, []int{parent, child}, fmt.Sprintf("tasks %d and %d share one address space", parent, child))
}

// requireRefusal dumps the tree of pids[0] and requires the dump to refuse
// it (ErrUnsupported) with an error holding every one of wants, every task
// of pids left as it was and no image left; then the workload checks its
// own memory.
func requireRefusal(t *testing.T, w *workload, pids []int, wants ...string) {
	t.Helper()
	before := map[int][]mapsLine{}
	for _, pid := range pids {
		before[pid] = readMaps(t, pid)
	}
	dir := filepath.Join(t.TempDir(), "img")
	err := Run(Options{PID: pids[0], Dir: dir, Log: testLogger(t)})
	if err == nil || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("dump: %v; want a refusal (ErrUnsupported) naming %q", err, wants)
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("dump: %v; want a refusal naming %q", err, want)
		}
	}
	untouched(t, before, "after the refused dump")
	noImage(t, dir, "after the refused dump")
	w.finish(t)
}

// TestDumpLeaveRunningSignalPending queues SIGTERM for a task while the
// dump runs its remote syscalls (so it is pending, blocked, until the
// task is let go): the task, left running inside a blocking syscall, must
// see that syscall end with EINTR (its handler has no SA_RESTART), not run
// the handler and block again. Both kinds of restart: pause
// (-ERESTARTNOHAND) and waitpid (-ERESTARTSYS).
func TestDumpLeaveRunningSignalPending(t *testing.T) {
	requireRoot(t)
	bin := testproc.BuildC(t, testproc.EintrC, "-O1", "-Wall")
	for _, mode := range []string{"pause", "wait"} {
		t.Run(mode, func(t *testing.T) {
			w := startWorkload(t, bin, mode, "ready")
			pid := w.pid(t, 1)
			nr := unix.SYS_PAUSE
			if mode == "wait" {
				nr = unix.SYS_WAIT4
			}
			if err := testproc.WaitInSyscall(pid, nr, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			testHookRemote = func(p int, _ uint64) error {
				if p == pid {
					return unix.Kill(pid, unix.SIGTERM)
				}
				return nil
			}
			defer func() { testHookRemote = nil }()
			if err := Run(Options{PID: pid, Dir: filepath.Join(t.TempDir(), "img"), LeaveRunning: true, Log: testLogger(t)}); err != nil {
				t.Fatalf("dump: %v", err)
			}
			exited := make(chan error, 1)
			go func() { exited <- w.cmd.Wait() }()
			select {
			case err := <-exited:
				// It exits 0 only once the syscall returned EINTR after its
				// handler ran (1: another result, 3: its own watchdog).
				w.done = true
				if err != nil {
					t.Fatalf("task after dump: %v; stderr: %s", err, w.stderr.String())
				}
			case <-time.After(30 * time.Second):
				st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
				status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				t.Fatalf("task %d still blocked 30 s after the SIGTERM: stat %s syscall %s status %s", pid, st, sc, status)
			}
		})
	}
}

// TestDumpRefusesOtherNamespaces: a tree whose root lives in a pid, UTS
// or network namespace of its own would be restored into mmcr's (another
// pid, hostname, network): the dump refuses it by name and leaves it as
// it was.
func TestDumpRefusesOtherNamespaces(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	for _, tc := range []struct {
		kind  string
		flags uintptr
	}{{"pid", unix.CLONE_NEWPID}, {"uts", unix.CLONE_NEWUTS}, {"net", unix.CLONE_NEWNET}} {
		t.Run(tc.kind, func(t *testing.T) {
			w := startWorkloadCmd(t, func(cmd *exec.Cmd) {
				cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: tc.flags}
			}, bin, t.TempDir())
			// The ready line's pids are the namespace's own for a new
			// pid namespace: the root's here is the process's.
			pids := []int{w.cmd.Process.Pid}
			if tc.kind != "pid" {
				pids = append(pids, w.pid(t, 2))
			}
			requireRefusal(t, w, pids, fmt.Sprintf("task %d", pids[0]), "another "+tc.kind+" namespace than mmcr")
		})
	}
}

// TestDumpRefusesSeccompNotify: a task whose seccomp filter sends a
// syscall to a supervisor (here its parent, outside the dumped tree,
// holds the listener) is refused: restored without the listener, that
// syscall would fail with ENOSYS.
func TestDumpRefusesSeccompNotify(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildC(t, "seccompnotif"))
	pid := w.pid(t, 1)
	requireRefusal(t, w, []int{pid}, fmt.Sprintf("task %d", pid), "answers USER_NOTIF", "listener cannot be restored")
}

// TestDumpRefusesUserfaultfd: a task with a region registered with a
// userfaultfd that another process (its parent, outside the tree) holds
// is refused, naming the region: restored as plain memory, its missing
// pages would read as zeros instead of going to the monitor.
func TestDumpRefusesUserfaultfd(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildC(t, "uffdext"))
	pid := w.pid(t, 1)
	requireRefusal(t, w, []int{pid}, fmt.Sprintf("task %d", pid),
		fmt.Sprintf("vma %x-", w.addr(t, 2)), "registered with a userfaultfd")
}

// TestDumpRefusesWhatSeccompKills: a task whose seccomp filter kills it
// at a syscall dump would run in it (getitimer) is refused before that
// syscall runs, naming the filter's answer, and lives on as it was.
func TestDumpRefusesWhatSeccompKills(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildC(t, "seccompkill"))
	pid := w.pid(t, 1)
	requireRefusal(t, w, []int{pid}, fmt.Sprintf("task %d", pid), "seccomp filter answers KILL_PROCESS to getitimer")
}
