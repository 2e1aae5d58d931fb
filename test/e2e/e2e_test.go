package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scenarioMode says what the checkpoint subtest of a scenario does.
type scenarioMode int

const (
	// modeRestore: dump (the tree is killed), restore -d, verdict.
	modeRestore scenarioMode = iota
	// modeLeaveRunning: dump --leave-running; the original must pass its
	// verdict, then two restores from the same images must pass too.
	modeLeaveRunning
	// modeBadImages: damaged images and a changed backing file must make
	// restore fail cleanly; the pristine images must still restore.
	modeBadImages
	// modeForeground: restore without -d: mmcr stays the restored root's
	// parent and exits with its status.
	modeForeground
)

// scenario is one table entry: a workload source in testdata/ and how to
// run it. The same workload may serve several scenarios.
type scenario struct {
	name   string
	src    string   // C source in testdata/
	args   []string // workload arguments
	cflags []string // extra gcc flags (binaries are built once per src+cflags)
	mode   scenarioMode
	// verdict is how long the workload may take to verify after SIGTERM
	// (default 60 s).
	verdict time.Duration
}

func avx2Flags() []string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "flags") {
			for _, f := range strings.Fields(l) {
				if f == "avx2" {
					return []string{"-mavx2"}
				}
			}
			break
		}
	}
	return nil
}

var scenarios = []scenario{
	{name: "anon-small", src: "anon.c", args: []string{"16"}},
	{name: "anon-large", src: "anon.c", args: []string{"256"}, verdict: 120 * time.Second},
	{name: "shared-tree", src: "shared_tree.c"},
	{name: "cow", src: "cow.c"},
	{name: "file-mappings", src: "filemap.c"},
	{name: "memfd", src: "memfd.c"},
	{name: "many-vmas", src: "manyvmas.c"},
	{name: "heap-stack-vdso", src: "heap.c"},
	{name: "simd-fpu", src: "simd.c", cflags: avx2Flags()},
	{name: "signals", src: "signals.c"},
	{name: "blocking-syscalls", src: "blocking.c"},
	{name: "leave-running", src: "simple.c", mode: modeLeaveRunning},
	{name: "bad-images", src: "simple.c", mode: modeBadImages},
	{name: "restore-foreground", src: "simple.c", mode: modeForeground},
}

var (
	mmcrBin    string
	bins       = map[string]string{} // binKey(sc) → workload binary
	skipReason string
	noCR       = os.Getenv("MMCR_E2E_NOCR") == "1"
	keepDirs   = os.Getenv("MMCR_E2E_KEEP") == "1"
	// deadline is when the suite stops starting work and fails instead,
	// well before go test's own timeout would kill the binary and orphan
	// the workloads.
	deadline time.Time
)

// setDeadline leaves 3 minutes of go test's -timeout for cleanup, and gives
// the suite 30 minutes at most.
func setDeadline() {
	budget := 30 * time.Minute
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok && d > 0 && d-3*time.Minute < budget {
				budget = d - 3*time.Minute
			}
		}
	}
	if budget < time.Minute {
		budget = time.Minute
	}
	deadline = time.Now().Add(budget)
}

// capped shortens a wait so it ends by the suite deadline.
func capped(d time.Duration) time.Duration {
	if left := time.Until(deadline); left < d {
		if left < time.Second {
			return time.Second
		}
		return left
	}
	return d
}

