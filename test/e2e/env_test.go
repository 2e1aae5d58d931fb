package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// env is one subtest's temp dir and what to show when it fails.
type env struct {
	t      *testing.T
	sc     scenario
	dir    string // temp dir: logs, images
	run    string // workload cwd
	img    string // image dir
	starts int
	// startMark is the reaper mark taken as the latest workload started:
	// exits recorded before it are of other processes that had its pid.
	startMark uint64
	shown     []string // files to print on failure, in order
}

func newEnv(t *testing.T, sc scenario) *env {
	if time.Now().After(deadline) {
		t.Fatalf("e2e time budget exhausted (see setDeadline): not starting %s", t.Name())
	}
	dir, err := os.MkdirTemp("", "mmcr-e2e-"+sc.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sc: sc, dir: dir, run: filepath.Join(dir, "run"), img: filepath.Join(dir, "img")}
	if err := os.Mkdir(e.run, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if killed := testproc.KillDescendants(); len(killed) > 0 {
			t.Logf("killed leftover processes: %v", killed)
		}
		if t.Failed() {
			for _, f := range e.shown {
				n := 40
				if strings.HasSuffix(f, ".log") {
					n = 120
				}
				t.Logf("--- %s ---\n%s", f, tail(f, n))
			}
			if !keepDirs {
				t.Logf("(set MMCR_E2E_KEEP=1 to keep %s)", dir)
			}
		}
		if keepDirs {
			t.Logf("kept %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	return e
}

func (e *env) show(paths ...string) {
next:
	for _, p := range paths {
		for _, q := range e.shown {
			if q == p {
				continue next
			}
		}
		e.shown = append(e.shown, p)
	}
}

// in runs fn with e reporting to the subtest t.
func (e *env) in(t *testing.T, fn func()) {
	old := e.t
	e.t = t
	defer func() { e.t = old }()
	fn()
}

// start runs the workload (setsid, stdin /dev/null, stdout/stderr to files),
// waits for its pidfile and returns the root pid.
func (e *env) start() int {
	e.t.Helper()
	e.starts++
	os.Remove(filepath.Join(e.run, "pidfile"))
	os.Remove(filepath.Join(e.run, "result"))
	out := filepath.Join(e.dir, fmt.Sprintf("workload%d.stdout", e.starts))
	errp := filepath.Join(e.dir, fmt.Sprintf("workload%d.stderr", e.starts))
	e.show(out, errp)
	path, args, _ := workloadCmd(e.sc)
	s, err := testproc.Start(testproc.Spec{
		Path: path, Args: args, Dir: e.run,
		Env:    []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "PYTHONDONTWRITEBYTECODE=1"}, // no __pycache__ in testdata/ (wlproto.py)
		Stdout: out, Stderr: errp, Setsid: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	pid := s.Pid
	e.startMark = s.Mark
	if err := testproc.WaitPidfile(e.run, s, 30*time.Second); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("workload %d started %s, ready %s", pid, s.At.Format("15:04:05.000"), time.Now().Format("15:04:05.000"))
	time.Sleep(150 * time.Millisecond) // let every task settle into its wait
	return pid
}

// snapshot captures /proc/PID/maps of every task of the tree under root,
// and its identity (comm, exe, cmdline, ppid, pgid, sid, fds with their
// offsets and flags) that compareTree checks too.
func (e *env) snapshot(root int) map[int]taskSnap {
	e.t.Helper()
	snap := map[int]taskSnap{}
	pids := testproc.Descendants(root)
	sort.Ints(pids) // the order compareTree names the pipes in
	pipes := pipeNames{}
	for _, pid := range pids {
		m, err := readMaps(pid)
		if err != nil {
			e.t.Fatalf("read maps of %d: %v", pid, err)
		}
		snap[pid] = taskSnap{identity(pid, pipes), m}
		os.WriteFile(filepath.Join(e.dir, fmt.Sprintf("maps-%d.before", pid)), []byte(strings.Join(m, "\n")+"\n"), 0o644)
	}
	return snap
}

// pipeNames names the tree's pipes and sockets by their order of first
// appearance (tasks by pid, fds in order): a restored pipe or socket is a
// new inode, and which fds share one is what must not change.
type pipeNames map[string]string

func (n pipeNames) name(target string) string {
	kind, _, ok := strings.Cut(target, ":[")
	if !ok || kind != "pipe" && kind != "socket" {
		return target
	}
	if n[target] == "" {
		n[target] = fmt.Sprintf("%s#%d", kind, len(n)+1)
	}
	return n[target]
}

// identity describes what a task is, beyond its memory; pipes names its
// pipes, across the tree.
func identity(pid int, pipes pipeNames) string {
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	var ppid, pgid, sid string
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 4 {
			ppid, pgid, sid = f[1], f[2], f[3]
		}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return fmt.Sprintf("comm=%q exe=%q cmdline=%q ppid=%s pgid=%s sid=%s fds=[%s] threads=[%s]", strings.TrimSpace(string(comm)),
		exe, strings.ReplaceAll(string(cmdline), "\x00", " "), ppid, pgid, sid, fdsOf(pid, pipes), threadsOf(pid))
}

// threadsOf lists a task's threads as "TID:comm", sorted by tid: every
// thread must come back with its own tid and name.
func threadsOf(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	sort.Ints(tids)
	var out []string
	for _, tid := range tids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
		out = append(out, fmt.Sprintf("%d:%s", tid, strings.TrimSpace(string(comm))))
	}
	return strings.Join(out, " ")
}

// fdsOf lists a task's fds as "N:target pos=P flags=F", sorted by fd, its
// pipes named by pipes.
func fdsOf(pid int, pipes pipeNames) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var fds []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, n)
		}
	}
	sort.Ints(fds)
	var out []string
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		var pos, flags string
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "pos:"); ok {
				pos = strings.TrimSpace(v)
			} else if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags = strings.TrimSpace(v)
			}
		}
		out = append(out, fmt.Sprintf("%d:%s pos=%s flags=%s", fd, pipes.name(target), pos, flags))
	}
	return strings.Join(out, ", ")
}

