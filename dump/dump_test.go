package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
	"golang.org/x/sys/unix"
)

// requireRoot skips tests that ptrace other processes and open map_files.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dump tests need root: they ptrace workloads and open /proc/PID/map_files")
	}
}

// buildC compiles testdata/NAME.c into a temporary binary.
func buildC(t *testing.T, name string, flags ...string) string {
	t.Helper()
	return testproc.BuildC(t, filepath.Join("testdata", name+".c"), append([]string{"-O1", "-Wall"}, flags...)...)
}

// buildThreads compiles the threads workload, which the restore tests
// share (with their own ready word).
func buildThreads(t *testing.T) string {
	t.Helper()
	return testproc.BuildC(t, testproc.ThreadsC, "-O1", "-Wall", "-pthread")
}

// dumpLeaveRunning dumps the single-task tree of pid into a temporary
// directory, leaving it running, and returns the open image and its task.
func dumpLeaveRunning(t *testing.T, pid int) (*image.Reader, *image.Task) {
	t.Helper()
	r, tree := dumpTreeLeaveRunning(t, pid)
	if len(tree.Tasks) != 1 {
		t.Fatalf("image has %d tasks, want 1", len(tree.Tasks))
	}
	return r, tree.Tasks[0]
}

// dumpTreeLeaveRunning dumps the tree of pid into a temporary directory,
// leaving it running, and returns the open image and its tree.
func dumpTreeLeaveRunning(t *testing.T, pid int) (*image.Reader, *image.Tree) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	if err := Run(Options{PID: pid, Dir: dir, LeaveRunning: true, Log: testLogger(t)}); err != nil {
		t.Fatalf("dump of %d: %v", pid, err)
	}
	r, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.Tree()
	if err != nil {
		t.Fatal(err)
	}
	return r, tree
}

// workload is a started test process that printed its "ready ..." line.
type workload struct {
	cmd    *exec.Cmd
	fields []string // the ready line, split
	stderr bytes.Buffer
	done   bool
}

func startWorkload(t *testing.T, bin string, args ...string) *workload {
	t.Helper()
	return startWorkloadCmd(t, nil, bin, args...)
}

// startWorkloadFiles is startWorkload with extra files for the workload
// (fd 3 on), which the test process keeps open too.
func startWorkloadFiles(t *testing.T, extra []*os.File, bin string, args ...string) *workload {
	t.Helper()
	return startWorkloadCmd(t, func(c *exec.Cmd) { c.ExtraFiles = extra }, bin, args...)
}

// startWorkloadAs is startWorkload with the workload running as uid (and
// gid) instead of root.
func startWorkloadAs(t *testing.T, uid uint32, bin string, args ...string) *workload {
	t.Helper()
	return startWorkloadCmd(t, func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}, bin, args...)
}

