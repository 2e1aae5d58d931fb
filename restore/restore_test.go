package restore

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/dump"
	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

func TestMain(m *testing.M) {
	// The restore stub is this test binary exec'd with StubArg; it is
	// stopped at exec and never gets here, but exit if it ever does.
	if len(os.Args) > 1 && os.Args[1] == StubArg {
		os.Exit(1)
	}
	// Killed trees are reparented to us and reaped (waitGone), so their
	// pids are free for the restore. Best effort, as is the next step.
	testproc.BecomeSubreaper()
	testproc.CloseOnExecAbove2()
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("restore needs root (ptrace, clone3 set_tid, map_files)")
	}
}

// buildC compiles testdata/NAME.c into a temporary binary.
func buildC(t *testing.T, name string) string {
	t.Helper()
	return testproc.BuildC(t, filepath.Join("testdata", name+".c"), "-O1", "-Wall", "-pthread")
}

// buildProbed compiles testdata/name.c and runs it as "NAME probe": a
// workload whose feature the kernel or machine lacks (what) exits non-zero
// there, and the test is skipped.
func buildProbed(t *testing.T, name, what string) string {
	t.Helper()
	bin := buildC(t, name)
	if err := exec.Command(bin, "probe").Run(); err != nil {
		t.Skipf("no %s here: %v", what, err)
	}
	return bin
}

// hugetlbBin is the hugetlb workload, with pages free huge pages held for
// the test (testproc.HugePages).
func hugetlbBin(t *testing.T, pages int) string {
	t.Helper()
	needRoot(t)
	testproc.HugePages(t, pages)
	return buildProbed(t, "hugetlb", "2 MiB huge page to map")
}

