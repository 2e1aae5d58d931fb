package procfs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PagePFNs tells pages still shared copy-on-write after fork (one PFN in
// both tasks) from pages one side has written since.
func TestPagePFNsCOW(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("PFNs hidden without CAP_SYS_ADMIN")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	bin := filepath.Join(t.TempDir(), "cow_fork")
	if out, err := exec.Command(gcc, "-O1", "-o", bin, "testdata/cow_fork.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	rd := bufio.NewReader(stdout)
	var pfns [2][]uint64
	var pids [2]int
	for i := range pfns {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
		var addr uint64
		if _, err := fmt.Sscanf(line, "%d %x", &pids[i], &addr); err != nil {
			t.Fatalf("helper said %q: %v", line, err)
		}
		if pfns[i], err = Default.PagePFNs(pids[i], addr, addr+4*pageSize); err != nil {
			t.Fatal(err)
		}
	}
	child, parent := pfns[0], pfns[1]
	if pids[1] != cmd.Process.Pid {
		t.Fatalf("second line from pid %d, want the parent %d", pids[1], cmd.Process.Pid)
	}
	for i := 0; i < 4; i++ {
		if child[i] == 0 || parent[i] == 0 {
			t.Fatalf("page %d not present: child %#x parent %#x", i, child[i], parent[i])
		}
		shared := child[i] == parent[i]
		if shared != (i != 1) {
			t.Errorf("page %d: child %#x parent %#x, want shared=%v", i, child[i], parent[i], i != 1)
		}
	}
}
