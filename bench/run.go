package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mmcr/mmcr/internal/testproc"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// caseSpec is one workload run through dump and restore.
type caseSpec struct {
	Name     string   `json:"name"`
	Workload string   `json:"workload"` // source in workloads/, without .c
	Args     []string `json:"args"`
	// DataBytes is the touched memory the workload holds, counted once
	// (shared and COW-shared pages once): what the references move.
	DataBytes int64 `json:"data_bytes"`
	Tasks     int   `json:"tasks"`
	VMAs      int   `json:"vmas,omitempty"` // the VMA count the workload was asked for
	Pss       bool  `json:"-"`              // measure the tree's Pss before dump and after restore
}

// caseResult is what the runs of one case measured. Durations are medians
// over the runs; peak RSS is the maximum.
type caseResult struct {
	caseSpec
	Runs       int      `json:"runs"`
	Verified   int      `json:"verified"` // runs whose restored tree checked its memory and passed
	Errors     []string `json:"errors,omitempty"`
	DumpNs     int64    `json:"dump_ns"`
	RestoreNs  int64    `json:"restore_ns"`
	RefWriteNs int64    `json:"ref_write_ns"` // dd of DataBytes into a tmpfs file, right before each dump
	// RefReadNs is the faster of RefReadPlainNs (read() into fresh
	// anonymous memory) and RefReadPVWNs (read() into a reused buffer,
	// process_vm_writev to fresh anonymous memory): see workloads/reader.c.
	RefReadNs      int64 `json:"ref_read_ns"`
	RefReadPlainNs int64 `json:"ref_read_plain_ns"`
	RefReadPVWNs   int64 `json:"ref_read_pvw_ns"`
	// RefCopyNs is the copy of workloads/copier.c: process_vm_readv of
	// DataBytes from a child into buffers and write() to tmpfs, the
	// plainest two-copy dump (no checksum, no zero check, no freeze), the
	// faster of one thread and a two-thread pipeline.
	RefCopyNs int64 `json:"ref_copy_ns"`
	// RefSpliceNs is the copier's one-copy way (CRIU's): the child
	// vmsplice()s its pages into pipes, the parent splice()s them into the
	// file. SpliceRatio is the median of the runs' own ratios of it to dd:
	// how far above dd even a dump with a single copy starts.
	RefSpliceNs   int64   `json:"ref_splice_ns"`
	SpliceRatio   float64 `json:"splice_ratio"`
	DumpMaxRSS    int64   `json:"dump_max_rss_kib"`
	RestoreMaxRSS int64   `json:"restore_max_rss_kib"`
	ImageBytes    int64   `json:"image_bytes"`
	PssBeforeKiB  int64   `json:"pss_before_kib,omitempty"`
	PssAfterKiB   int64   `json:"pss_after_kib,omitempty"`
	// Every verified run's times, in run order, to judge the noise, and
	// the references timed next to them in the same run.
	DumpRunsNs     []int64 `json:"dump_runs_ns"`
	RestoreRunsNs  []int64 `json:"restore_runs_ns"`
	RefWriteRunsNs []int64 `json:"ref_write_runs_ns"`
	RefReadRunsNs  []int64 `json:"ref_read_runs_ns"` // the faster way, per run
	// DumpRatio and RestoreRatio are the medians of the runs' own ratios,
	// dump/dd and restore/read: each run times its dd right before its
	// dump and its read just before its workload starts, so a slow spell
	// of the machine weighs on both sides of one ratio instead of on one
	// side of the medians.
	DumpRatio    float64 `json:"dump_ratio"`
	RestoreRatio float64 `json:"restore_ratio"`
}

func (r *caseResult) ok() bool { return len(r.Errors) == 0 && r.Runs > 0 && r.Verified == r.Runs }

// plan is the list of cases of one mode and the roles the report gives them.
type plan struct {
	cases []caseSpec
	// Names of the cases each report row compares.
	small, sparse, mid, big, sharedTree, cow string
	vmas, tasks                              []string
	restoreVMAs                              string // the case whose restore must take under half a second
}