func binKey(sc scenario) string { return sc.src + " " + strings.Join(sc.cflags, " ") }

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // listing tests must not build anything
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "e2e tests need root (ptrace, clone3 with set_tid, /proc/PID/map_files)"
		return m.Run()
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		skipReason = "e2e tests need gcc to build the C workloads (apt-get install gcc libc6-dev)"
		return m.Run()
	}
	// Whatever started us may have left fds open without close-on-exec
	// (a pipe from a CI runner): they would leak into every workload, and
	// pipes are fds mmcr refuses to dump.
	if err := closeOnExecAll(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	buildDir, err := os.MkdirTemp("", "mmcr-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(buildDir)
	if err := build(buildDir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	// From here on nothing may use os/exec: the reaper owns all children.
	go reaper.loop()
	setDeadline()
	code := m.Run()
	if killed := killDescendants(); len(killed) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: killed leftover processes %v\n", killed)
	}
	return code
}

// closeOnExecAll sets FD_CLOEXEC on every fd above 2 of the test process.
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

// build compiles mmcr and every workload binary into dir.
func build(dir string) error {
	if p := os.Getenv("MMCR_E2E_MMCR"); p != "" {
		mmcrBin = p
	} else if noCR {
		mmcrBin = "/nonexistent/mmcr" // baselines never run mmcr
	} else {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		root, err := filepath.Abs("../..")
		if err != nil {
			return err
		}
		mmcrBin = filepath.Join(dir, "mmcr")
		cmd := exec.Command(goBin, "build", "-o", mmcrBin, "./cmd/mmcr")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/mmcr: %v\n%s", err, out)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, sc := range scenarios {
		key := binKey(sc)
		if _, ok := bins[key]; ok {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.TrimSuffix(sc.src, ".c"), i))
		bins[key] = out
		args := append([]string{"-O1", "-g", "-Wall", "-Wextra", "-o", out, filepath.Join("testdata", sc.src)}, sc.cflags...)
		args = append(args, "-lm")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, b))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func TestScenarios(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Run("baseline", func(t *testing.T) { runBaseline(t, sc) })
			if noCR {
				return
			}
			t.Run("checkpoint", func(t *testing.T) {
				switch sc.mode {
				case modeRestore:
					runRestore(t, sc)
				case modeLeaveRunning:
					runLeaveRunning(t, sc)
				case modeBadImages:
					runBadImages(t, sc)
				case modeForeground:
					runForeground(t, sc)
				}
			})
		})
	}
}

