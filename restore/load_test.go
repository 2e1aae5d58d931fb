package restore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/dump"
	"github.com/mmcr/mmcr/internal/testproc"
)

// loadCase is one workload dumped and restored over and over.
type loadCase struct {
	name         string
	tasks, mib   int
	vmas, rounds int
}

// TestLoadRepeated dumps and restores the same tree again and again, in
// process (dump.Run, Run), checking each time that the restored tree has
// its maps and memory, and at the end that this process (which is what
// mmcr would be) holds no more fds, goroutines, threads, children or heap
// than after the first round. The standard run is scaled down; MMCR_LONG=1
// runs issue 6's sizes: 20 rounds of a 100-task tree and of 1 GiB with
// 50,000 VMAs.
func TestLoadRepeated(t *testing.T) {
	needRoot(t)
	long := os.Getenv("MMCR_LONG") == "1"
	cases := []loadCase{
		{name: "tree-100-tasks", tasks: 100, mib: 1, rounds: 4},
		{name: "256MiB-10000-vmas", tasks: 1, mib: 256, vmas: 10000, rounds: 3},
	}
	if long {
		cases = []loadCase{
			{name: "tree-100-tasks", tasks: 100, mib: 1, rounds: 20},
			{name: "1GiB-50000-vmas", tasks: 1, mib: 1024, vmas: 50000, rounds: 20},
		}
	}
	bin := buildC(t, "load")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { loadRounds(t, bin, c) })
	}
}

// usage is what this process holds, to compare across rounds.
type usage struct {
	fds, goroutines, threads, children int
	heapMiB                            float64
}

func measure(t *testing.T) usage {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, _ := os.ReadDir("/proc/self/fd")
	threads, _ := strconv.Atoi(statusValue("/proc/self/status", "Threads"))
	return usage{fds: len(ents) - 1, goroutines: runtime.NumGoroutine(), threads: threads,
		children: len(testproc.Children(os.Getpid())), heapMiB: float64(ms.HeapInuse) / (1 << 20)}
}

func statusValue(path, key string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadRounds(t *testing.T, bin string, c loadCase) {
	cmd := exec.Command(bin, strconv.Itoa(c.tasks), strconv.Itoa(c.mib), strconv.Itoa(c.vmas))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	var pids []int
	defer func() {
		for _, p := range pids {
			unix.Kill(p, unix.SIGKILL)
		}
		unix.Kill(root, unix.SIGKILL)
		waitGone(t, append(pids, root))
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "READY\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("workload: %q %v", line, err)
	}
	before := treeMaps(t, root)
	for p := range before {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	if len(pids) != c.tasks {
		t.Fatalf("tree has %d tasks, want %d", len(pids), c.tasks)
	}

	// The restored tasks write to this pipe (their stdout was a pipe).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	lines := make(chan string, 16)
	go func() {
		br := bufio.NewReader(r)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- strings.TrimSpace(l)
		}
	}()
	nextLine := func(what string) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s: restored workload's output closed", what)
			}
			return l
		case <-time.After(120 * time.Second):
			t.Fatalf("%s: no output from the restored workload", what)
		}
		return ""
	}

	base := t.TempDir()
	var first usage
	var dumpTime, restoreTime time.Duration
	for i := 0; i < c.rounds; i++ {
		dir := filepath.Join(base, "img")
		t0 := time.Now()
		if err := dump.Run(dump.Options{PID: root, Dir: dir}); err != nil {
			t.Fatalf("round %d: dump: %v", i, err)
		}
		dumpTime += time.Since(t0)
		if i == 0 {
			cmd.Wait() // the original root was started by exec
		}
		waitGone(t, pids)
		t0 = time.Now()
		got, err := Run(Options{Dir: dir, Stdin: w, Stdout: w, Stderr: w})
		if err != nil {
			t.Fatalf("round %d: restore: %v", i, err)
		}
		restoreTime += time.Since(t0)
		if got != root {
			t.Fatalf("round %d: restored root %d, want %d", i, got, root)
		}
		after := treeMaps(t, root)
		if len(after) != len(before) {
			t.Fatalf("round %d: %d tasks after restore, %d before", i, len(after), len(before))
		}
		for pid, want := range before {
			if after[pid] != want {
				t.Fatalf("round %d: maps of %d differ:\n%s", i, pid, lineDiff(want, after[pid]))
			}
		}
		unix.Kill(root, unix.SIGUSR1)
		if l := nextLine(fmt.Sprintf("round %d", i)); l != "OK" {
			t.Fatalf("round %d: restored root's memory check: %q", i, l)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = measure(t)
		}
	}
	last := measure(t)
	t.Logf("%d rounds: dump %v, restore %v per round; first round %+v, last %+v", c.rounds,
		dumpTime/time.Duration(c.rounds), restoreTime/time.Duration(c.rounds), first, last)
	if last.fds > first.fds {
		t.Errorf("fds grew from %d to %d over %d rounds", first.fds, last.fds, c.rounds)
	}
	if last.goroutines > first.goroutines+1 {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
	}
	if last.threads > first.threads+4 {
		t.Errorf("threads grew from %d to %d", first.threads, last.threads)
	}
	if last.children != first.children {
		t.Errorf("children went from %d to %d", first.children, last.children)
	}
	if last.heapMiB > first.heapMiB+32 {
		t.Errorf("heap in use grew from %.1f MiB to %.1f MiB", first.heapMiB, last.heapMiB)
	}

	unix.Kill(root, unix.SIGTERM)
	code, err := Wait(root)
	if err != nil || code != 0 {
		t.Errorf("restored workload: exit %d, %v", code, err)
	}
	if l := nextLine("verdict"); l != "PASS" {
		t.Errorf("restored workload's verdict: %q", l)
	}
	waitGone(t, pids)
	pids = nil
}