func anonCase(name string, mapMiB, touchKiB int64) caseSpec {
	return caseSpec{Name: name, Workload: "anon", Args: []string{itoa(mapMiB), itoa(touchKiB)},
		DataBytes: touchKiB << 10, Tasks: 1}
}

func sharedCase(name string, tasks int, sizeMiB int64) caseSpec {
	return caseSpec{Name: name, Workload: "shared", Args: []string{itoa(int64(tasks)), itoa(sizeMiB)},
		DataBytes: sizeMiB * mib, Tasks: tasks}
}

func vmaCase(n int) caseSpec {
	return caseSpec{Name: fmt.Sprintf("vmas-%d", n), Workload: "vmas", Args: []string{itoa(int64(n))},
		DataBytes: int64((n+3)/4) * 4096, Tasks: 1, VMAs: n}
}

// cowCase: children each rewrite permille/1000 of the pages (whole pages,
// so the modified bytes are counted page by page as the workload does).
func cowCase(name string, sizeMiB int64, nchild, permille int) caseSpec {
	pages := sizeMiB * mib / 4096
	var modified int64
	for pg := int64(0); pg < pages; pg++ {
		for i := 1; i <= nchild; i++ {
			if (pg+int64(i)*7919)%1000 < int64(permille) {
				modified++
			}
		}
	}
	return caseSpec{Name: name, Workload: "cow", Args: []string{itoa(sizeMiB), itoa(int64(nchild)), itoa(int64(permille))},
		DataBytes: (pages + modified) * 4096, Tasks: 1 + nchild, Pss: true}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// fullPlan is the benchmark of issue 5.
func fullPlan() plan {
	p := plan{small: "anon-1m", sparse: "sparse-4g", mid: "anon-256m", big: "anon-1g",
		sharedTree: "shared-tree-256m", cow: "cow-512m",
		vmas: []string{"vmas-1000", "vmas-10000", "vmas-50000"}, restoreVMAs: "vmas-10000",
		tasks: []string{"tasks-1", "tasks-16", "tasks-64"}}
	p.cases = []caseSpec{
		anonCase("anon-1m", 1, 1024),
		anonCase("sparse-4g", 4096, 1024),
		anonCase("anon-256m", 256, 256<<10),
		anonCase("anon-1g", 1024, 1<<20),
		sharedCase("shared-tree-256m", 5, 256),
		vmaCase(1000), vmaCase(10000), vmaCase(50000),
		sharedCase("tasks-1", 1, 64), sharedCase("tasks-16", 16, 64), sharedCase("tasks-64", 64, 64),
		cowCase("cow-512m", 512, 4, 10),
	}
	return p
}

// quickPlan has the same rows on tiny sizes: a smoke run of the harness.
func quickPlan() plan {
	p := plan{small: "anon-1m", sparse: "sparse-1g", mid: "anon-8m", big: "anon-32m",
		sharedTree: "shared-tree-8m", cow: "cow-16m",
		vmas: []string{"vmas-200", "vmas-1000", "vmas-2000"}, restoreVMAs: "vmas-1000",
		tasks: []string{"tasks-1", "tasks-2", "tasks-4"}}
	p.cases = []caseSpec{
		anonCase("anon-1m", 1, 1024),
		anonCase("sparse-1g", 1024, 1024),
		anonCase("anon-8m", 8, 8<<10),
		anonCase("anon-32m", 32, 32<<10),
		sharedCase("shared-tree-8m", 5, 8),
		vmaCase(200), vmaCase(1000), vmaCase(2000),
		sharedCase("tasks-1", 1, 8), sharedCase("tasks-2", 2, 8), sharedCase("tasks-4", 4, 8),
		cowCase("cow-16m", 16, 2, 10),
	}
	return p
}

// config is how one benchmark run is set up.
type config struct {
	runs    int
	quick   bool
	only    map[string]bool // run only these cases (nil: all)
	mmcr    string          // mmcr binary; empty: build it into the work dir
	baseDir string          // a tmpfs directory under which the work dir is made
	keep    bool
	debug   bool // pass -vv to mmcr: phase timings in the logs of the work dir (use with keep)
	// holdFree has the guest keep its free pages from the host while the
	// benchmark runs (holdFreePages).
	holdFree bool
	log      io.Writer // progress lines
}

// env is the prepared state of a run: binaries and the work dir.
type env struct {
	cfg  config
	work string // on tmpfs: images, reference files, run dirs, logs
	bins map[string]string
	dd   string
	mmcr string
	hold *freePageHold // set when the run holds the guest's free pages
}

// repoRoot finds the module root (the directory holding go.mod and
// bench/workloads) from the current directory upwards.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "bench", "workloads", "bench.h")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the mmcr repository (bench/workloads/bench.h) above the current directory")
		}
		dir = parent
	}
}

