package e2e

// Issue 6's fault tests through the mmcr binary: a dump that fails for any
// reason (interrupted by SIGINT/SIGTERM at random points, killed with
// SIGKILL during the page copy, disk full, image dir unwritable or locked,
// tree already traced by another mmcr) must leave the tree running exactly
// as before and no image that looks complete; the workload verifies all of
// its memory at the end. Then restores interrupted at random points must
// leave nothing behind, and an image with another CPU's xstate layout
// must be refused.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"

	"github.com/mmcr/mmcr/image"
)

// faultsMiB is the size of the workload the faults are injected into:
// large enough that the page copy takes a while (MMCR_LONG=1: 512 MiB).
func faultsMiB() string {
	if os.Getenv("MMCR_LONG") == "1" {
		return "512"
	}
	return "256"
}

// asyncMmcr is an mmcr run started in the background.
type asyncMmcr struct {
	pid        int
	mark       uint64
	stderr     string
	log        string
	name, args string
}

func (e *env) startMmcr(name string, args ...string) *asyncMmcr {
	e.t.Helper()
	out := filepath.Join(e.dir, name+".stdout")
	errp := filepath.Join(e.dir, name+".stderr")
	logf := filepath.Join(e.dir, name+".log")
	e.show(errp, logf)
	args = append(args, "-vv", "--log-file", logf)
	s, err := testproc.Start(testproc.Spec{Path: mmcrBin, Args: args, Dir: e.dir, Stdout: out, Stderr: errp})
	if err != nil {
		e.t.Fatal(err)
	}
	return &asyncMmcr{pid: s.Pid, mark: s.Mark, stderr: errp, log: logf, name: name, args: strings.Join(args, " ")}
}

func (m *asyncMmcr) wait(t *testing.T, timeout time.Duration) mmcrResult {
	t.Helper()
	ex, ok := testproc.WaitExit(m.pid, m.mark, capped(timeout))
	ws := ex.Status
	if !ok {
		unix.Kill(m.pid, unix.SIGKILL)
		t.Fatalf("mmcr %s did not finish within %v", m.args, timeout)
	}
	b, _ := os.ReadFile(m.stderr)
	return mmcrResult{status: ws, stderr: string(b)}
}

// waitLog waits until m's log holds substr (or m exits, or timeout).
func (m *asyncMmcr) waitLog(substr string, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if b, _ := os.ReadFile(m.log); bytes.Contains(b, []byte(substr)) {
			return true
		}
		if _, done := testproc.Exited(m.pid, m.mark); done {
			return false
		}
	}
	return false
}

// expectUntouched checks the tree after a failed dump: every task there,
// not traced, not stopped, identity and maps as in the snapshot (no
// scratch page or planted code left).
func (e *env) expectUntouched(root int, before map[int]taskSnap, what string) {
	e.t.Helper()
	for _, pid := range pidsOf(before) {
		st, _, ok := procStat(pid)
		if !ok {
			e.t.Fatalf("%s: task %d is gone", what, pid)
		}
		if st == 't' || st == 'T' {
			e.t.Errorf("%s: task %d left stopped (state %c)", what, pid, st)
		}
		if tp := tracerPid(pid); tp != 0 {
			e.t.Errorf("%s: task %d still traced by %d", what, pid, tp)
		}
	}
	e.compareTree(root, before, what)
}

// expectNoCompleteImage checks that dir holds nothing restore would take
// for a finished image.
func expectNoCompleteImage(t *testing.T, dir, what string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(dir, image.ManifestName)); err == nil {
		t.Errorf("%s: %s holds a manifest", what, dir)
	}
	if _, err := image.Open(dir); err == nil {
		t.Errorf("%s: image.Open accepts %s", what, dir)
	}
}