// startWorkloadCmd starts bin, its command set up by setup when set, and
// waits (10 s at most) for its ready line. At cleanup, unless finish ran,
// it kills every pid of that line, then the root.
func startWorkloadCmd(t *testing.T, setup func(*exec.Cmd), bin string, args ...string) *workload {
	t.Helper()
	w := &workload{cmd: exec.Command(bin, args...)}
	if setup != nil {
		setup(w.cmd)
	}
	attr := w.cmd.SysProcAttr
	w.cmd.Stderr = &w.stderr
	// A grandchild holding stderr open must not block Wait forever.
	w.cmd.WaitDelay = 2 * time.Second
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		if attr != nil && attr.Credential != nil {
			t.Fatalf("start %s as uid %d: %v", bin, attr.Credential.Uid, err)
		}
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if !w.done {
			// The whole tree: every pid of the ready line, then the root.
			for i := 1; i < len(w.fields); i++ {
				if pid, err := strconv.Atoi(w.fields[i]); err == nil && pid > 0 {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		w.fields = strings.Fields(s)
		if len(w.fields) == 0 || w.fields[0] != "ready" {
			t.Fatalf("%s: bad ready line %q; stderr: %s", bin, s, w.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not ready after 10s", bin)
	}
	return w
}

func (w *workload) pid(t *testing.T, i int) int {
	n, err := strconv.Atoi(w.fields[i])
	if err != nil {
		t.Fatalf("ready field %d: %v", i, err)
	}
	return n
}

func (w *workload) addr(t *testing.T, i int) uint64 {
	n, err := strconv.ParseUint(w.fields[i], 16, 64)
	if err != nil {
		t.Fatalf("ready field %d: %v", i, err)
	}
	return n
}

// finish sends SIGTERM (the workload checks its memory) and wants exit 0.
func (w *workload) finish(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(unix.SIGTERM)
	err := w.cmd.Wait()
	w.done = true
	if err != nil {
		t.Fatalf("workload after dump: %v; stderr: %s", err, w.stderr.String())
	}
}

// mapsLine is one line of /proc/PID/maps, parsed independently of procfs.
type mapsLine struct {
	start, end uint64
	perms      string
	off        uint64
	ino        uint64
	path       string
}

func readMaps(t *testing.T, pid int) []mapsLine {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []mapsLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// Five space-separated columns, then the path (which may hold spaces).
		var col [5]string
		rest := l
		for i := range col {
			rest = strings.TrimLeft(rest, " ")
			col[i], rest, _ = strings.Cut(rest, " ")
		}
		var m mapsLine
		se := strings.SplitN(col[0], "-", 2)
		m.start, _ = strconv.ParseUint(se[0], 16, 64)
		m.end, _ = strconv.ParseUint(se[1], 16, 64)
		m.perms = col[1]
		m.off, _ = strconv.ParseUint(col[2], 16, 64)
		m.ino, _ = strconv.ParseUint(col[4], 10, 64)
		m.path = strings.TrimLeft(rest, " ")
		out = append(out, m)
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkVMAs compares a dumped task's VMAs with maps read before the dump.
func checkVMAs(t *testing.T, task *image.Task, maps []mapsLine) {
	t.Helper()
	if len(task.VMAs) != len(maps) {
		t.Errorf("task %d: %d VMAs, maps had %d", task.PID, len(task.VMAs), len(maps))
		return
	}
	for i, m := range maps {
		v := task.VMAs[i]
		var prot uint32
		if m.perms[0] == 'r' {
			prot |= unix.PROT_READ
		}
		if m.perms[1] == 'w' {
			prot |= unix.PROT_WRITE
		}
		if m.perms[2] == 'x' {
			prot |= unix.PROT_EXEC
		}
		shared := m.perms[3] == 's'
		if v.Start != m.start || v.End != m.end || v.Prot != prot || v.Pgoff != m.off ||
			(v.Flags&unix.MAP_SHARED != 0) != shared || v.Name != m.path {
			t.Errorf("task %d vma %d: got %x-%x prot %d pgoff %#x flags %#x %q; maps %x-%x %s %#x %q",
				task.PID, i, v.Start, v.End, v.Prot, v.Pgoff, v.Flags, v.Name, m.start, m.end, m.perms, m.off, m.path)
		}
	}
}

// pageReader looks up dumped bytes in an image's page runs.
type pageReader struct {
	runs []image.PageRun
	f    *os.File
}

// read returns the dumped page at addr, or nil if it was not dumped.
func (p pageReader) read(t *testing.T, addr uint64) []byte {
	t.Helper()
	for _, r := range p.runs {
		if addr >= r.Addr && addr < r.Addr+r.Len {
			b := make([]byte, image.PageSize)
			if _, err := p.f.ReadAt(b, r.Offset+int64(addr-r.Addr)); err != nil {
				t.Fatalf("read page %#x: %v", addr, err)
			}
			return b
		}
	}
	return nil
}

// pat is the byte pattern of tree.c.
func pat(who, page, i int) byte { return byte(who*31 + page*7 + i*13 + 1) }

var privData = []int{0, 1, 4, 7, 8, 9}

const (
	sharedPages = 4
	privPages   = 16
)

func TestDumpTreeLeaveRunning(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	fileDir := t.TempDir()
	w := startWorkload(t, bin, fileDir)
	parent, child := w.pid(t, 1), w.pid(t, 2)
	priv, shared, cow := w.addr(t, 3), w.addr(t, 4), w.addr(t, 5)
	deletedAt, linkedAt, memfdAt, pnone := w.addr(t, 6), w.addr(t, 7), w.addr(t, 8), w.addr(t, 9)
	mapsBefore := map[int][]mapsLine{parent: readMaps(t, parent), child: readMaps(t, child)}

	dir := filepath.Join(t.TempDir(), "img")
	if err := Run(Options{PID: parent, Dir: dir, LeaveRunning: true, Log: testLogger(t)}); err != nil {
		t.Fatalf("dump: %v", err)
	}

	// The tree runs on, exactly as before: same layout, not traced.
	for pid, before := range mapsBefore {
		after := readMaps(t, pid)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("task %d: maps changed by the dump:\nbefore %v\nafter  %v", pid, before, after)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if !bytes.Contains(st, []byte("TracerPid:\t0\n")) {
			t.Errorf("task %d still traced after dump", pid)
		}
	}

	r, err := image.Open(dir)
	if err != nil {
		t.Fatalf("open image: %v", err)
	}
	defer r.Close()
	tree, err := r.Tree()
	if err != nil {
		t.Fatalf("read tree: %v", err)
	}
	if len(tree.Tasks) != 2 || tree.Tasks[0].PID != parent || tree.Tasks[1].PID != child {
		t.Fatalf("tasks: got %d, want [%d %d]", len(tree.Tasks), parent, child)
	}
	if tree.Tasks[1].PPID != parent {
		t.Errorf("child ppid %d, want %d", tree.Tasks[1].PPID, parent)
	}

	// One shared object for the shared anon region across both tasks and
	// both VMAs, one for the memfd.
	if len(tree.SharedObjects) != 2 {
		t.Fatalf("%d shared objects, want 2: %+v", len(tree.SharedObjects), tree.SharedObjects)
	}
	var anonObj, memfdObj *image.SharedObject
	for _, v := range tree.Tasks[0].VMAs {
		switch v.Start {
		case shared:
			anonObj = tree.SharedObjectByID(v.ShmID)
		case memfdAt:
			memfdObj = tree.SharedObjectByID(v.ShmID)
			if v.Kind != image.KindMemfd {
				t.Errorf("memfd VMA kind %v", v.Kind)
			}
		}
	}
	if anonObj == nil || anonObj.Size != sharedPages*image.PageSize || anonObj.Memfd {
		t.Fatalf("shared anon object %+v", anonObj)
	}
	if memfdObj == nil || memfdObj.Size != 3*image.PageSize || !memfdObj.Memfd || memfdObj.Name != "mmcr-test" {
		t.Fatalf("memfd object %+v", memfdObj)
	}

	for who, task := range tree.Tasks {
		checkVMAs(t, task, mapsBefore[task.PID])
		if len(task.Threads) != 1 || task.Threads[0].TID != task.PID {
			t.Errorf("task %d threads %+v", task.PID, task.Threads)
		}
		if task.Mm.Brk < task.Mm.StartBrk || task.Mm.ExeFileID == 0 || len(task.Mm.Auxv) == 0 {
			t.Errorf("task %d mm %+v", task.PID, task.Mm)
		}
		if f := tree.FileByID(task.Mm.ExeFileID); f == nil || f.Path != bin {
			t.Errorf("task %d exe %+v, want %s", task.PID, f, bin)
		}
		var memfdFD *image.FD
		for _, fd := range task.FDs {
			switch fd.Num {
			case 0: // /dev/null from os/exec
				if fd.Kind != image.FDCharDev || tree.FileByID(fd.FileID) == nil || tree.FileByID(fd.FileID).Path != "/dev/null" {
					t.Errorf("task %d fd 0: %+v", task.PID, fd)
				}
			case 1, 2: // pipes to the test
				if fd.Kind != image.FDExternal || fd.ExternalType != "pipe" {
					t.Errorf("task %d fd %d: %+v", task.PID, fd.Num, fd)
				}
			case 7:
				memfdFD = fd
			}
		}
		if memfdFD == nil {
			t.Errorf("task %d: memfd fd 7 not dumped", task.PID)
		} else if f := tree.FileByID(memfdFD.FileID); memfdFD.Kind != image.FDRegular || f == nil ||
			f.Dev != memfdObj.Dev || f.Ino != memfdObj.Ino {
			t.Errorf("task %d: memfd fd 7 %+v is not the memfd object", task.PID, memfdFD)
		}
		if h := task.SigActions[unix.SIGTERM-1].Handler; h <= 1 {
			t.Errorf("task %d SIGTERM handler %#x, want an address", task.PID, h)
		}
		var shm []*image.VMA
		byStart := map[uint64]*image.File{}
		for _, v := range task.VMAs {
			if v.ShmID == anonObj.ID {
				shm = append(shm, v)
			}
			if v.FileID != 0 {
				byStart[v.Start] = tree.FileByID(v.FileID)
			}
			if v.Kind == image.KindHeap && v.Flags&unix.MAP_ANONYMOUS == 0 {
				t.Errorf("heap without MAP_ANONYMOUS: %+v", v)
			}
		}
		if len(shm) != 2 || shm[0].Start != shared || shm[0].Pgoff != 0 || shm[1].Pgoff != 2*image.PageSize ||
			shm[0].Kind != image.KindSharedAnon || shm[1].Kind != image.KindSharedAnon {
			t.Errorf("task %d shared VMAs: %+v", task.PID, shm)
		}
		if f := byStart[deletedAt]; f == nil || !f.Deleted || f.Path != filepath.Join(fileDir, "deleted") {
			t.Errorf("task %d deleted file: %+v", task.PID, f)
		}
		if f := byStart[linkedAt]; f == nil || f.Deleted || !f.Renamed || f.Path != filepath.Join(fileDir, "linked-old") {
			t.Errorf("task %d linked file: %+v", task.PID, f)
		}
		if f := byStart[cow]; f == nil || f.Deleted || f.Renamed || f.Path != filepath.Join(fileDir, "moved-to") {
			t.Errorf("task %d moved file: %+v", task.PID, f)
		}

		// Private pages: the pattern where written, nothing in the holes.
		runs, pf, err := r.Pages(task.PID)
		if err != nil {
			t.Fatalf("pages of %d: %v", task.PID, err)
		}
		pr := pageReader{runs, pf}
		for p := 0; p < privPages; p++ {
			got := pr.read(t, priv+uint64(p*image.PageSize))
			if !containsInt(privData, p) {
				if got != nil {
					t.Errorf("task %d: hole page %d of the private region was dumped", task.PID, p)
				}
				continue
			}
			if got == nil {
				t.Errorf("task %d: private page %d not dumped", task.PID, p)
				continue
			}
			for i := range got {
				if got[i] != pat(who, p, i) {
					t.Errorf("task %d: private page %d byte %d = %#x, want %#x", task.PID, p, i, got[i], pat(who, p, i))
					break
				}
			}
		}
		// The COWed page of the private file mapping, not its clean page.
		if got := pr.read(t, cow); got == nil || got[0] != byte(0xc0+who) {
			t.Errorf("task %d: COW page of the private file mapping not dumped right", task.PID)
		}
		if got := pr.read(t, cow+image.PageSize); got != nil {
			t.Errorf("task %d: clean page of the private file mapping dumped", task.PID)
		}
		if got := pr.read(t, pnone); got == nil || got[0] != pat(who, 300, 0) || got[4095] != pat(who, 300, 4095) {
			t.Errorf("task %d: PROT_NONE page not dumped right", task.PID)
		}
		if pr.read(t, shared) != nil {
			t.Errorf("task %d: shared page dumped as private", task.PID)
		}
		pf.Close()
	}

	// Shared object contents, once each, without holes.
	checkShm := func(o *image.SharedObject, want func(page int) []byte) {
		runs, sf, err := r.ShmemPages(o.ID)
		if err != nil {
			t.Fatalf("shmem pages of %d: %v", o.ID, err)
		}
		defer sf.Close()
		sr := pageReader{runs, sf}
		for p := 0; p < int(o.Size/image.PageSize); p++ {
			got, w := sr.read(t, uint64(p*image.PageSize)), want(p)
			if !bytes.Equal(got, w) {
				t.Errorf("shared object %d page %d: dumped %v, want %v", o.ID, p, got != nil, w != nil)
			}
		}
	}
	page := func(page int) []byte {
		b := make([]byte, image.PageSize)
		for i := range b {
			b[i] = pat(0, page, i)
		}
		return b
	}
	checkShm(anonObj, func(p int) []byte { return page(100 + p) })
	checkShm(memfdObj, func(p int) []byte {
		if p == 1 {
			return nil
		}
		return page(200 + p)
	})

	// The deleted file's content, as a ghost (a memfd's is its object's).
	for _, f := range tree.Files {
		if !f.Deleted || f.Dev == memfdObj.Dev && f.Ino == memfdObj.Ino {
			continue
		}
		rc, size, err := r.Ghost(f.ID)
		if err != nil {
			t.Fatalf("ghost of %s: %v", f.Path, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || size != 2*image.PageSize || len(b) != 2*image.PageSize || b[5] != 0x33+5 {
			t.Errorf("ghost of %s: size %d, %d bytes, err %v", f.Path, size, len(b), err)
		}
	}

	w.finish(t)
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// startPipeWorkload starts testdata/pipe.c with the read end of a pipe of
// the test's as its fd 3, "test" written into it; the test keeps the write
// end, returned (the read end is closed once the workload has it).
func startPipeWorkload(t *testing.T) (*workload, *os.File) {
	t.Helper()
	bin := buildC(t, "pipe")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if _, err := pw.WriteString("test"); err != nil {
		t.Fatal(err)
	}
	return startWorkloadFiles(t, []*os.File{pr}, bin), pw
}

// TestDumpRefusesPipeAndLeavesTreeRunning dumps a tree whose child holds
// (as fd 3) the read end of a pipe the test process writes to: the pipe
// is not the tree's alone, the dump refuses it naming the task, the fd and
// the holder outside, and the tree runs on untouched, the bytes in the
// pipe still there.
func TestDumpRefusesPipeAndLeavesTreeRunning(t *testing.T) {
	requireRoot(t)
	w, pw := startPipeWorkload(t)
	defer pw.Close()
	parent, child := w.pid(t, 1), w.pid(t, 2)
	before := map[int][]mapsLine{parent: readMaps(t, parent), child: readMaps(t, child)}

	dir := filepath.Join(t.TempDir(), "img")
	err := Run(Options{PID: parent, Dir: dir, Log: testLogger(t)})
	if err == nil {
		t.Fatal("dump of a task with a pipe on fd 3 succeeded")
	}
	t.Logf("error: %v", err)
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("task %d", child)) || !strings.Contains(msg, "fd 3") ||
		!strings.Contains(msg, "pipe") || !strings.Contains(msg, fmt.Sprintf("process %d outside the tree", os.Getpid())) ||
		strings.Contains(msg, "\n") {
		t.Errorf("error %q should name task %d, fd 3, pipe and process %d on one line", msg, child, os.Getpid())
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("error does not wrap ErrUnsupported")
	}
	var te *TaskError
	if !errors.As(err, &te) || te.PID != child {
		t.Errorf("error is not a TaskError for %d: %#v", child, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("image directory left with %d entries", len(ents))
	}
	for pid, b := range before {
		if a := readMaps(t, pid); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("task %d: maps changed by the failed dump", pid)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if !bytes.Contains(st, []byte("TracerPid:\t0\n")) {
			t.Errorf("task %d still traced after failed dump", pid)
		}
	}
	w.finish(t)
}

func TestDumpThreadsAndSignalState(t *testing.T) {
	requireRoot(t)
	bin := buildThreads(t)
	w := startWorkload(t, bin, "ready")
	pid, tid1, tid2 := w.pid(t, 1), w.pid(t, 2), w.pid(t, 3)
	alt := w.addr(t, 4)
	// The leader's timer slack, as only root may set another task's; the
	// other threads keep what they were created with.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/timerslack_ns", pid), []byte("123456"), 0); err != nil {
		t.Fatal(err)
	}

	_, task := dumpLeaveRunning(t, pid)
	if len(task.Threads) != 3 || task.Threads[0].TID != pid {
		t.Fatalf("threads %d, leader %d", len(task.Threads), task.Threads[0].TID)
	}
	byTID := map[int]*image.Thread{}
	for _, th := range task.Threads {
		byTID[th.TID] = th
		if len(th.Xsave) < 512 {
			t.Errorf("thread %d xsave %d bytes", th.TID, len(th.Xsave))
		}
	}
	if a := byTID[tid1].AltStack; a.SP != alt || a.Size != 64*1024 || a.Flags != 0 {
		t.Errorf("altstack of %d: %+v, want sp %#x", tid1, a, alt)
	}
	if a := byTID[pid].AltStack; a.Flags != 2 /* SS_DISABLE */ {
		t.Errorf("altstack of leader: %+v", a)
	}
	if m := byTID[tid2].SigMask; m&(1<<(unix.SIGUSR1-1)) == 0 {
		t.Errorf("sigmask of %d: %#x lacks SIGUSR1", tid2, m)
	}
	if m := byTID[pid].SigMask; m&(1<<(unix.SIGUSR1-1)) != 0 {
		t.Errorf("sigmask of leader: %#x has SIGUSR1", m)
	}
	if sa := task.SigActions[unix.SIGUSR2-1]; sa.Handler <= 1 || sa.Flags&0x10000000 == 0 /* SA_RESTART */ {
		t.Errorf("SIGUSR2 action %+v", sa)
	}
	if it := task.Itimers[0]; it.IntervalUsec != 1000e6 || it.ValueUsec <= 0 || it.ValueUsec > 1000e6 {
		t.Errorf("ITIMER_REAL %+v", it)
	}
	if lim := task.Rlimits[unix.RLIMIT_NOFILE]; lim.Cur != 123 {
		t.Errorf("RLIMIT_NOFILE %+v", lim)
	}
	if task.Umask != 027 {
		t.Errorf("umask %#o", task.Umask)
	}
	if task.Threads[0].Rseq.Addr == 0 {
		t.Logf("no rseq registration (glibc without rseq?)")
	}
	if c := byTID[tid1].Comm; c != "altstack" {
		t.Errorf("name of %d: %q, want altstack", tid1, c)
	}
	if c := byTID[pid].Comm; c != task.Comm || c == "" {
		t.Errorf("name of leader: %q, task %q", c, task.Comm)
	}
	if ns := byTID[pid].TimerSlackNs; ns != 123456 {
		t.Errorf("timer slack of leader: %d ns, want 123456", ns)
	}
	if ns := byTID[tid1].TimerSlackNs; ns == 0 || ns == 123456 {
		t.Errorf("timer slack of %d: %d ns, want its own (the default)", tid1, ns)
	}
	// glibc registers every thread's tid word (in its struct pthread, at
	// the thread pointer) as clear_child_tid, and a robust list head.
	for _, th := range task.Threads {
		if th.ClearTID == 0 || th.ClearTID < th.Regs.Fs_base || th.ClearTID-th.Regs.Fs_base >= 4096 {
			t.Errorf("thread %d: clear_child_tid %#x, fs_base %#x", th.TID, th.ClearTID, th.Regs.Fs_base)
		}
		if th.RobustList == 0 || th.RobustListLen != 24 {
			t.Errorf("thread %d: robust list %#x len %d", th.TID, th.RobustList, th.RobustListLen)
		}
	}
	w.finish(t)
}

func TestDumpKillsTree(t *testing.T) {
	requireRoot(t)
	bin := buildThreads(t)
	w := startWorkload(t, bin, "ready")
	pid := w.pid(t, 1)
	dir := filepath.Join(t.TempDir(), "img")
	if err := Run(Options{PID: pid, Dir: dir, Log: testLogger(t)}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		w.done = true
		// The dumper reaped it as tracer, or the parent sees SIGKILL.
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Errorf("workload ended with %v, want SIGKILL", err)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tree still running 5s after dump without --leave-running")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("task %d still exists", pid)
	}
}

func TestDumpFreezesGrowingTree(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "forker", "-pthread")
	for round := 0; round < 3; round++ {
		w := startWorkload(t, bin)
		pid := w.pid(t, 1)
		time.Sleep(time.Duration(round*20) * time.Millisecond)
		dir := filepath.Join(t.TempDir(), "img")
		if err := Run(Options{PID: pid, Dir: dir, LeaveRunning: true}); err != nil {
			t.Fatalf("round %d: dump: %v", round, err)
		}
		r, err := image.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := r.Tree()
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Tree order: the root, then its children by pid, each with its
		// threads; every parent is in the tree before its children.
		seen := map[int]bool{}
		for i, task := range tree.Tasks {
			if i == 0 {
				if task.PID != pid || len(task.Threads) != 3 && len(task.Threads) != 1 {
					t.Errorf("round %d: root %d with %d threads", round, task.PID, len(task.Threads))
				}
			} else {
				if !seen[task.PPID] {
					t.Errorf("round %d: task %d before its parent %d", round, task.PID, task.PPID)
				}
				if task.PID < tree.Tasks[i-1].PID && tree.Tasks[i-1].PPID == task.PPID {
					t.Errorf("round %d: siblings out of order: %d after %d", round, task.PID, tree.Tasks[i-1].PID)
				}
			}
			seen[task.PID] = true
		}
		t.Logf("round %d: %d tasks frozen", round, len(tree.Tasks))
		w.finish(t)
	}
}

func TestDumpRefusesFDKinds(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "fdkind")
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ kind, want string }{
		// An unmapped memfd is dumped, but not a hugetlb one: no VMA tells its page size.
		{"memfd", "fd 3 is a hugetlb memfd (/memfd:lonely (deleted)) that no task maps"},
		// The epoll is shared (dumped), but the child's target is not the parent's fd 4.
		{"epoll-forked", "epoll fd 3 watches a file no longer open as fd 4"},
		{"inotify-deleted", "inotify fd 3, watch 1"},
		{"pidfd-outside", fmt.Sprintf("fd 3 is a pidfd of process %d, outside the tree", os.Getpid())},
		{"epoll-stale", "epoll fd 3 watches a file no longer open as fd 4"},
		{"socket", "and connected"}, // fd 3, a datagram socket bound to a name
		{"tcp", "that is a TCP socket not listening"},
		{"tcp-queued", "with 1 connection(s) not accepted"},
		{"udp-queued", "with datagrams not read"},
		{"fifo", fmt.Sprintf("fd 3 is a FIFO (%s) that process %d outside the tree also holds", fifo, os.Getpid())},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if tc.kind == "fifo" { // the test holds the FIFO too
				mine, err := unix.Open(fifo, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(mine)
			}
			w := startWorkload(t, bin, tc.kind, fifo)
			pid := w.pid(t, 1)
			before := readMaps(t, pid)
			dir := filepath.Join(t.TempDir(), "img")
			err := Run(Options{PID: pid, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), fmt.Sprintf("task %d", pid)) || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("dump: %v; want task %d and %q", err, pid, tc.want)
			}
			t.Logf("dump: %v", err)
			if fmt.Sprint(readMaps(t, pid)) != fmt.Sprint(before) {
				t.Errorf("maps changed by the failed dump")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("image directory left with %d entries", len(ents))
				}
			}
			w.finish(t)
		})
	}
}

// TestDumpFailureInsideRemote fails (and panics) while the child's scratch
// page is mapped: both tasks must be left exactly as they were.
func TestDumpFailureInsideRemote(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "tree")
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			w := startWorkload(t, bin, t.TempDir())
			parent, child := w.pid(t, 1), w.pid(t, 2)
			before := map[int][]mapsLine{parent: readMaps(t, parent), child: readMaps(t, child)}
			var sawScratch bool
			testHookRemote = func(pid int, scratch uint64) error {
				if pid != child {
					return nil
				}
				for _, m := range readMaps(t, pid) {
					sawScratch = sawScratch || m.start <= scratch && scratch < m.end
				}
				if mode == "panic" {
					panic("injected")
				}
				return errors.New("injected")
			}
			defer func() { testHookRemote = nil }()
			err := Run(Options{PID: parent, Dir: filepath.Join(t.TempDir(), "img"), Log: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("dump: %v, want the injected failure", err)
			}
			if !sawScratch {
				t.Errorf("scratch page not mapped when the hook ran")
			}
			for pid, b := range before {
				if a := readMaps(t, pid); fmt.Sprint(a) != fmt.Sprint(b) {
					t.Errorf("task %d: maps changed by the failed dump:\nbefore %v\nafter  %v", pid, b, a)
				}
			}
			w.finish(t)
		})
	}
}