// waitGone waits until every pid is reaped (we are their subreaper).
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
			if _, err := os.Stat("/proc/" + itoa(pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still there after the dump", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// dumped is a workload that was dumped.
type dumped struct {
	dir    string
	tree   *image.Tree
	pids   []int
	before map[int]string // maps at dump
	cmd    *exec.Cmd      // still running when left running
	out    io.Reader      // the rest of its stdout, after READY
}

// dumpWorkload runs bin with args, waits for its READY line and dumps it.
// Unless leave, the tree is killed and reaped.
func dumpWorkload(t *testing.T, leave bool, bin string, args ...string) *dumped {
	t.Helper()
	return dumpWorkloadWhen(t, leave, nil, bin, args...)
}

// dumpWorkloadWhen is dumpWorkload that also waits for ready(root), when
// set, between the READY line and the dump.
func dumpWorkloadWhen(t *testing.T, leave bool, ready func(root int) error, bin string, args ...string) *dumped {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY") {
		killWorkload(t, cmd)
		t.Fatalf("workload did not get ready: %q %v", line, err)
	}
	if ready != nil {
		if err := ready(cmd.Process.Pid); err != nil {
			killWorkload(t, cmd)
			t.Fatal(err)
		}
	}
	d := &dumped{dir: filepath.Join(t.TempDir(), "img"), cmd: cmd, out: rd}
	d.before = treeMaps(t, cmd.Process.Pid)
	if err := dump.Run(dump.Options{PID: cmd.Process.Pid, Dir: d.dir, LeaveRunning: leave, Log: testLog(t)}); err != nil {
		killWorkload(t, cmd)
		if strings.Contains(err.Error(), "read rlimit") {
			// prlimit on a task of another uid needs CAP_SYS_RESOURCE.
			t.Skipf("dump cannot read this task's rlimits yet: %v", err)
		}
		t.Fatalf("dump: %v", err)
	}
	img, err := image.Open(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.tree, err = img.Tree(); err != nil {
		t.Fatal(err)
	}
	img.Close()
	for _, tk := range d.tree.Tasks {
		d.pids = append(d.pids, tk.PID)
	}
	if !leave {
		cmd.Wait()
		waitGone(t, d.pids)
	}
	return d
}

// killWorkload SIGKILLs the workload's whole tree, its forked children
// too (they would wait for a SIGTERM for good), and reaps it.
func killWorkload(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	pids := testproc.Descendants(cmd.Process.Pid)
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	cmd.Wait()
	waitGone(t, pids)
}

// dumpRestore dumps bin (the tree is killed), restores it with its stdout
// on a pipe, SIGTERMs the root and returns the root's exit code and output.
func dumpRestore(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	return restoreDumped(t, dumpWorkload(t, false, bin, args...))
}

// restoreDumped restores d with its stdout on a pipe, checks its maps and
// shared objects, SIGTERMs the root and returns the root's exit code and
// output.
func restoreDumped(t *testing.T, d *dumped) (int, string) {
	t.Helper()
	dir, tree, pids, before := d.dir, d.tree, d.pids, d.before

	root, r := restoreWithOutput(t, Options{Dir: dir})
	if root != pids[0] {
		t.Errorf("root pid %d, want %d", root, pids[0])
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + itoa(pid)); err != nil {
			t.Errorf("restored pid %d missing: %v", pid, err)
		}
	}
	after := treeMaps(t, root)
	for pid, want := range before {
		if got := after[pid]; got != want {
			t.Errorf("maps of %d differ after restore:\n%s", pid, lineDiff(want, got))
		}
	}
	checkSharedInodes(t, tree)
	checkLocked(t, tree)
	time.Sleep(50 * time.Millisecond) // let it run a little after the restore
	unix.Kill(root, unix.SIGTERM)
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	code, err := Wait(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	select {
	case out = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("output pipe not closed")
	}
	return code, string(out)
}

func TestRestoreSingleTask(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	code, out := dumpRestore(t, bin, "0")
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

func TestRestoreSharedAnonAcrossFork(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	code, out := dumpRestore(t, bin, "1")
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// treeMaps returns /proc/PID/maps of pid and its descendants, without the
// dev and inode columns of shared anonymous, memfd and deleted-file
// mappings (they are new inodes after restore).
func treeMaps(t *testing.T, pid int) map[int]string {
	t.Helper()
	out := make(map[int]string)
	var walk func(int)
	walk = func(pid int) {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/maps")
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && (strings.HasPrefix(f[5], "/dev/zero") || strings.HasPrefix(f[5], "/memfd:") || f[len(f)-1] == "(deleted)") {
				f[3], f[4] = "-", "-"
			}
			lines = append(lines, strings.Join(f, " "))
		}
		out[pid] = strings.Join(lines, "\n")
		kids, _ := os.ReadFile("/proc/" + itoa(pid) + "/task/" + itoa(pid) + "/children")
		for _, k := range strings.Fields(string(kids)) {
			n, _ := strconv.Atoi(k)
			walk(n)
		}
	}
	walk(pid)
	return out
}

// checkSharedInodes checks that every VMA of one shared object, in every
// task, maps one inode after restore.
func checkSharedInodes(t *testing.T, tree *image.Tree) {
	t.Helper()
	ino := make(map[uint32]uint64)
	for _, tk := range tree.Tasks {
		for _, v := range tk.VMAs {
			if v.ShmID == 0 {
				continue
			}
			var st unix.Stat_t
			p := "/proc/" + itoa(tk.PID) + "/map_files/" + strconv.FormatUint(v.Start, 16) + "-" + strconv.FormatUint(v.End, 16)
			if err := unix.Stat(p, &st); err != nil {
				t.Errorf("stat %s: %v", p, err)
				continue
			}
			if prev, ok := ino[v.ShmID]; ok && prev != st.Ino {
				t.Errorf("shared object %d: %s is inode %d, another sharer has %d", v.ShmID, p, st.Ino, prev)
			}
			ino[v.ShmID] = st.Ino
		}
	}
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := make(map[string]bool)
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func TestRestoreObjectsTree(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	dir := t.TempDir()
	code, out := dumpRestore(t, bin, dir)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "ghost.dat")); err == nil {
		t.Errorf("recreated deleted file still there")
	}
}

func TestRestorePidInUse(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, true, bin, "1")
	defer func() {
		for _, pid := range d.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		d.cmd.Wait()
		waitGone(t, d.pids)
	}()
	_, err := Run(Options{Dir: d.dir, Log: testLog(t)})
	want := "restore: pid " + itoa(d.pids[0]) + " is already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestRestoreFileChanged(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(bin, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	want := "restore: " + bin + ": size " + itoa(int(st.Size()+1)) + " != dumped " + itoa(int(st.Size()))
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestRestoreFailureKillsEverything fails a restore once all tasks exist
// and checks none of them is left.
func TestRestoreFailureKillsEverything(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	d := dumpWorkload(t, false, bin, t.TempDir())
	testHookAfterCreate = func() error {
		for _, pid := range d.pids {
			if _, err := os.Stat("/proc/" + itoa(pid)); err != nil {
				t.Errorf("task %d not created: %v", pid, err)
			}
		}
		return errors.New("injected failure")
	}
	defer func() { testHookAfterCreate = nil }()
	if _, err := Run(Options{Dir: d.dir, Log: testLog(t)}); err == nil || err.Error() != "restore: injected failure" {
		t.Fatalf("err = %v", err)
	}
	waitGone(t, d.pids)
	// The ghost file recreated for the restore is gone again.
	for _, f := range d.tree.Files {
		if f.Deleted {
			if _, err := os.Stat(f.Path); err == nil {
				t.Errorf("recreated %s left behind", f.Path)
			}
		}
	}
}

func TestRestoreDetachedPidFile(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	pidFile := filepath.Join(t.TempDir(), "pid")
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	// fd 1 was a pipe: given mmcr's "stdout", here a number not open, it
	// falls back to /dev/null.
	notOpen := os.NewFile(987, "not open")
	root, err := Run(Options{Dir: d.dir, Detached: true, PidFile: pidFile, Log: testLog(t), Stdin: null, Stdout: notOpen, Stderr: null})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink("/proc/" + itoa(root) + "/fd/1"); err != nil || l != os.DevNull {
		t.Errorf("fd 1 -> %q (%v), want /dev/null", l, err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(b)) != itoa(root) || root != d.pids[0] {
		t.Fatalf("pid file %q (%v), root %d, dumped %d", b, err, root, d.pids[0])
	}
	unix.Kill(root, unix.SIGTERM)
	if code, err := Wait(root); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
}

func TestRestoreThreads(t *testing.T) {
	needRoot(t)
	bin := testproc.BuildC(t, testproc.ThreadsC, "-O1", "-Wall", "-pthread")
	code, out := dumpRestore(t, bin)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreGhostPathTaken restores a deleted file whose path holds
// another file by then: the other file stays, the mapping still works.
func TestRestoreGhostPathTaken(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	dir := t.TempDir()
	d := dumpWorkload(t, false, bin, dir)
	ghost := filepath.Join(dir, "ghost.dat")
	if err := os.WriteFile(ghost, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := Run(Options{Dir: d.dir, Log: testLog(t), Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	maps, _ := os.ReadFile("/proc/" + itoa(root) + "/maps")
	if !strings.Contains(string(maps), "/.mmcr-ghost-") || !strings.Contains(string(maps), "ghost.dat (deleted)") {
		t.Errorf("deleted file not mapped from a private temp dir:\n%s", maps)
	}
	unix.Kill(root, unix.SIGTERM)
	code, err := Wait(root)
	out, _ := io.ReadAll(r)
	if err != nil || code != 0 || !strings.Contains(string(out), "PASS") {
		t.Fatalf("restored workload: exit %d %v, output %q", code, err, out)
	}
	if b, _ := os.ReadFile(ghost); string(b) != "someone else's" {
		t.Errorf("file at the deleted file's path changed: %q", b)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".mmcr-ghost-*")); len(ents) != 0 {
		t.Errorf("temp dirs left: %v", ents)
	}
}

func TestRestoreCreds(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "creds")
	for _, mode := range []string{"caps", "uid"} {
		t.Run(mode, func(t *testing.T) {
			code, out := dumpRestore(t, bin, mode)
			if code != 0 || !strings.Contains(out, "PASS") {
				t.Fatalf("restored workload: exit %d, output %q", code, out)
			}
		})
	}
}

func TestRestoreVDSOFallback(t *testing.T) {
	needRoot(t)
	testVDSOFallback = true
	defer func() { testVDSOFallback = false }()
	bin := buildC(t, "memtree")
	code, out := dumpRestore(t, bin, "0")
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestorePidFileFailure: a pid file that cannot be written fails the
// restore after the tree was released; the tree is killed all the same.
func TestRestorePidFileFailure(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	d := dumpWorkload(t, false, bin, t.TempDir())
	bad := filepath.Join(t.TempDir(), "no", "such", "dir", "pid")
	_, err := Run(Options{Dir: d.dir, PidFile: bad, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "write pid file") {
		t.Fatalf("err = %v", err)
	}
	for _, pid := range d.pids {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
			t.Errorf("pid %d still there right after the failed restore", pid)
		}
	}
}

// checkLocked checks that every restored task has as many locked VMAs
// ("lo" in smaps) as the image says it had.
func checkLocked(t *testing.T, tree *image.Tree) {
	t.Helper()
	for _, tk := range tree.Tasks {
		want := 0
		for _, v := range tk.VMAs {
			if slices.Contains(v.VmFlags, "lo") {
				want++
			}
		}
		b, err := os.ReadFile("/proc/" + itoa(tk.PID) + "/smaps")
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmFlags:") && slices.Contains(strings.Fields(l), "lo") {
				got++
			}
		}
		if got != want {
			t.Errorf("task %d: %d locked VMAs after restore, %d in the image", tk.PID, got, want)
		}
	}
}

// TestRestoreSignalPendingAtRelease queues SIGTERM for the restored task
// while it is still stopped: a task dumped inside a blocking syscall must
// see it interrupt that syscall (EINTR, the handler has no SA_RESTART),
// not run the handler and block in the syscall again. Both kinds of
// restart: pause (-ERESTARTNOHAND) and waitpid (-ERESTARTSYS).
func TestRestoreSignalPendingAtRelease(t *testing.T) {
	needRoot(t)
	bin := testproc.BuildC(t, testproc.EintrC, "-O1", "-Wall")
	for _, mode := range []string{"pause", "wait"} {
		t.Run(mode, func(t *testing.T) {
			nr := unix.SYS_PAUSE
			if mode == "wait" {
				nr = unix.SYS_WAIT4
			}
			inSyscall := func(pid int) error { return testproc.WaitInSyscall(pid, nr, 10*time.Second) }
			d := dumpWorkloadWhen(t, false, inSyscall, bin, mode)
			testHookBeforeRelease = func() {
				if err := unix.Kill(d.pids[0], unix.SIGTERM); err != nil {
					t.Errorf("SIGTERM before release: %v", err)
				}
			}
			defer func() { testHookBeforeRelease = nil }()
			root, r := restoreWithOutput(t, Options{Dir: d.dir})
			done := make(chan []byte)
			go func() { b, _ := io.ReadAll(r); done <- b }()
			exited := make(chan int)
			go func() {
				code, err := Wait(root)
				if err != nil {
					t.Error(err)
				}
				exited <- code
			}()
			var code int
			select {
			case code = <-exited:
			case <-time.After(30 * time.Second):
				// Its own watchdog should have ended it at 15 s.
				unix.Kill(root, unix.SIGKILL)
				<-exited
				t.Fatalf("restored task %d still blocked 30 s after the SIGTERM", root)
			}
			out := <-done
			if code != 0 || !strings.Contains(string(out), "PASS") {
				t.Fatalf("restored task: exit %d, output %q", code, out)
			}
		})
	}
}
