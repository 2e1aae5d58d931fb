package restore

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/dump"
	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// treePssKiB sums the Pss of every task of the tree.
func treePssKiB(t *testing.T, pids []int) int64 {
	t.Helper()
	sum, err := testproc.PssKiB(pids)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// Pages still shared copy-on-write at dump are stored once and shared
// again after restore: the tree's Pss and the image stay those of one copy,
// and every task's memory (rewritten, zeroed, dropped, remapped pages) is
// what it was.
func TestRestoreKeepsCOWSharing(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "cowtree")
	cmd := exec.Command(bin)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out := bufio.NewReader(r)
	if line, err := out.ReadString('\n'); err != nil || line != "READY\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("workload did not get ready: %q %v", line, err)
	}
	before := treeMaps(t, cmd.Process.Pid)
	var pids []int
	for pid := range before {
		pids = append(pids, pid)
	}
	if len(pids) != 5 {
		t.Fatalf("tree has %d tasks, want 5", len(pids))
	}
	time.Sleep(50 * time.Millisecond)
	pssBefore := treePssKiB(t, pids)

	dir := filepath.Join(t.TempDir(), "img")
	if err := dump.Run(dump.Options{PID: cmd.Process.Pid, Dir: dir, Log: testLog(t)}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("dump: %v", err)
	}
	cmd.Wait()
	waitGone(t, pids)

	// The image holds A (16 MiB) once, plus what the children rewrote.
	img, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := img.Tree()
	if err != nil {
		t.Fatal(err)
	}
	var pagesBytes, parentBytes int64
	for _, tk := range tree.Tasks {
		runs, f, err := img.Pages(tk.PID)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		for _, r := range runs {
			pagesBytes += int64(r.Len)
		}
		for _, r := range tk.ParentPages {
			parentBytes += int64(r.End - r.Start)
		}
	}
	t.Logf("pages stored %d KiB, shared with a parent %d KiB; Pss before %d KiB", pagesBytes>>10, parentBytes>>10, pssBefore)
	const aBytes = 16 << 20
	if pagesBytes > aBytes*13/10 {
		t.Errorf("image stores %d KiB of pages, want about one copy of the 16 MiB region", pagesBytes>>10)
	}
	if parentBytes < 2*aBytes {
		t.Errorf("only %d KiB recorded as shared with a parent", parentBytes>>10)
	}

	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	root, err := Run(Options{Dir: dir, Log: testLog(t), Stdin: wr, Stdout: wr, Stderr: wr})
	wr.Close()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	after := treeMaps(t, root)
	for pid, want := range before {
		if got := after[pid]; got != want {
			t.Errorf("maps of %d differ after restore:\n%s", pid, lineDiff(want, got))
		}
	}
	pssAfter := treePssKiB(t, pids)
	t.Logf("Pss after restore %d KiB", pssAfter)
	if pssAfter > pssBefore*11/10 || pssAfter < pssBefore*9/10 {
		t.Errorf("tree Pss %d KiB after restore, %d KiB before: sharing not restored", pssAfter, pssBefore)
	}
	unix.Kill(root, unix.SIGTERM)
	done := make(chan string)
	go func() {
		b, _ := bufio.NewReader(rd).ReadString(0)
		done <- b
	}()
	code, err := Wait(root)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if code != 0 || !strings.Contains(s, "PASS") {
			t.Fatalf("restored tree: exit %d, output %q", code, s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("output pipe not closed")
	}
}