// TestDumpJobStopped: a task in a job-control stop is dumped as stopped
// (CRIU's TASK_STOPPED) and, left running, is still stopped after the
// dump; a running one is not marked.
func TestDumpJobStopped(t *testing.T) {
	requireRoot(t)
	bin := buildC(t, "vmflags") // any workload that closes what it inherits
	ws, wr := startWorkload(t, bin), startWorkload(t, bin)
	stopped, running := ws.pid(t, 1), wr.pid(t, 1)
	if err := unix.Kill(stopped, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !testproc.WaitStopped(stopped, 5*time.Second) {
		t.Fatalf("task %d did not stop", stopped)
	}
	if _, task := dumpLeaveRunning(t, stopped); !task.Stopped {
		t.Errorf("task %d was stopped at dump, its image says it was not", stopped)
	}
	// Let go, it re-enters the group stop before it returns to its code.
	if !testproc.WaitStopped(stopped, 5*time.Second) {
		t.Errorf("task %d not stopped after dump --leave-running: it was before", stopped)
	}
	if _, task := dumpLeaveRunning(t, running); task.Stopped {
		t.Errorf("running task %d dumped as stopped", running)
	}
	unix.Kill(stopped, unix.SIGCONT)
	ws.finish(t)
	wr.finish(t)
}

// TestDumpLeaveStopped: with LeaveStopped the dumped tree is left in a
// group stop, every thread stopped and using no CPU, until SIGCONT lets
// it go on unharmed; asking for both running and stopped is refused.
func TestDumpLeaveStopped(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildThreads(t), "ready")
	pid := w.pid(t, 1)
	dir := filepath.Join(t.TempDir(), "img")
	if err := Run(Options{PID: pid, Dir: dir, LeaveRunning: true, LeaveStopped: true}); err == nil {
		t.Fatal("dump with LeaveRunning and LeaveStopped: no error")
	}
	if err := Run(Options{PID: pid, Dir: dir, LeaveStopped: true, Log: testLogger(t)}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	if _, err := image.Open(dir); err != nil {
		t.Fatalf("image: %v", err)
	}
	if !testproc.WaitStopped(pid, 5*time.Second) {
		t.Fatalf("task %d not stopped after the dump", pid)
	}
	tids := []int{pid, w.pid(t, 2), w.pid(t, 3)}
	ticks := make(map[int]uint64)
	for _, tid := range tids {
		_, n, err := testproc.ThreadStat(pid, tid)
		if err != nil {
			t.Fatal(err)
		}
		ticks[tid] = n
	}
	time.Sleep(300 * time.Millisecond) // a running thread would spend ticks here
	for _, tid := range tids {
		state, n, err := testproc.ThreadStat(pid, tid)
		if err != nil || state != 'T' || n != ticks[tid] {
			t.Errorf("thread %d: state %c, CPU ticks %d then %d (%v): want it stopped throughout", tid, state, ticks[tid], n, err)
		}
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	w.finish(t)
}

// TestPipeOwnerPolls: a pipe whose one end the tree holds is the tree's
// alone only when nobody holds the other end, which pipeOwner tells by
// polling a new open of the pipe, also for a holder the walk of /proc did
// not see (none given here): the test process's write end first, then
// nobody's.
func TestPipeOwnerPolls(t *testing.T) {
	requireRoot(t)
	w, pw := startPipeWorkload(t)
	child := w.pid(t, 2)
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/3", child), &st); err != nil {
		t.Fatal(err)
	}
	end := pipeEnd{openEnd: openEnd{pid: child, fd: &image.FD{Num: 3, Flags: unix.O_RDONLY}, target: "pipe"}, ino: st.Ino}
	if why := pipeOwner(end, [2]bool{true, false}, nil); !strings.Contains(why, "write end a process outside the tree holds") {
		t.Errorf("with the test's write end open: %q, want the write end held outside", why)
	}
	pw.Close()
	if why := pipeOwner(end, [2]bool{true, false}, nil); why != "" {
		t.Errorf("with every write end closed: %q, want the tree's", why)
	}
	w.finish(t)
}

// TestDumpRefusesOutsideSocket dumps a tree whose child holds (as fd 3)
// one end of a unix socket pair the test process holds the other end of:
// the dump refuses it naming the task, the fd and the peer, and the tree
// runs on, the bytes queued at the socket still there.
func TestDumpRefusesOutsideSocket(t *testing.T) {
	requireRoot(t)
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(sv[0]), "test end"), os.NewFile(uintptr(sv[1]), "workload end")
	defer mine.Close()
	if _, err := mine.WriteString("test"); err != nil {
		t.Fatal(err)
	}
	w := startWorkloadFiles(t, []*os.File{theirs}, buildC(t, "pipe"))
	theirs.Close()
	parent, child := w.pid(t, 1), w.pid(t, 2)
	err = Run(Options{PID: parent, Dir: filepath.Join(t.TempDir(), "img"), Log: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("task %d", child)) || !strings.Contains(err.Error(), "fd 3 is a socket") ||
		!strings.Contains(err.Error(), "is not the tree's") || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("dump: %v; want task %d, fd 3 and its peer outside the tree", err, child)
	}
	w.finish(t)
}
