package childreaper

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestMarkAfterGone is the property the e2e driver relies on: once a
// child's pid is gone from /proc, a mark taken then never sees that exit
// as a later one (a restored task reusing the pid would inherit it).
func TestMarkAfterGone(t *testing.T) {
	r := New()
	r.Start()
	for i := 0; i < 200; i++ {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat("/proc/" + strconv.Itoa(p.Pid)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %d not reaped in 10s", p.Pid)
			}
		}
		mark := r.Mark()
		if e, ok := r.Exited(p.Pid, mark); ok {
			t.Fatalf("round %d: exit of %d (seq %d) counted after a mark (%d) taken once it was gone", i, p.Pid, e.Seq, mark)
		}
		e, ok := r.Exited(p.Pid, 0)
		if !ok || !e.Status.Exited() || e.Status.ExitStatus() != 0 {
			t.Fatalf("round %d: exit of %d not recorded right: %v %v", i, p.Pid, ok, e.Status)
		}
		p.Release()
	}
}