// isTmpfs reports whether dir is on tmpfs.
func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// prepare checks the prerequisites, makes the harness a subreaper, builds
// mmcr (unless given) and the workloads, and starts the reaper. From its
// return on, nothing may use os/exec.
func prepare(cfg config) (*env, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the benchmark needs root (mmcr uses ptrace, map_files, clone3 with set_tid)")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return nil, errors.New("the benchmark needs gcc to build its workloads (apt-get install gcc libc6-dev)")
	}
	dd, err := exec.LookPath("dd")
	if err != nil {
		return nil, errors.New("the benchmark needs dd (coreutils) for its reference")
	}
	if !isTmpfs(cfg.baseDir) {
		return nil, fmt.Errorf("%s is not a tmpfs: images and references must live in memory", cfg.baseDir)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if err := closeOnExecAll(); err != nil {
		return nil, err
	}
	if err := testproc.BecomeSubreaper(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(cfg.baseDir, "mmcr-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, work: work, bins: map[string]string{}, dd: dd, mmcr: cfg.mmcr}
	fail := func(err error) (*env, error) {
		os.RemoveAll(work)
		return nil, err
	}
	if e.mmcr == "" {
		e.mmcr = filepath.Join(work, "mmcr")
		goBin, err := exec.LookPath("go")
		if err != nil {
			return fail(errors.New("no -mmcr binary given and no go to build one"))
		}
		cmd := exec.Command(goBin, "build", "-o", e.mmcr, "./cmd/mmcr")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("go build ./cmd/mmcr: %v\n%s", err, out))
		}
	} else if e.mmcr, err = filepath.Abs(e.mmcr); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(e.mmcr); err != nil {
		return fail(fmt.Errorf("mmcr binary: %w (make build)", err))
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, w := range []string{"anon", "shared", "vmas", "cow", "reader", "copier"} {
		out := filepath.Join(work, "bin-"+w)
		e.bins[w] = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := filepath.Join(root, "bench", "workloads", w+".c")
			if err := testproc.CompileC(gcc, out, src, "-O2", "-Wall", "-Wextra"); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	if cfg.holdFree {
		if e.hold, err = holdFreePages(); err != nil {
			e.logf("%v: the run goes on without", err)
		}
		if e.hold != nil && !cfg.quick {
			took, err := warmFreeMemory(dd, work, warmBytes)
			if err != nil {
				e.hold.release()
				return fail(err)
			}
			e.logf("warmed %d GiB of free memory in %v", warmBytes>>30, took.Round(time.Millisecond))
		}
	}
	reaper.start()
	return e, nil
}

// cleanup kills whatever the run left, lets the host have free pages
// again and removes the work dir.
func (e *env) cleanup() {
	if killed := killDescendants(); len(killed) > 0 {
		e.logf("killed leftover processes %v", killed)
	}
	if err := e.hold.release(); err != nil {
		e.logf("%v", err)
	}
	if e.cfg.keep {
		e.logf("kept %s", e.work)
		return
	}
	os.RemoveAll(e.work)
}

func (e *env) logf(format string, args ...any) {
	if e.cfg.log != nil {
		fmt.Fprintf(e.cfg.log, "bench: "+format+"\n", args...)
	}
}

// runPlan runs every case of p (or those cfg.only names): one run of each
// case in turn, cfg.runs times over, so that a slow spell of the machine
// falls on runs of several cases instead of on all runs of one (the
// report compares cases with each other too).
func (e *env) runPlan(p plan) []*caseResult {
	var runs []*caseRun
	for _, c := range p.cases {
		if e.cfg.only == nil || e.cfg.only[c.Name] {
			runs = append(runs, e.startCase(c))
		}
	}
	for i := 0; i < e.cfg.runs; i++ {
		for _, cr := range runs {
			e.runCaseOnce(cr, i)
		}
	}
	var out []*caseResult
	for _, cr := range runs {
		r := cr.finish()
		if !e.cfg.keep {
			os.RemoveAll(cr.dir)
		}
		status := "ok"
		if !r.ok() {
			status = fmt.Sprintf("verified %d/%d, errors: %s", r.Verified, r.Runs, strings.Join(r.Errors, "; "))
		}
		e.logf("%-18s dump %8s  restore %8s  dd %8s  read %8s  (%s)", r.Name, ms(r.DumpNs), ms(r.RestoreNs),
			ms(r.RefWriteNs), ms(r.RefReadNs), status)
		out = append(out, r)
	}
	return out
}

func ms(ns int64) string { return fmt.Sprintf("%.1fms", float64(ns)/1e6) }

// caseRun is one case's runs so far.
type caseRun struct {
	r                                                                             *caseResult
	dir                                                                           string
	stopped                                                                       bool // a reference failed: the case runs no more
	dumps, restores, writes, reads, readsPlain, readsPVW, copies, splices, images []int64
	dumpRatios, restoreRatios, spliceRatios                                       []float64
}

// startCase makes c's directory and warms its references (page cache of
// dd, tmpfs allocation paths) and the case itself with one untimed run; a
// quick run measures overheads and skips the warming.
func (e *env) startCase(c caseSpec) *caseRun {
	cr := &caseRun{r: &caseResult{caseSpec: c}, dir: filepath.Join(e.work, c.Name)}
	fail := func(err error) *caseRun {
		cr.r.Errors = append(cr.r.Errors, err.Error())
		cr.stopped = true
		return cr
	}
	if err := os.MkdirAll(cr.dir, 0o755); err != nil {
		return fail(err)
	}
	if !e.cfg.quick {
		if _, err := e.references(cr.dir, c.DataBytes); err != nil {
			return fail(err)
		}
		// One untimed run first: the first dump and restore of a case
		// were up to 2.8x its later ones (memory the host had to fault in).
		if _, err := e.runOnce(c, cr.dir, -1); err != nil {
			killDescendants()
			return fail(fmt.Errorf("warm-up run: %w", err))
		}
	}
	return cr
}

// runCaseOnce is run i of a case: the references, then dump and restore
// of a fresh workload, whose restored tree must verify its memory.
func (e *env) runCaseOnce(cr *caseRun, i int) {
	r := cr.r
	if cr.stopped {
		return
	}
	ref, err := e.references(cr.dir, r.DataBytes)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		cr.stopped = true
		return
	}
	cr.copies, cr.splices = append(cr.copies, ref.copy), append(cr.splices, ref.splice)
	cr.spliceRatios = append(cr.spliceRatios, float64(ref.splice)/float64(ref.write))
	one, err := e.runOnce(r.caseSpec, cr.dir, i)
	r.Runs++
	if err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("run %d: %v", i+1, err))
		if killed := killDescendants(); len(killed) > 0 {
			e.logf("%s run %d: killed %v", r.Name, i+1, killed)
		}
		return
	}
	r.Verified++
	read := min(ref.readPlain, ref.readPVW)
	e.logf("run %d/%d %-18s dump %8s (dd %8s)  restore %8s (read %8s)", i+1, e.cfg.runs, r.Name,
		ms(one.dump.wall.Nanoseconds()), ms(one.dd), ms(one.restore.wall.Nanoseconds()), ms(read))
	cr.dumps, cr.restores = append(cr.dumps, one.dump.wall.Nanoseconds()), append(cr.restores, one.restore.wall.Nanoseconds())
	cr.writes, cr.reads = append(cr.writes, one.dd), append(cr.reads, read)
	cr.readsPlain, cr.readsPVW = append(cr.readsPlain, ref.readPlain), append(cr.readsPVW, ref.readPVW)
	cr.dumpRatios = append(cr.dumpRatios, float64(one.dump.wall.Nanoseconds())/float64(one.dd))
	cr.restoreRatios = append(cr.restoreRatios, float64(one.restore.wall.Nanoseconds())/float64(read))
	cr.images = append(cr.images, one.imageBytes)
	r.DumpMaxRSS = max(r.DumpMaxRSS, one.dump.maxRSSKiB)
	r.RestoreMaxRSS = max(r.RestoreMaxRSS, one.restore.maxRSSKiB)
	if r.Pss && r.PssBeforeKiB == 0 {
		// Keep the first run's Pss pair: one consistent before/after.
		r.PssBeforeKiB, r.PssAfterKiB = one.pssBefore, one.pssAfter
	}
}

