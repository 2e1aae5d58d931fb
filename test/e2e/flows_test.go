package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"
)

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
	mark := testproc.Mark()
	if !sc.runtimeAnon {
		e.restore("restore", e.img, root)
		e.compareTree(root, before, "after restore")
		e.verdict(root, mark)
		return
	}
	// A language runtime changes its anonymous mappings while it runs, so
	// the snapshot taken before the dump cannot vouch for them: the tree
	// is restored stopped, its maps compared line for line with the VMAs
	// of the image (the frozen state), and only then let go.
	e.restore("restore", e.img, root, "--leave-stopped")
	e.compareImageVMAs(e.img)
	e.continueTree(pidsOf(before))
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
		mark := testproc.Mark()
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
	s, err := testproc.Start(testproc.Spec{Path: mmcrBin, Dir: e.dir, Stdout: out, Stderr: errp,
		Args: []string{"restore", "-D", e.img, "--pidfile", pidfile, "-vv", "--log-file", logf}})
	if err != nil {
		t.Fatal(err)
	}
	mmcrPid, mark := s.Pid, s.Mark
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
		if ex, ok := testproc.Exited(mmcrPid, mark); ok {
			t.Fatalf("mmcr restore (foreground) exited before the tree ran: %s: %s", testproc.DescribeStatus(ex.Status), firstLine(tail(errp, 5)))
		}
		if time.Now().After(end) {
			t.Fatalf("mmcr restore (foreground) wrote no pidfile within 90s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The restored tasks may still be finishing their own setup: wait
	// until every dumped pid exists again.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if len(testproc.WaitGone(pids, 0)) == len(pids) {
			break
		}
	}
	e.compareTreeParent(root, mmcrPid, before, "after foreground restore")
	if _, ok := testproc.Exited(mmcrPid, mark); ok {
		t.Fatalf("mmcr restore (foreground) exited while the restored root runs")
	}
	if err := unix.Kill(root, unix.SIGTERM); err != nil {
		t.Fatalf("SIGTERM root %d: %v", root, err)
	}
	ex, ok := testproc.WaitExit(mmcrPid, mark, capped(60*time.Second))
	ws := ex.Status
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
		t.Fatalf("root passed (exit 0) but mmcr restore exited with %s", testproc.DescribeStatus(ws))
	}
	if left := testproc.WaitGone(pids, 5*time.Second); len(left) > 0 {
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