func TestFaults(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if noCR {
		t.Skip("MMCR_E2E_NOCR=1")
	}
	sc := scenario{name: "faults", src: "anon.c", args: []string{faultsMiB()}, verdict: 120 * time.Second}
	if _, ok := bins[binKey(sc)]; !ok {
		t.Fatalf("no binary built for %s (the scenarios table no longer builds anon.c without flags?)", sc.src)
	}
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	pids := pidsOf(before)
	img := filepath.Join(e.dir, "img")

	// A full dump first: it must work, and its length sets the range of
	// the random interruptions.
	t0 := time.Now()
	e.dump(root, "--leave-running")
	full := time.Since(t0)
	t.Logf("full dump of %s MiB with --leave-running: %v", sc.args[0], full)
	e.expectUntouched(root, before, "after a complete dump --leave-running")
	if t.Failed() {
		t.FailNow()
	}

	t.Run("interrupted-dumps", func(t *testing.T) {
		e.in(t, func() {
			rounds := 6
			if os.Getenv("MMCR_LONG") == "1" {
				rounds = 20
			}
			for i := range rounds {
				sig := unix.SIGINT
				if i%2 == 1 {
					sig = unix.SIGTERM
				}
				dir := filepath.Join(e.dir, fmt.Sprintf("img-int-%d", i))
				delay := time.Duration(rand.Int64N(int64(full + full/5)))
				m := e.startMmcr(fmt.Sprintf("dump-int-%d", i), "dump", "-t", strconv.Itoa(root), "-D", dir, "--leave-running")
				time.Sleep(delay)
				unix.Kill(m.pid, sig)
				r := m.wait(t, 60*time.Second)
				what := fmt.Sprintf("%v after %v", sig, delay.Round(time.Millisecond))
				switch {
				case r.ok():
					// Finished before the signal: a complete image.
					if _, err := image.Open(dir); err != nil {
						t.Errorf("%s: dump succeeded but its image is bad: %v", what, err)
					}
					t.Logf("%s: dump had finished", what)
				case r.status.Signaled() && r.status.Signal() == sig:
					// Before mmcr installed its handler (nothing was touched),
					// or after the dump had finished and mmcr stopped
					// catching signals (the image is complete).
					if _, err := image.Open(dir); err == nil {
						t.Logf("%s: mmcr died after the dump had finished", what)
					} else {
						t.Logf("%s: mmcr died before catching signals", what)
						expectNoCompleteImage(t, dir, what)
					}
				default:
					line := firstLine(r.stderr)
					t.Logf("%s: %s", what, line)
					if !strings.Contains(line, "interrupted by") || r.status.ExitStatus() != 1 {
						t.Errorf("%s: mmcr %s: %s, want exit 1 saying 'interrupted by'", what, testproc.DescribeStatus(r.status), line)
					}
					expectNoCompleteImage(t, dir, what)
					if ents, _ := os.ReadDir(dir); len(ents) != 0 {
						t.Errorf("%s: interrupted dump left %d files in %s", what, len(ents), dir)
					}
				}
				e.expectUntouched(root, before, what)
				os.RemoveAll(dir)
				if t.Failed() {
					return
				}
			}
		})
	})

	t.Run("sigkill-during-page-copy", func(t *testing.T) {
		e.in(t, func() {
			dir := filepath.Join(e.dir, "img-kill")
			m := e.startMmcr("dump-kill", "dump", "-t", strconv.Itoa(root), "-D", dir, "--leave-running")
			// "task collected" is logged once a task's remote syscalls are
			// over; the page copy of every task comes after all of them.
			if !m.waitLog("task collected", 30*time.Second) {
				t.Fatalf("mmcr never logged 'task collected'")
			}
			time.Sleep(full / 4)
			unix.Kill(m.pid, unix.SIGKILL)
			r := m.wait(t, 30*time.Second)
			if r.ok() {
				t.Skipf("the dump finished before SIGKILL (%v): nothing to check", full)
			}
			// The kernel detaches the tracees when their tracer dies.
			time.Sleep(50 * time.Millisecond)
			e.expectUntouched(root, before, "after SIGKILL of mmcr during the page copy")
			if _, err := image.Open(dir); err == nil {
				// This dump ran faster than the first (the machine's
				// noise): SIGKILL came after its commit, while mmcr let
				// the tree go. The image is complete; the tree must still
				// be untouched, which was checked.
				t.Skipf("the dump had committed its image before SIGKILL (%v after 'task collected')", full/4)
			}
			expectNoCompleteImage(t, dir, "SIGKILL during page copy")
			rr := e.mmcr("restore-killed-image", "restore", "-D", dir, "-d")
			if rr.ok() || !strings.Contains(rr.stderr, "incomplete") {
				t.Errorf("restore of the killed dump's leftovers: %s: %s, want a refusal saying incomplete", testproc.DescribeStatus(rr.status), firstLine(rr.stderr))
			}
			os.RemoveAll(dir)
		})
	})

	// dumpFails runs a dump that must fail with a message holding want and
	// leave the tree untouched and no complete image in dir.
	dumpFails := func(t *testing.T, name, dir, want string) {
		t.Helper()
		r := e.mmcr(name, "dump", "-t", strconv.Itoa(root), "-D", dir, "--leave-running")
		line := firstLine(r.stderr)
		t.Logf("%s: %s", name, line)
		if r.ok() || !strings.Contains(line, want) || strings.Contains(strings.TrimSpace(r.stderr), "\n") {
			t.Errorf("%s: mmcr %s: %q, want one line saying %q", name, testproc.DescribeStatus(r.status), line, want)
		}
		expectNoCompleteImage(t, dir, name)
		e.expectUntouched(root, before, name)
	}

	t.Run("disk-full", func(t *testing.T) {
		e.in(t, func() {
			mnt := filepath.Join(e.dir, "full")
			if err := os.Mkdir(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
				t.Skipf("cannot mount a small tmpfs to fill: %v", err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			dumpFails(t, "dump-disk-full", filepath.Join(mnt, "img"), "no space left on device")
			if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
				t.Errorf("the failed dump left %d entries on the full filesystem", len(ents))
			}
		})
	})

	t.Run("unwritable-dir", func(t *testing.T) {
		e.in(t, func() {
			mnt := filepath.Join(e.dir, "ro")
			if err := os.Mkdir(mnt, 0o700); err != nil {
				t.Fatal(err)
			}
			// Root ignores permission bits: a read-only mount is what
			// makes a directory unwritable for it.
			if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
				t.Skipf("cannot mount a read-only tmpfs: %v", err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			dumpFails(t, "dump-unwritable", filepath.Join(mnt, "img"), "read-only file system")
		})
	})

	t.Run("second-mmcr", func(t *testing.T) {
		e.in(t, func() {
			dir := filepath.Join(e.dir, "img-first")
			first := e.startMmcr("dump-first", "dump", "-t", strconv.Itoa(root), "-D", dir, "--leave-running")
			if !first.waitLog("tree frozen", 30*time.Second) {
				t.Fatalf("first mmcr never froze the tree")
			}
			// All three at once, while the first holds the tree and the dir:
			// a second dump of the same tree (its tasks are traced by the
			// first), a second dump into the same dir and a restore of it
			// (the dir is locked).
			sameTree := e.startMmcr("dump-second-tree", "dump", "-t", strconv.Itoa(root), "-D", filepath.Join(e.dir, "img-second"), "--leave-running")
			sameDir := e.startMmcr("dump-second-dir", "dump", "-t", strconv.Itoa(root), "-D", dir, "--leave-running")
			restoring := e.startMmcr("restore-while-dumping", "restore", "-D", dir, "-d")
			rTree, rDir, rRestore := sameTree.wait(t, 60*time.Second), sameDir.wait(t, 60*time.Second), restoring.wait(t, 60*time.Second)
			if _, done := testproc.Exited(first.pid, first.mark); done {
				t.Skipf("the first dump (%v) finished before the others were refused: no overlap to check", full)
			}
			if want := fmt.Sprintf("is already traced by %d (another mmcr?)", first.pid); rTree.ok() || !strings.Contains(rTree.stderr, want) {
				t.Errorf("second dump of the same tree: %s: %s, want a refusal saying %q", testproc.DescribeStatus(rTree.status), firstLine(rTree.stderr), want)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "img-second")); err == nil {
				t.Errorf("the refused dump left its image dir")
			}
			if rDir.ok() || !strings.Contains(rDir.stderr, "locked by another mmcr") {
				t.Errorf("second dump into the same dir: %s: %s, want a refusal saying it is locked", testproc.DescribeStatus(rDir.status), firstLine(rDir.stderr))
			}
			if rRestore.ok() || !strings.Contains(rRestore.stderr, "locked by another mmcr") {
				t.Errorf("restore of the dir being dumped: %s: %s, want a refusal saying it is locked", testproc.DescribeStatus(rRestore.status), firstLine(rRestore.stderr))
			}
			if r := first.wait(t, 90*time.Second); !r.ok() {
				t.Fatalf("first dump disturbed: %s: %s", testproc.DescribeStatus(r.status), firstLine(r.stderr))
			}
			if _, err := image.Open(dir); err != nil {
				t.Errorf("first dump's image: %v", err)
			}
			e.expectUntouched(root, before, "after two dumps at once")
			os.RemoveAll(dir)
		})
	})

	// Everything above left the tree as it was: it verifies its memory.
	e.verdict(root, 0)
	e.expectGone(pids, "tree after its verdict")
	if t.Failed() {
		return
	}

	t.Run("xstate-mismatch", func(t *testing.T) {
		e.in(t, func() {
			bad := filepath.Join(e.dir, "img-xstate")
			if err := copyDir(img, bad); err != nil {
				t.Fatal(err)
			}
			xcr0, err := editXCR0(bad, func(x uint64) uint64 { return x ^ 1<<61 })
			if err != nil {
				t.Fatal(err)
			}
			e.expectRestoreFailure(t, "restore-xstate", bad, pids)
			b, _ := os.ReadFile(filepath.Join(e.dir, "restore-xstate.stderr"))
			if want := fmt.Sprintf("this CPU/kernel has %#x", xcr0); !strings.Contains(string(b), "xstate features") || !strings.Contains(string(b), want) {
				t.Errorf("restore of an image with another xstate layout: %q, want it to name the layouts (%q)", b, want)
			}
		})
	})

	t.Run("interrupted-restores", func(t *testing.T) {
		e.in(t, func() {
			t0 := time.Now()
			mark := testproc.Mark()
			e.restore("restore-timed", img, root)
			rdur := time.Since(t0)
			e.compareTree(root, before, "restore")
			e.verdict(root, mark)
			e.expectGone(pids, "restored tree after its verdict")
			for i := range 4 {
				sig := unix.SIGTERM
				if i%2 == 1 {
					sig = unix.SIGINT
				}
				delay := time.Duration(rand.Int64N(int64(rdur)))
				mark := testproc.Mark()
				m := e.startMmcr(fmt.Sprintf("restore-int-%d", i), "restore", "-D", img, "-d")
				time.Sleep(delay)
				unix.Kill(m.pid, sig)
				r := m.wait(t, 60*time.Second)
				what := fmt.Sprintf("restore, %v after %v", sig, delay.Round(time.Millisecond))
				// Signaled with the tree running: the signal came after the
				// restore had finished and mmcr had stopped catching signals.
				if r.ok() || (r.status.Signaled() && testproc.Alive(root)) {
					t.Logf("%s: restore had finished", what)
					e.compareTree(root, before, what)
					e.verdict(root, mark)
				} else {
					t.Logf("%s: %s: %s", what, testproc.DescribeStatus(r.status), firstLine(r.stderr))
					if r.status.Exited() && !strings.Contains(r.stderr, "interrupted by") {
						t.Errorf("%s: %s, want 'interrupted by'", what, firstLine(r.stderr))
					}
					if left := waitNoDescendants(5 * time.Second); len(left) > 0 {
						t.Errorf("%s: processes left: %s", what, describePids(left))
					}
				}
				e.expectGone(pids, what)
				if t.Failed() {
					return
				}
			}
		})
	})
}

// editXCR0 rewrites the XCR0 recorded in the first thread's xsave area in
// dir's mmcr-ext.json with fn(old), reseals the manifest, and returns old.
func editXCR0(dir string, fn func(uint64) uint64) (uint64, error) {
	p := filepath.Join(dir, image.ExtName)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	var ext map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // mtimes in nanoseconds must survive
	if err := dec.Decode(&ext); err != nil {
		return 0, err
	}
	tasks, _ := ext["tasks"].([]any)
	if len(tasks) == 0 {
		return 0, fmt.Errorf("%s: no tasks", p)
	}
	threads, _ := tasks[0].(map[string]any)["threads"].([]any)
	if len(threads) == 0 {
		return 0, fmt.Errorf("%s: no threads", p)
	}
	th := threads[0].(map[string]any)
	xs, err := base64.StdEncoding.DecodeString(fmt.Sprint(th["xsave"]))
	if err != nil || len(xs) < 512 {
		return 0, fmt.Errorf("%s: xsave of %d bytes: %v", p, len(xs), err)
	}
	// Bytes 464-471 of the legacy area: the XCR0 the kernel reports.
	old := binary.LittleEndian.Uint64(xs[464:])
	binary.LittleEndian.PutUint64(xs[464:], fn(old))
	th["xsave"] = base64.StdEncoding.EncodeToString(xs)
	out, err := json.Marshal(ext)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		return 0, err
	}
	return old, reseal(dir, []string{p})
}