// finish sets the case's medians from its runs.
func (cr *caseRun) finish() *caseResult {
	r := cr.r
	r.DumpNs, r.RestoreNs = median(cr.dumps), median(cr.restores)
	r.DumpRunsNs, r.RestoreRunsNs = cr.dumps, cr.restores
	r.RefWriteRunsNs, r.RefReadRunsNs = cr.writes, cr.reads
	r.RefWriteNs, r.RefReadPlainNs, r.RefReadPVWNs = median(cr.writes), median(cr.readsPlain), median(cr.readsPVW)
	r.RefReadNs = median(cr.reads)
	r.RefCopyNs, r.RefSpliceNs = median(cr.copies), median(cr.splices)
	r.SpliceRatio = medianFloat(cr.spliceRatios)
	r.ImageBytes = median(cr.images)
	r.DumpRatio, r.RestoreRatio = medianFloat(cr.dumpRatios), medianFloat(cr.restoreRatios)
	return r
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// refTimes is one measurement of the references, in ns.
type refTimes struct{ write, readPlain, readPVW, copy, splice int64 }

// references times dd, the reader and the copier (timeWrite, timeReads,
// timeCopy) before the run's workload starts; the dd here makes the
// reader's file and is the one-copy ratio's reference. The dump's own dd
// runs right before it (runOnce), its file removed first: a dd file kept
// for the reader left the dump the memory the host had taken back
// (session 9 measured a dump twice as slow that way).
func (e *env) references(dir string, n int64) (refTimes, error) {
	var t refTimes
	var err error
	if t.write, err = e.timeWrite(dir, n); err != nil {
		return t, err
	}
	if t.readPlain, t.readPVW, err = e.timeReads(dir, n); err != nil {
		return t, err
	}
	t.copy, t.splice, err = e.timeCopy(dir, n)
	return t, err
}

// refFile is the reference data file in a case's directory: dd writes
// it, the reader reads it back.
func refFile(dir string) string { return filepath.Join(dir, "ref.dat") }

// timeWrite times dd writing n bytes of /dev/zero into a new tmpfs file,
// the dump's reference; the file stays for timeReads.
func (e *env) timeWrite(dir string, n int64) (int64, error) {
	f := refFile(dir)
	os.Remove(f)
	logOut, logErr := filepath.Join(dir, "ref.stdout"), filepath.Join(dir, "ref.stderr")
	w, err := runTimed(procSpec{path: e.dd, dir: dir, stdout: logOut, stderr: logErr,
		args: []string{"if=/dev/zero", "of=" + f, "bs=1M", "count=" + itoa(n), "iflag=count_bytes", "status=none"}}, 5*time.Minute)
	if err != nil {
		return 0, err
	}
	if !w.ok() {
		return 0, fmt.Errorf("dd reference failed: %s (%s)", describeStatus(w.status), tail(logErr))
	}
	return w.wall.Nanoseconds(), nil
}

// timeReads times the reader filling fresh anonymous memory from the file
// timeWrite left, both ways (read() straight into it, and read() into a
// reused buffer plus process_vm_writev: see workloads/reader.c), the
// restore's reference; then it removes the file. The times are the
// reader's own, without its exit's freeing of the memory.
func (e *env) timeReads(dir string, n int64) (plain, pvw int64, err error) {
	f := refFile(dir)
	defer os.Remove(f)
	for _, mode := range []string{"read", "pvw"} {
		ns, err := e.selfTimed(dir, "reader", f, n, mode)
		if err != nil {
			return 0, 0, err
		}
		if mode == "read" {
			plain = ns
		} else {
			pvw = ns
		}
	}
	return plain, pvw, nil
}

// timeCopy times the copier copying n bytes of a child's memory into a
// tmpfs file: twoCopies is the faster of one thread and a two-thread
// pipeline (process_vm_readv and write), oneCopy the vmsplice and splice
// way.
func (e *env) timeCopy(dir string, n int64) (twoCopies, oneCopy int64, err error) {
	f := refFile(dir)
	defer os.Remove(f)
	for _, mode := range []string{"loop", "pipe", "splice"} {
		os.Remove(f)
		ns, err := e.selfTimed(dir, "copier", f, n, mode)
		if err != nil {
			return 0, 0, err
		}
		if mode == "splice" {
			oneCopy = ns
		} else if twoCopies == 0 || ns < twoCopies {
			twoCopies = ns
		}
	}
	return twoCopies, oneCopy, nil
}

// selfTimed runs the reference workload bin (reader or copier) on file f,
// n bytes, in mode, and returns the nanoseconds it printed: the time of
// its work alone.
func (e *env) selfTimed(dir, bin, f string, n int64, mode string) (int64, error) {
	out, logErr := filepath.Join(dir, bin+".stdout"), filepath.Join(dir, "ref.stderr")
	os.Remove(out)
	r, err := runTimed(procSpec{path: e.bins[bin], args: []string{f, itoa(n), mode}, dir: dir, stdout: out, stderr: logErr}, 5*time.Minute)
	if err != nil {
		return 0, err
	}
	if !r.ok() {
		return 0, fmt.Errorf("%s reference (%s) failed: %s (%s)", bin, mode, describeStatus(r.status), tail(logErr))
	}
	b, err := os.ReadFile(out)
	var ns int64
	if err == nil {
		ns, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("%s reference (%s): no time on its stdout: %v", bin, mode, err)
	}
	return ns, nil
}

// oneRun is what one dump and restore of a case measured.
type oneRun struct {
	dump, restore       runResult
	dd                  int64 // the dump's reference, timed right before it
	imageBytes          int64
	pssBefore, pssAfter int64
}

// runOnce starts the workload, dumps it (timed), restores it (timed),
// checks the restored tree and has it verify its memory.
func (e *env) runOnce(c caseSpec, dir string, i int) (oneRun, error) {
	var one oneRun
	name := fmt.Sprint(i)
	if i < 0 {
		name = "-warmup"
	}
	run, img := filepath.Join(dir, "run"+name), filepath.Join(dir, "img"+name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return one, err
	}
	defer os.RemoveAll(img)
	wout, werr := filepath.Join(run, "workload.stdout"), filepath.Join(run, "workload.stderr")
	s, err := startProc(procSpec{path: e.bins[c.Workload], args: c.Args, dir: run, stdout: wout, stderr: werr, setsid: true})
	if err != nil {
		return one, err
	}
	root := s.pid
	if err := testproc.WaitPidfile(run, testproc.Started{Pid: s.pid, Mark: s.mark, At: s.at}, 2*time.Minute); err != nil {
		return one, fmt.Errorf("%v (stderr: %s)", err, tail(werr))
	}
	pids, err := waitTasks(root, c.Tasks)
	if err != nil {
		return one, err
	}
	time.Sleep(100 * time.Millisecond) // let every task settle into its sleep
	if c.Pss {
		if one.pssBefore, err = pssKiB(pids); err != nil {
			return one, err
		}
	}

	// The dump's reference: dd of the same bytes right before the dump,
	// into memory a first, untimed dd has just used and freed, and its
	// own file removed before the dump starts, so that dd and the dump
	// both write into memory just used (bench/host.go says why that
	// matters on the README's guest).
	for k := 0; k < 2; k++ {
		if one.dd, err = e.timeWrite(dir, c.DataBytes); err != nil {
			return one, err
		}
		os.Remove(refFile(dir))
	}

	verbose := []string{}
	if e.cfg.debug {
		verbose = []string{"-vv"}
	}
	dlog := filepath.Join(run, "dump.log")
	one.dump, err = runTimed(procSpec{path: e.mmcr, args: append([]string{"dump", "-t", itoa(int64(root)), "-D", img, "--log-file", dlog}, verbose...),
		dir: run, stdout: filepath.Join(run, "dump.stdout"), stderr: filepath.Join(run, "dump.stderr")}, 10*time.Minute)
	if err != nil {
		return one, err
	}
	if !one.dump.ok() {
		return one, fmt.Errorf("mmcr dump: %s: %s", describeStatus(one.dump.status), tail(filepath.Join(run, "dump.stderr")))
	}
	if left := waitGone(pids, 10*time.Second); len(left) > 0 {
		return one, fmt.Errorf("dumped tasks %v still exist 10s after mmcr dump returned", left)
	}
	if one.imageBytes, err = diskBytes(img); err != nil {
		return one, err
	}

	mark := reaper.mark()
	pidfile := filepath.Join(run, "restore.pid")
	rerr := filepath.Join(run, "restore.stderr")
	// On a busy machine another process may take one of the dumped pids
	// between dump and restore (restore then fails cleanly, nothing
	// created): wait a little and try again, a few times.
	for attempt := 1; ; attempt++ {
		one.restore, err = runTimed(procSpec{path: e.mmcr, args: append([]string{"restore", "-D", img, "-d", "--pidfile", pidfile,
			"--log-file", filepath.Join(run, "restore.log")}, verbose...),
			dir: run, stdout: filepath.Join(run, "restore.stdout"), stderr: rerr}, 10*time.Minute)
		if err != nil {
			return one, err
		}
		if one.restore.ok() {
			break
		}
		msg := tail(rerr)
		if !strings.Contains(msg, "already in use") || attempt == 5 {
			return one, fmt.Errorf("mmcr restore: %s: %s", describeStatus(one.restore.status), msg)
		}
		e.logf("%s: %s; trying again in a second", c.Name, msg)
		time.Sleep(time.Second)
	}
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != itoa(int64(root)) {
		return one, fmt.Errorf("restore pid file says %q (%v), the dumped root was %d", b, err, root)
	}
	now := descendants(root)
	if fmt.Sprint(now) != fmt.Sprint(pids) {
		return one, fmt.Errorf("restored tree has pids %v, the dumped one had %v", now, pids)
	}
	if c.Pss {
		if one.pssAfter, err = pssKiB(now); err != nil {
			return one, err
		}
	}
	return one, verdict(run, root, mark, wout)
}

// waitTasks waits until the tree under root has n tasks and returns them.
func waitTasks(root, n int) ([]int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := descendants(root)
		if len(pids) == n {
			return pids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("workload tree has %d tasks %v, want %d", len(pids), pids, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verdict sends SIGTERM to the restored root and waits for its result.
func verdict(run string, root int, since uint64, wout string) error {
	if err := unix.Kill(root, unix.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM restored root %d: %w", root, err)
	}
	ev, ok := reaper.waitExit(root, since, 5*time.Minute)
	if !ok {
		return fmt.Errorf("restored root %d did not exit within 5 minutes of SIGTERM", root)
	}
	b, err := os.ReadFile(filepath.Join(run, "result"))
	if err != nil {
		return fmt.Errorf("restored root %d exited (%s) without a verdict; stdout: %s", root, describeStatus(ev.status), tail(wout))
	}
	if res := strings.TrimSpace(string(b)); res != "PASS" {
		return fmt.Errorf("restored workload's memory check: %s", res)
	}
	if !ev.status.Exited() || ev.status.ExitStatus() != 0 {
		return fmt.Errorf("restored root passed but exited with %s", describeStatus(ev.status))
	}
	return nil
}

// tail is the last line of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty)"
	}
	lines := strings.Split(s, "\n")
	return lines[len(lines)-1]
}
