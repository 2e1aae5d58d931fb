package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreAffinity dumps a task with a thread kept to CPU 1 and leaves
// it running: the image keeps that thread's mask (and none for the free
// main thread), and the restored thread is kept to CPU 1 again. Each
// thread's I/O priority (best-effort 7, idle) comes back too.
func TestRestoreAffinity(t *testing.T) {
	needRoot(t)
	bin := buildProbed(t, "affinity", "second CPU")
	d := dumpWorkload(t, true, bin)
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v", err)
	}
	waitGone(t, d.pids)
	ths := d.tree.Tasks[0].Threads
	if len(ths) != 2 || ths[0].CPUAffinity != nil || len(ths[1].CPUAffinity) != 1 || ths[1].CPUAffinity[0] != 2 {
		t.Fatalf("CPU masks in the image: %v, %v; want none and CPU 1", ths[0].CPUAffinity, ths[len(ths)-1].CPUAffinity)
	}
	if f := d.tree.Tasks[0].CoredumpFilter; f == nil || *f != 0x7f {
		t.Errorf("coredump_filter in the image: %v, want 0x7f", f)
	}
	if ths[0].IOPrio != 2<<13|7 || ths[1].IOPrio != 3<<13 {
		t.Errorf("I/O priorities in the image: %#x, %#x; want best-effort 7 and idle", ths[0].IOPrio, ths[1].IOPrio)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