// env is one subtest's temp dir and what to show when it fails.
type env struct {
	t      *testing.T
	sc     scenario
	dir    string // temp dir: logs, images
	run    string // workload cwd
	img    string // image dir
	starts int
	shown  []string // files to print on failure, in order
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
		if killed := killDescendants(); len(killed) > 0 {
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
	pid, mark, err := startProc(procSpec{
		path: bins[binKey(e.sc)], args: e.sc.args, dir: e.run,
		env:    []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
		stdout: out, stderr: errp, setsid: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(e.run, "pidfile"))
		if err == nil {
			got, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if got != pid {
				e.t.Fatalf("workload pidfile says %q, started pid %d", b, pid)
			}
			break
		}
		if ws, ok := reaper.exited(pid, mark); ok {
			e.t.Fatalf("workload %d exited during setup: %s", pid, describeStatus(ws))
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("workload %d wrote no pidfile within 30s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // let every task settle into its wait
	return pid
}

// snapshot captures /proc/PID/maps of every task of the tree under root,
// and its identity (comm, exe, cmdline, ppid, pgid, sid, fds with their
// offsets and flags) that compareTree checks too.
func (e *env) snapshot(root int) map[int]taskSnap {
	e.t.Helper()
	snap := map[int]taskSnap{}
	for _, pid := range descendants(root) {
		m, err := readMaps(pid)
		if err != nil {
			e.t.Fatalf("read maps of %d: %v", pid, err)
		}
		snap[pid] = taskSnap{identity(pid), m}
		os.WriteFile(filepath.Join(e.dir, fmt.Sprintf("maps-%d.before", pid)), []byte(strings.Join(m, "\n")+"\n"), 0o644)
	}
	return snap
}

// identity describes what a task is, beyond its memory.
func identity(pid int) string {
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
	return fmt.Sprintf("comm=%q exe=%q cmdline=%q ppid=%s pgid=%s sid=%s fds=[%s]", strings.TrimSpace(string(comm)),
		exe, strings.ReplaceAll(string(cmdline), "\x00", " "), ppid, pgid, sid, fdsOf(pid))
}

// fdsOf lists a task's fds as "N:target pos=P flags=F", sorted by fd.
func fdsOf(pid int) string {
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
		out = append(out, fmt.Sprintf("%d:%s pos=%s flags=%s", fd, target, pos, flags))
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
	now := descendants(root)
	if fmt.Sprint(now) != fmt.Sprint(pidsOf(before)) {
		e.t.Errorf("%s: tree has pids %v, before dump %v", what, now, pidsOf(before))
	}
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
		if id := identity(pid); id != want {
			e.t.Errorf("%s: task %d differs from before the dump:\n  before: %s\n  after:  %s", what, pid, want, id)
		}
		os.WriteFile(filepath.Join(e.dir, fmt.Sprintf("maps-%d.after", pid)), []byte(strings.Join(after, "\n")+"\n"), 0o644)
		if d := diffMaps(before[pid].maps, after); d != "" {
			e.t.Errorf("%s: /proc/%d/maps differs from before the dump: %s", what, pid, d)
		}
	}
}

// verdict sends SIGTERM to the root and waits for its result file and exit.
func (e *env) verdict(root int, since uint64) {
	e.t.Helper()
	resultPath := filepath.Join(e.run, "result")
	e.show(resultPath)
	if err := unix.Kill(root, unix.SIGTERM); err != nil {
		e.t.Fatalf("SIGTERM root %d: %v", root, err)
	}
	timeout := e.sc.verdict
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ws, ok := reaper.waitExit(root, since, capped(timeout))
	if !ok {
		e.t.Fatalf("root %d did not exit within %v of SIGTERM; tree: %s", root, timeout, describePids(descendants(root)))
	}
	b, err := os.ReadFile(resultPath)
	if err != nil {
		e.t.Fatalf("workload root %d exited (%s) without a verdict: %v", root, describeStatus(ws), err)
	}
	res := strings.TrimSpace(string(b))
	if res != "PASS" {
		e.t.Fatalf("workload verdict: %s", res)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		e.t.Fatalf("workload root passed but exited with %s", describeStatus(ws))
	}
}

// mmcrResult is one finished mmcr run.
type mmcrResult struct {
	status unix.WaitStatus
	stderr string
}

func (r mmcrResult) ok() bool { return r.status.Exited() && r.status.ExitStatus() == 0 }

// mmcr runs the mmcr binary with -vv and a log file named after name.
// A failed restore of a damaged image must end quickly; a real dump or
// restore of the largest scenario takes seconds.
func (e *env) mmcr(name string, args ...string) mmcrResult {
	return e.mmcrTimeout(90*time.Second, name, args...)
}

func (e *env) mmcrTimeout(timeout time.Duration, name string, args ...string) mmcrResult {
	e.t.Helper()
	out := filepath.Join(e.dir, name+".stdout")
	errp := filepath.Join(e.dir, name+".stderr")
	logf := filepath.Join(e.dir, name+".log")
	e.show(out, errp, logf)
	args = append(args, "-vv", "--log-file", logf)
	pid, mark, err := startProc(procSpec{path: mmcrBin, args: args, dir: e.dir, stdout: out, stderr: errp})
	if err != nil {
		e.t.Fatal(err)
	}
	ws, ok := reaper.waitExit(pid, mark, capped(timeout))
	if !ok {
		unix.Kill(pid, unix.SIGKILL)
		e.t.Fatalf("mmcr %s did not finish within %v", strings.Join(args, " "), timeout)
	}
	b, _ := os.ReadFile(errp)
	return mmcrResult{status: ws, stderr: string(b)}
}

func (e *env) dump(root int, extra ...string) {
	e.t.Helper()
	args := append([]string{"dump", "-t", strconv.Itoa(root), "-D", e.img}, extra...)
	if r := e.mmcr("dump", args...); !r.ok() {
		e.t.Fatalf("mmcr dump failed (%s): %s", describeStatus(r.status), firstLine(r.stderr))
	}
}

// restore runs mmcr restore -d and checks the pidfile names root.
func (e *env) restore(name, img string, root int) {
	e.t.Helper()
	pidfile := filepath.Join(e.dir, name+".pid")
	r := e.mmcr(name, "restore", "-D", img, "-d", "--pidfile", pidfile)
	if !r.ok() {
		e.t.Fatalf("mmcr restore failed (%s): %s", describeStatus(r.status), firstLine(r.stderr))
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		e.t.Fatalf("mmcr restore wrote no pidfile: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != root {
		e.t.Fatalf("restore pidfile says %q, the dumped root was %d", b, root)
	}
	if !alive(root) {
		e.t.Fatalf("restored root %d is not running after mmcr restore -d returned", root)
	}
}

// expectGone checks that the dumped tree is gone and its pids are free.
func (e *env) expectGone(pids []int, what string) {
	e.t.Helper()
	if left := waitGone(pids, 10*time.Second); len(left) > 0 {
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

func runBaseline(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	time.Sleep(200 * time.Millisecond)
	// Without a checkpoint the maps must be stable too, or the
	// checkpoint subtest's comparison would mean nothing.
	e.compareTree(root, before, "baseline (no checkpoint)")
	e.verdict(root, 0)
}

func runRestore(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	e.dump(root)
	e.expectGone(pidsOf(before), "dumped tree (dump must kill it)")
	mark := reaper.mark()
	e.restore("restore", e.img, root)
	e.compareTree(root, before, "after restore")
	e.verdict(root, mark)
}

func runLeaveRunning(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	e.dump(root, "--leave-running")
	for _, pid := range pidsOf(before) {
		st, _, ok := procStat(pid)
		if !ok {
			t.Fatalf("task %d is gone after dump --leave-running", pid)
		}
		if st == 't' || st == 'T' {
			t.Errorf("task %d is still stopped (state %c) after dump --leave-running", pid, st)
		}
		if tp := tracerPid(pid); tp != 0 {
			t.Errorf("task %d is still traced by %d after dump --leave-running", pid, tp)
		}
	}
	e.compareTree(root, before, "original after dump --leave-running")
	e.verdict(root, 0)
	e.expectGone(pidsOf(before), "original tree after its verdict")
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("restore%d", i)
		mark := reaper.mark()
		e.restore(name, e.img, root)
		e.compareTree(root, before, name)
		e.verdict(root, mark)
		e.expectGone(pidsOf(before), name+" tree after its verdict")
	}
}

// runForeground restores without -d: mmcr must stay in the foreground as
// the restored root's parent until the root exits, then exit with its status.
func runForeground(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	pids := pidsOf(before)
	e.dump(root)
	e.expectGone(pids, "dumped tree (dump must kill it)")

	pidfile := filepath.Join(e.dir, "restore.pid")
	out, errp, logf := filepath.Join(e.dir, "restore.stdout"), filepath.Join(e.dir, "restore.stderr"), filepath.Join(e.dir, "restore.log")
	e.show(out, errp, logf, filepath.Join(e.run, "result"))
	mmcrPid, mark, err := startProc(procSpec{path: mmcrBin, dir: e.dir, stdout: out, stderr: errp,
		args: []string{"restore", "-D", e.img, "--pidfile", pidfile, "-vv", "--log-file", logf}})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(capped(90 * time.Second)); ; {
		if b, err := os.ReadFile(pidfile); err == nil && len(b) > 0 {
			got, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if got == root {
				break
			}
			if b[len(b)-1] == '\n' { // complete, and wrong
				t.Fatalf("restore pidfile says %q, the dumped root was %d", b, root)
			}
		}
		if ws, ok := reaper.exited(mmcrPid, mark); ok {
			t.Fatalf("mmcr restore (foreground) exited before the tree ran: %s: %s", describeStatus(ws), firstLine(tail(errp, 5)))
		}
		if time.Now().After(end) {
			t.Fatalf("mmcr restore (foreground) wrote no pidfile within 90s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The restored tasks may still be finishing their own setup: wait
	// until every dumped pid exists again.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if len(waitGone(pids, 0)) == len(pids) {
			break
		}
	}
	e.compareTreeParent(root, mmcrPid, before, "after foreground restore")
	if _, ok := reaper.exited(mmcrPid, mark); ok {
		t.Fatalf("mmcr restore (foreground) exited while the restored root runs")
	}
	if err := unix.Kill(root, unix.SIGTERM); err != nil {
		t.Fatalf("SIGTERM root %d: %v", root, err)
	}
	ws, ok := reaper.waitExit(mmcrPid, mark, capped(60*time.Second))
	if !ok {
		t.Fatalf("mmcr restore (foreground) did not exit within 60s of the root's SIGTERM")
	}
	b, err := os.ReadFile(filepath.Join(e.run, "result"))
	if err != nil {
		t.Fatalf("workload root exited without a verdict: %v", err)
	}
	if res := strings.TrimSpace(string(b)); res != "PASS" {
		t.Fatalf("workload verdict: %s", res)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("root passed (exit 0) but mmcr restore exited with %s", describeStatus(ws))
	}
	if left := waitGone(pids, 5*time.Second); len(left) > 0 {
		t.Errorf("restored tasks left after mmcr exited: %s", describePids(left))
	}
}

func tracerPid(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// damage is one way to break an image directory.
type damage struct {
	name string
	// glob selects the files (pattern relative to the image dir; %d is
	// replaced by the root pid); all matches are damaged.
	glob string
	op   func(path string) error
}

func remove(p string) error { return os.Remove(p) }

func truncateTo(frac float64) func(string) error {
	return func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, int64(float64(st.Size())*frac))
	}
}

func flipByte(off int64, mask byte) func(string) error {
	return func(p string) error {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("read byte %d of %s: %w", off, p, err)
		}
		b[0] ^= mask
		_, err = f.WriteAt(b, off)
		return err
	}
}

// CRIU image files start with two u32 magics (IMG_COMMON and the image's
// own; inventory.img has only its own) followed by entries, each a u32
// size and that many bytes of protobuf. So in mm/core/pstree byte 11 is the
// high byte of the first entry's size: flipping its top bit promises ~2 GiB
// the file does not hold. The manifest's checksums must catch flips in data.
var damages = []damage{
	{"missing-inventory", "inventory.img", remove},
	{"missing-pstree", "pstree.img", remove},
	{"missing-core", "core-%d.img", remove},
	{"missing-mm", "mm-%d.img", remove},
	{"missing-pagemap", "pagemap-%d.img", remove},
	{"missing-pages", "pages-*.img", remove},
	{"empty-inventory", "inventory.img", truncateTo(0)},
	{"truncated-pstree", "pstree.img", truncateTo(0.5)},
	{"truncated-core", "core-%d.img", truncateTo(0.5)},
	{"truncated-mm", "mm-%d.img", truncateTo(0.5)},
	{"truncated-pagemap", "pagemap-%d.img", truncateTo(0.5)},
	{"truncated-pages", "pages-*.img", truncateTo(0.5)},
	{"flipped-magic-inventory", "inventory.img", flipByte(0, 0xff)},
	{"flipped-magic-mm", "mm-%d.img", flipByte(1, 0x5a)},
	{"flipped-magic-core", "core-%d.img", flipByte(5, 0x5a)},
	{"flipped-size-mm", "mm-%d.img", flipByte(11, 0x80)},
	{"flipped-size-core", "core-%d.img", flipByte(11, 0x80)},
	{"flipped-size-pstree", "pstree.img", flipByte(11, 0x80)},
	{"flipped-data-pages", "pages-*.img", flipMiddle},
	{"flipped-data-mm", "mm-%d.img", flipLast},
	{"missing-manifest", "manifest.json", remove},
	{"flipped-manifest", "manifest.json", flipByte(0, 0x20)},
	{"empty-dir", "*", remove},
}

func flipMiddle(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return flipByte(st.Size()/2, 0x01)(p)
}

func flipLast(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return flipByte(st.Size()-1, 0x01)(p)
}

// takePid starts "sleep 300" with exactly pid (through ns_last_pid) and
// returns it, or 0 when other processes keep taking that pid first.
func takePid(t *testing.T, pid int, dir string) int {
	for try := 0; try < 20; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("write ns_last_pid: %v", err)
		}
		p, _, err := startProc(procSpec{path: "/bin/sleep", args: []string{"300"}, dir: dir,
			stdout: os.DevNull, stderr: os.DevNull})
		if err != nil {
			t.Fatal(err)
		}
		if p == pid {
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "sleep" {
					return p
				}
			}
			t.Fatalf("sleep (pid %d) did not exec", p)
		}
		unix.Kill(p, unix.SIGKILL)
		waitGone([]int{p}, 5*time.Second)
	}
	return 0
}

// reseal rewrites the size and CRC-32C of files in dir's manifest.json
// (format "mmcr-image" v1: {"files": [{"name", "size", "crc32c"}]}) so that
// damaged files pass the manifest check and reach the decoders.
func reseal(dir string, files []string) error {
	mpath := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(mpath)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	list, ok := m["files"].([]any)
	if !ok {
		return fmt.Errorf("manifest has no files list (format changed?)")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		found := false
		for _, ent := range list {
			e, ok := ent.(map[string]any)
			if !ok || e["name"] != filepath.Base(f) {
				continue
			}
			e["size"] = len(data)
			e["crc32c"] = fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
			found = true
		}
		if !found {
			return fmt.Errorf("manifest does not list %s", filepath.Base(f))
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(mpath, out, 0o600)
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if !ent.Type().IsRegular() {
			continue
		}
		src, err := os.Open(filepath.Join(from, ent.Name()))
		if err != nil {
			return err
		}
		dst, err := os.OpenFile(filepath.Join(to, ent.Name()), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			_, err = io.Copy(dst, src)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// expectRestoreFailure runs restore on a broken image and checks that it
// fails with one line on stderr, no panic, and nothing left running.
func (e *env) expectRestoreFailure(t *testing.T, name, img string, pids []int) {
	t.Helper()
	r := e.mmcrTimeout(30*time.Second, name, "restore", "-D", img, "-d", "--pidfile", filepath.Join(e.dir, name+".pid"))
	if r.ok() {
		t.Errorf("mmcr restore succeeded on a broken image")
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("mmcr restore panicked: %s", firstLine(r.stderr))
	}
	if s := strings.TrimSpace(r.stderr); s == "" {
		t.Errorf("mmcr restore printed no error")
	} else if strings.Contains(s, "\n") {
		t.Errorf("mmcr restore printed %d lines on stderr, want one", strings.Count(s, "\n")+1)
	} else {
		t.Logf("mmcr restore: %s", s)
	}
	if left := waitGone(pids, 5*time.Second); len(left) > 0 {
		t.Errorf("after the failed restore, processes with the dumped pids exist: %s", describePids(left))
	}
	if left := waitNoDescendants(5 * time.Second); len(left) > 0 {
		t.Errorf("after the failed restore, processes are left running: %s", describePids(left))
	}
	killDescendants()
}

func runBadImages(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	pids := pidsOf(before)
	e.dump(root)
	e.expectGone(pids, "dumped tree (dump must kill it)")
	files, _ := os.ReadDir(e.img)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	t.Logf("image files: %s", strings.Join(names, " "))

	// Each damage runs twice when it touches a checksummed file: as is
	// (the manifest must catch it) and "resealed" (the manifest rewritten to
	// match, so the decoders themselves meet the damage). A flipped data
	// byte resealed may well be a valid image (other memory, another flag):
	// only the checksum can catch it, so those are not resealed.
	type variant struct {
		damage
		reseal bool
	}
	var variants []variant
	for _, d := range damages {
		variants = append(variants, variant{d, false})
		if !strings.HasPrefix(d.name, "flipped-data-") && !strings.HasPrefix(d.name, "missing-") &&
			!strings.Contains(d.glob, "manifest") && d.glob != "*" {
			variants = append(variants, variant{damage{d.name + "-resealed", d.glob, d.op}, true})
		}
	}
	for i, d := range variants {
		t.Run(d.name, func(t *testing.T) {
			bad := filepath.Join(e.dir, fmt.Sprintf("bad-%02d", i))
			if err := copyDir(e.img, bad); err != nil {
				t.Fatal(err)
			}
			glob := d.glob
			if strings.Contains(glob, "%d") {
				glob = fmt.Sprintf(glob, root)
			}
			matches, _ := filepath.Glob(filepath.Join(bad, glob))
			if len(matches) == 0 {
				t.Fatalf("image has no file matching %s (files: %s)", glob, strings.Join(names, " "))
			}
			for _, m := range matches {
				if err := d.op(m); err != nil {
					t.Fatal(err)
				}
			}
			if d.reseal {
				if err := reseal(bad, matches); err != nil {
					t.Fatalf("reseal manifest: %v", err)
				}
			}
			e.in(t, func() { e.expectRestoreFailure(t, "restore-"+d.name, bad, pids) })
		})
	}

	// A dumped pid taken by another process: restore must refuse quickly,
	// leave that process alone and clean up whatever it had made.
	t.Run("pid-taken", func(t *testing.T) {
		e.in(t, func() {
			victim := pids[len(pids)-1] // a child: the root may be made first
			holder := takePid(t, victim, e.dir)
			if holder == 0 {
				t.Skipf("could not start a process with pid %d (another process took it first)", victim)
			}
			r := e.mmcrTimeout(30*time.Second, "restore-pid-taken", "restore", "-D", e.img, "-d", "--pidfile", filepath.Join(e.dir, "pid-taken.pid"))
			if r.ok() {
				t.Errorf("mmcr restore succeeded although pid %d was taken", victim)
			}
			if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("mmcr restore panicked: %s", firstLine(r.stderr))
			}
			if s := strings.TrimSpace(r.stderr); s == "" || strings.Contains(s, "\n") {
				t.Errorf("mmcr restore must print one line on stderr, printed %q", s)
			} else {
				t.Logf("mmcr restore: %s", s)
			}
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", holder)); strings.TrimSpace(string(comm)) != "sleep" {
				t.Errorf("the process holding pid %d is gone or changed (comm %q)", holder, strings.TrimSpace(string(comm)))
			}
			others := []int{}
			for _, p := range pids {
				if p != victim {
					others = append(others, p)
				}
			}
			if left := waitGone(others, 5*time.Second); len(left) > 0 {
				t.Errorf("after the failed restore, processes with the dumped pids exist: %s", describePids(left))
			}
			unix.Kill(holder, unix.SIGKILL)
			e.expectGone([]int{holder}, "pid holder")
			if left := waitNoDescendants(5 * time.Second); len(left) > 0 {
				t.Errorf("after the failed restore, processes are left running: %s", describePids(left))
			}
		})
	})

	// The pristine images must still restore: the failures above were
	// caused by the damage.
	t.Run("pristine", func(t *testing.T) {
		e.in(t, func() {
			mark := reaper.mark()
			e.restore("restore-pristine", e.img, root)
			e.compareTree(root, before, "pristine restore")
			e.verdict(root, mark)
			e.expectGone(pids, "pristine restore tree after its verdict")
		})
	})

	// A backing file that changed after dump must be refused.
	t.Run("backing-file-changed", func(t *testing.T) {
		backing := filepath.Join(e.run, "backing.dat")
		b, err := os.ReadFile(backing)
		if err != nil {
			t.Fatal(err)
		}
		changed := append(bytes.Repeat([]byte{0xee}, len(b)), make([]byte, 4096)...)
		if err := os.WriteFile(backing, changed, 0o644); err != nil {
			t.Fatal(err)
		}
		e.in(t, func() { e.expectRestoreFailure(t, "restore-backing-changed", e.img, pids) })
	})
}