// taskSnap is what the driver records of one task before the dump.
type taskSnap struct {
	id   string   // identity(pid)
	maps []string // /proc/PID/maps lines
}

func pidsOf(snap map[int]taskSnap) []int {
	var pids []int
	for p := range snap {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids
}

// compareTree checks that the tree under root has exactly the snapshot's
// pids and that each task's maps equal its snapshot line for line.
func (e *env) compareTree(root int, before map[int]taskSnap, what string) {
	e.t.Helper()
	e.compareTreeParent(root, 0, before, what)
}

// compareTreeParent is compareTree for a root whose parent is now
// rootParent (when not 0) instead of the one it had at dump.
func (e *env) compareTreeParent(root, rootParent int, before map[int]taskSnap, what string) {
	e.t.Helper()
	now := testproc.Descendants(root)
	if fmt.Sprint(now) != fmt.Sprint(pidsOf(before)) {
		e.t.Errorf("%s: tree has pids %v, before dump %v", what, now, pidsOf(before))
	}
	pipes := pipeNames{}
	for _, pid := range pidsOf(before) {
		after, err := readMaps(pid)
		if err != nil {
			e.t.Errorf("%s: read maps of %d: %v", what, pid, err)
			continue
		}
		want := before[pid].id
		if pid == root && rootParent != 0 {
			_, ppid, _ := procStat(pid)
			if ppid != rootParent {
				e.t.Errorf("%s: root %d has parent %d, want %d", what, pid, ppid, rootParent)
			}
			want = regexp.MustCompile(` ppid=\d+ `).ReplaceAllString(want, fmt.Sprintf(" ppid=%d ", ppid))
		}
		if id := identity(pid, pipes); id != want {
			e.t.Errorf("%s: task %d differs from before the dump:\n  before: %s\n  after:  %s", what, pid, want, id)
		}
		os.WriteFile(filepath.Join(e.dir, fmt.Sprintf("maps-%d.after", pid)), []byte(strings.Join(after, "\n")+"\n"), 0o644)
		wantMaps := before[pid].maps
		if e.sc.runtimeAnon {
			wantMaps, after = namedMappings(wantMaps), namedMappings(after)
		}
		if d := diffMaps(wantMaps, after); d != "" {
			e.t.Errorf("%s: /proc/%d/maps differs from before the dump: %s", what, pid, d)
		}
	}
}

// verdict sends SIGTERM to the root and waits for its result file and
// exit, an exit recorded after since (0: since the workload started; pids
// wrap, and an earlier process with the root's pid may have exited).
func (e *env) verdict(root int, since uint64) {
	e.t.Helper()
	if since == 0 {
		since = e.startMark
	}
	resultPath := filepath.Join(e.run, "result")
	e.show(resultPath)
	if err := unix.Kill(root, unix.SIGTERM); err != nil {
		e.t.Fatalf("SIGTERM root %d: %v", root, err)
	}
	sent := time.Now()
	timeout := e.sc.verdict
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ex, ok := testproc.WaitExit(root, since, capped(timeout))
	ws := ex.Status
	if !ok {
		pids := testproc.Descendants(root)
		var threads strings.Builder
		for _, p := range pids {
			threads.WriteString(threadReport(p))
		}
		e.t.Fatalf("root %d did not exit within %v of SIGTERM (sent %s); tree: %s; threads:%s", root, timeout,
			sent.Format("15:04:05.000"), describePids(pids), threads.String())
	}
	b, err := os.ReadFile(resultPath)
	if err != nil {
		e.t.Fatalf("workload root %d exited (%s) without a verdict: %v", root, testproc.DescribeStatus(ws), err)
	}
	res := strings.TrimSpace(string(b))
	if res != "PASS" {
		e.t.Fatalf("workload verdict: %s", res)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		e.t.Fatalf("workload root passed but exited with %s", testproc.DescribeStatus(ws))
	}
}

// mmcrResult is one finished mmcr run.
type mmcrResult struct {
	status unix.WaitStatus
	stderr string
}

func (r mmcrResult) ok() bool { return r.status.Exited() && r.status.ExitStatus() == 0 }

// mmcr runs the mmcr binary with -vv and a log file named after name, and
// waits up to 90 s: a dump or restore of the largest scenario takes seconds.
func (e *env) mmcr(name string, args ...string) mmcrResult {
	return e.mmcrTimeout(90*time.Second, name, args...)
}

// mmcrTimeout is mmcr with another limit (a failed restore of a damaged
// image must end quickly). On timeout mmcr is killed and the test fails.
func (e *env) mmcrTimeout(timeout time.Duration, name string, args ...string) mmcrResult {
	e.t.Helper()
	out := filepath.Join(e.dir, name+".stdout")
	errp := filepath.Join(e.dir, name+".stderr")
	logf := filepath.Join(e.dir, name+".log")
	e.show(out, errp, logf)
	args = append(args, "-vv", "--log-file", logf)
	s, err := testproc.Start(testproc.Spec{Path: mmcrBin, Args: args, Dir: e.dir, Stdout: out, Stderr: errp})
	if err != nil {
		e.t.Fatal(err)
	}
	ex, ok := testproc.WaitExit(s.Pid, s.Mark, capped(timeout))
	ws := ex.Status
	if !ok {
		unix.Kill(s.Pid, unix.SIGKILL)
		e.t.Fatalf("mmcr %s did not finish within %v", strings.Join(args, " "), timeout)
	}
	e.t.Logf("%s: mmcr %s ran %s..%s", name, args[0], s.At.Format("15:04:05.000"), ex.At.Format("15:04:05.000"))
	b, _ := os.ReadFile(errp)
	return mmcrResult{status: ws, stderr: string(b)}
}

func (e *env) dump(root int, extra ...string) {
	e.t.Helper()
	args := append([]string{"dump", "-t", strconv.Itoa(root), "-D", e.img}, extra...)
	if r := e.mmcr("dump", args...); !r.ok() {
		e.t.Fatalf("mmcr dump failed (%s): %s", testproc.DescribeStatus(r.status), firstLine(r.stderr))
	}
}

// restore runs mmcr restore -d (and extra flags) and checks the pidfile
// names root.
func (e *env) restore(name, img string, root int, extra ...string) {
	e.t.Helper()
	pidfile := filepath.Join(e.dir, name+".pid")
	r := e.mmcr(name, append([]string{"restore", "-D", img, "-d", "--pidfile", pidfile}, extra...)...)
	if !r.ok() {
		e.t.Fatalf("mmcr restore failed (%s): %s", testproc.DescribeStatus(r.status), firstLine(r.stderr))
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		e.t.Fatalf("mmcr restore wrote no pidfile: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != root {
		e.t.Fatalf("restore pidfile says %q, the dumped root was %d", b, root)
	}
	if !testproc.Alive(root) {
		e.t.Fatalf("restored root %d is not running after mmcr restore -d returned", root)
	}
}

// compareImageVMAs checks that every task of a tree restored with
// --leave-stopped is stopped and maps exactly the VMAs its image lists:
// range, protection, shared or private, offset and name, every line.
func (e *env) compareImageVMAs(img string) {
	e.t.Helper()
	r, err := image.Open(img)
	if err != nil {
		e.t.Fatalf("open image: %v", err)
	}
	tree, err := r.Tree()
	if err != nil {
		e.t.Fatalf("read image: %v", err)
	}
	for _, tk := range tree.Tasks {
		if !testproc.WaitStopped(tk.PID, 5*time.Second) {
			st, _, _ := procStat(tk.PID)
			e.t.Errorf("restored task %d in state %c, want stopped (--leave-stopped)", tk.PID, st)
		}
		var want []string
		for _, v := range tk.VMAs {
			want = append(want, vmaLine(v.Start, v.End, v.Prot, v.Flags&unix.MAP_SHARED != 0, v.Pgoff, v.Name))
		}
		lines, err := readMaps(tk.PID)
		if err != nil {
			e.t.Errorf("read maps of %d: %v", tk.PID, err)
			continue
		}
		var got []string
		for _, l := range lines {
			got = append(got, mapsVMALine(l))
		}
		os.WriteFile(filepath.Join(e.dir, fmt.Sprintf("maps-%d.image", tk.PID)), []byte(strings.Join(want, "\n")+"\n"), 0o644)
		if d := diffMaps(want, got); d != "" {
			e.t.Errorf("restored task %d: /proc/%d/maps differs from the image's VMAs: %s", tk.PID, tk.PID, d)
		}
	}
}

// vmaLine formats a VMA as mapsVMALine reduces a maps line.
func vmaLine(start, end uint64, prot uint32, shared bool, pgoff uint64, name string) string {
	perms := []byte("---p")
	if prot&unix.PROT_READ != 0 {
		perms[0] = 'r'
	}
	if prot&unix.PROT_WRITE != 0 {
		perms[1] = 'w'
	}
	if prot&unix.PROT_EXEC != 0 {
		perms[2] = 'x'
	}
	if shared {
		perms[3] = 's'
	}
	return strings.TrimSpace(fmt.Sprintf("%08x-%08x %s %08x %s", start, end, perms, pgoff, name))
}

// mapsVMALine is a /proc/PID/maps line without its device and inode
// columns (the image keeps those with the file, not the VMA).
func mapsVMALine(l string) string {
	f := strings.Fields(l)
	if len(f) < 5 {
		return l
	}
	return strings.TrimSpace(strings.Join(f[:3], " ") + " " + strings.Join(f[5:], " "))
}

// continueTree sends SIGCONT to every task of a tree left stopped.
func (e *env) continueTree(pids []int) {
	e.t.Helper()
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGCONT); err != nil {
			e.t.Errorf("SIGCONT %d: %v", pid, err)
		}
	}
}

// expectGone checks that the dumped tree is gone and its pids are free.
func (e *env) expectGone(pids []int, what string) {
	e.t.Helper()
	if left := testproc.WaitGone(pids, 10*time.Second); len(left) > 0 {
		e.t.Fatalf("%s: still present 10s later: %s", what, describePids(left))
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "(nothing on stderr)"
	}
	return strings.SplitN(s, "\n", 2)[0]
}
