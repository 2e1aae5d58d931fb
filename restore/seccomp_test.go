package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreSeccomp dumps a tree under seccomp filters (one the parent
// installed with SECCOMP_FILTER_FLAG_LOG and its child inherited, one more
// that only a thread of the parent added) and restores it: each thread's
// filters act again, and /proc counts them as before. The original, left
// running, finds the same.
func TestRestoreSeccomp(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "seccomp", "seccomp filter to install")
	d := dumpWorkload(t, true, bin)
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v", err)
	}
	waitGone(t, d.pids)

	parent, child := d.tree.Tasks[0], d.tree.Tasks[1]
	if len(parent.Threads) != 2 {
		t.Fatalf("parent has %d threads, want 2", len(parent.Threads))
	}
	for _, c := range []struct {
		what string
		n    int
		got  int
	}{{"parent", 1, len(parent.Threads[0].Seccomp)}, {"thread", 2, len(parent.Threads[1].Seccomp)}, {"child", 1, len(child.Threads[0].Seccomp)}} {
		if c.got != c.n {
			t.Errorf("%s: %d seccomp filters in the image, want %d", c.what, c.got, c.n)
		}
	}
	if f := parent.Threads[0].Seccomp; len(f) == 1 && (f[0].Flags != 2 || len(f[0].Prog) != 4*8) {
		t.Errorf("filter A: flags %#x, %d bytes; want LOG (2), 4 instructions", f[0].Flags, len(f[0].Prog))
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
