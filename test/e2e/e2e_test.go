package e2e

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmcr/mmcr/internal/testproc"
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
	name string
	// src is the workload in testdata/: a C source (NAME.c), a Go main
	// package (a directory, built with go build) or a Python script
	// (NAME.py, run with python3; skipped where there is none).
	src    string
	args   []string // workload arguments
	cflags []string // extra gcc flags (binaries are built once per src+cflags)
	mode   scenarioMode
	// verdict is how long the workload may take to verify after SIGTERM
	// (default 60 s).
	verdict time.Duration
	// runtimeAnon: the workload's language runtime (Go, CPython) maps and
	// grows unnamed anonymous memory on its own while it runs, so those
	// lines of /proc/PID/maps may change between the snapshot and the dump
	// (seen in baselines under load). They are left out of the comparison
	// with the snapshot; the checkpoint run restores such a tree with
	// --leave-stopped and compares every line with the image's VMAs
	// before letting it go (runRestore). The C scenarios compare every
	// line with the snapshot.
	runtimeAnon bool
	// needs is a path (a glob) the workload runs: without it the scenario
	// skips, saying what to install.
	needs, needsWhat string
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
	{name: "mdwe", src: "mdwe.c"},
	{name: "pdeath-subreaper", src: "pdeath.c"},
	{name: "sched", src: "sched.c", cflags: []string{"-pthread"}},
	{name: "blocking-syscalls", src: "blocking.c"},
	{name: "leave-running", src: "simple.c", mode: modeLeaveRunning},
	{name: "bad-images", src: "simple.c", mode: modeBadImages},
	{name: "restore-foreground", src: "simple.c", mode: modeForeground},
	{name: "threads", src: "threads.c", cflags: []string{"-pthread"}},
	{name: "threads-tree", src: "threads_tree.c", cflags: []string{"-pthread"}},
	{name: "guard-stacks", src: "guardstacks.c", cflags: []string{"-pthread"}},
	{name: "memory-kinds", src: "memkinds.c"},
	{name: "pipeline", src: "pipeline.c"},
	{name: "socket-rpc", src: "rpc.c"},
	{name: "go-threads", src: "gothreads", args: []string{"256"}, verdict: 120 * time.Second, runtimeAnon: true},
	{name: "python-threads", src: "pythreads.py", runtimeAnon: true},
	// An asyncio loop made before a multiprocessing fork: its epoll is shared.
	{name: "python-multiprocessing-asyncio", src: "pympasync.py", runtimeAnon: true},
	// A TCP listener (http.server in a thread) on 127.0.0.1.
	{name: "python-http-server", src: "pyhttp.py", runtimeAnon: true},
	// A PostgreSQL server: postmaster and background processes sharing
	// anonymous, POSIX and SysV shared memory, a postmaster-death pipe,
	// signalfds, epolls, TCP and unix listeners, under uid postgres.
	{name: "postgresql", src: "pgserver.py", runtimeAnon: true, verdict: 120 * time.Second,
		needs: "/usr/lib/postgresql/*/bin/postgres", needsWhat: "a PostgreSQL server (apt-get install postgresql)"},
	// nginx: a master and two workers sharing its listeners (each worker
	// with its own epoll on them) and shared memory zones; a reload after
	// restore forks new workers from the restored master.
	{name: "nginx", src: "ngxserver.py", runtimeAnon: true,
		needs: "/usr/sbin/nginx", needsWhat: "nginx (apt-get install nginx-light)"},
	{name: "eventfd-epoll", src: "epoll.c", cflags: []string{"-pthread"}},
	{name: "process-state", src: "procstate.c"},
	{name: "go-threads-leave-running", src: "gothreads", args: []string{"64"}, mode: modeLeaveRunning, runtimeAnon: true},
}

var (
	mmcrBin    string
	bins       = map[string]string{} // binKey(sc) → workload binary
	skipReason string
	// python3 runs the .py workloads; "" when there is none.
	python3  string
	noCR     = os.Getenv("MMCR_E2E_NOCR") == "1"
	keepDirs = os.Getenv("MMCR_E2E_KEEP") == "1"
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
	if err := testproc.CloseOnExecAbove2(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if err := testproc.BecomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
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
	testproc.StartReaping()
	setDeadline()
	code := m.Run()
	if killed := testproc.KillDescendants(); len(killed) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: killed leftover processes %v\n", killed)
	}
	return code
}

// touchSources reads every Go and C source of the module. go test records
// the files a test opens and reruns it when one changes: without this, a
// cached "ok" would survive changes to dump/ or restore/, which this
// package builds (with go build) but does not import.
func touchSources(root string) {
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".go", ".c", ".h", ".py", ".mod", ".sum":
			if f, err := os.Open(p); err == nil {
				f.Close()
			}
		}
		return nil
	})
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
		touchSources(root)
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
	// Python is optional (the scenarios say so when they skip); the
	// workloads run with PATH=/usr/bin:/bin, so look there first.
	for _, p := range []string{"/usr/bin/python3", "/bin/python3"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			python3 = p
			break
		}
	}
	if python3 == "" {
		python3, _ = exec.LookPath("python3")
	}
	for i, sc := range scenarios {
		key := binKey(sc)
		if _, ok := bins[key]; ok {
			continue
		}
		src := filepath.Join("testdata", sc.src)
		out := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.TrimSuffix(sc.src, ".c"), i))
		var cmd []string
		switch {
		case strings.HasSuffix(sc.src, ".py"):
			abs, err := filepath.Abs(src)
			if err != nil {
				return err
			}
			bins[key] = abs // run by python3 (workloadCmd)
			continue
		case strings.HasSuffix(sc.src, ".c"):
			cmd = append([]string{"gcc", "-O1", "-g", "-Wall", "-Wextra", "-o", out, src}, sc.cflags...)
			cmd = append(cmd, "-lm")
		default: // a Go main package (stdlib only)
			goBin, err := exec.LookPath("go")
			if err != nil {
				goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
			}
			cmd = []string{goBin, "build", "-o", out, "./" + src}
		}
		bins[key] = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %v\n%s", strings.Join(cmd, " "), err, b))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// workloadCmd returns the program and arguments that run sc's workload,
// or a reason to skip it.
func workloadCmd(sc scenario) (path string, args []string, skip string) {
	if sc.needs != "" {
		if m, _ := filepath.Glob(sc.needs); len(m) == 0 {
			return "", nil, fmt.Sprintf("no %s on this machine (%s) to run %s", sc.needs, sc.needsWhat, sc.src)
		}
	}
	if strings.HasSuffix(sc.src, ".py") {
		if python3 == "" {
			return "", nil, "no python3 on this machine (apt-get install python3) to run " + sc.src
		}
		return python3, append([]string{bins[binKey(sc)]}, sc.args...), ""
	}
	return bins[binKey(sc)], sc.args, ""
}

func TestScenarios(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if _, _, skip := workloadCmd(sc); skip != "" {
				t.Skip(skip)
			}
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
