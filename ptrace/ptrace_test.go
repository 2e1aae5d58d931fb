package ptrace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain fails the run if a test leaked a child process or a file
// descriptor.
func TestMain(m *testing.M) {
	// Start the runtime's netpoller (epoll + eventfd) before counting.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	fds := openFDs()
	code := m.Run()
	if code == 0 {
		time.Sleep(50 * time.Millisecond) // let output-reading goroutines close their pipes
		if kids := children(); kids != "" {
			fmt.Fprintf(os.Stderr, "leaked child processes: %s\n", kids)
			code = 1
		}
		if n := openFDs(); n != fds {
			fmt.Fprintf(os.Stderr, "leaked file descriptors: %d open before, %d after\n", fds, n)
			code = 1
		}
	}
	os.Exit(code)
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

func children() string {
	var out []string
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		if b, _ := os.ReadFile(f); len(bytes.TrimSpace(b)) > 0 {
			out = append(out, string(bytes.TrimSpace(b)))
		}
	}
	return strings.Join(out, " ")
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: ptrace of other processes and /proc/PID/mem")
	}
}

// lockThread pins the test goroutine to its thread for the whole test:
// ptrace requests must come from the tracer thread. It never unlocks, so
// the thread dies with the test goroutine and the kernel drops whatever
// it still traced.
func lockThread(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
}

// buildHelper compiles testdata/helper.c.
func buildHelper(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc to build the test workload")
	}
	out := filepath.Join(t.TempDir(), "helper")
	if b, err := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", out, "testdata/helper.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// startHelper starts the helper (untraced) and returns it with a channel of
// its output lines. Cleanup kills and reaps it.
func startHelper(t *testing.T, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	return startHelperEnv(t, nil, args...)
}

// startHelperEnv is startHelper with extra environment variables.
func startHelperEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(buildHelper(t), args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, lines
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("helper closed its output")
		}
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no output from helper in 5s")
	}
	return ""
}

// mapping finds the first line of /proc/PID/maps whose name is name.
func mapping(t *testing.T, pid int, name string) (start, end uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[5] != name {
			continue
		}
		var s, e uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &s, &e); err != nil {
			t.Fatalf("maps line %q: %v", l, err)
		}
		return s, e
	}
	t.Fatalf("no %s in /proc/%d/maps", name, pid)
	return 0, 0
}

func vdsoInsn(t *testing.T, pid int) uint64 {
	t.Helper()
	s, e := mapping(t, pid, "[vdso]")
	insn, err := FindSyscallInsn(pid, s, e)
	if err != nil {
		t.Fatalf("vdso of %d: %v", pid, err)
	}
	var b [2]byte
	if err := ReadMem(pid, insn, b[:]); err != nil || b != [2]byte{0x0f, 0x05} {
		t.Fatalf("at %#x: %x, %v", insn, b, err)
	}
	return insn
}

// stubRemote starts a stopped stub (root, on a locked thread), killed at
// the end of the test, and a Remote on it that runs syscalls from its vdso.
func stubRemote(t *testing.T) (int, *Remote) {
	t.Helper()
	requireRoot(t)
	lockThread(t)
	pid, err := StartStub("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Kill(pid); _, _ = Wait(pid) })
	r, err := NewRemote(pid, vdsoInsn(t, pid))
	if err != nil {
		t.Fatal(err)
	}
	return pid, r
}

func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

const pageSize = 4096

func remoteMmap(t *testing.T, r *Remote, size uint64, prot int) uint64 {
	t.Helper()
	addr, err := r.Syscall(unix.SYS_MMAP, 0, size, uint64(prot), unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func checkGetpid(t *testing.T, r *Remote, want int) {
	t.Helper()
	got, err := r.Syscall(unix.SYS_GETPID)
	if err != nil {
		t.Fatal(err)
	}
	if int(got) != want {
		t.Fatalf("remote getpid = %d, want %d", got, want)
	}
}

// exercise runs the common remote sequence in a stopped task: getpid,
// mmap, memory round trips, a failing syscall, munmap.
func exercise(t *testing.T, pid int, r *Remote) {
	t.Helper()
	checkGetpid(t, r, pid)

	addr := remoteMmap(t, r, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE)
	data := bytes.Repeat([]byte("mmcr-ptrace!"), 2*pageSize/12)
	if err := WriteMem(pid, addr+5, data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := ReadMem(pid, addr+5, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadMem after WriteMem: equal=%v err=%v", bytes.Equal(got, data), err)
	}
	clear(got)
	if err := ReadVM(pid, [][]byte{got[:100], got[100:]},
		[]unix.RemoteIovec{{Base: uintptr(addr + 5), Len: 100}, {Base: uintptr(addr + 105), Len: len(data) - 100}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("ReadVM differs from what WriteMem wrote")
	}

	// An error comes back as a SyscallError unwrapping to the errno.
	_, err := r.Syscall(unix.SYS_MUNMAP, addr+1, pageSize)
	var se *SyscallError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &se) || se.TID != pid {
		t.Fatalf("munmap of unaligned address: %v", err)
	}
	if !strings.Contains(err.Error(), "munmap") || !strings.Contains(err.Error(), strconv.Itoa(pid)) {
		t.Fatalf("error %q does not name the syscall and tid", err)
	}

	if _, err := r.Syscall(unix.SYS_MUNMAP, addr, 2*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := ReadMem(pid, addr, got[:1]); err == nil {
		t.Fatal("ReadMem of an unmapped page succeeded")
	} else if !strings.Contains(err.Error(), strconv.Itoa(pid)) || !strings.Contains(err.Error(), fmt.Sprintf("%#x", addr)) {
		t.Fatalf("error %q does not name pid and address", err)
	}
}

func TestSeizeRemoteCounter(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "count")
	pid := cmd.Process.Pid
	first, _ := strconv.Atoi(nextLine(t, lines))

	st, err := SeizeStop(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsEventStop() || st.IsGroupStop() {
		t.Fatalf("after seize: %v", st)
	}
	regs, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seized %d at rip=%#x rax=%#x orig_rax=%d", pid, regs.Rip, regs.Rax, int64(regs.Orig_rax))
	if s := procState(t, pid); s != "t" {
		t.Fatalf("state %q, want t (traced)", s)
	}

	mask, err := GetSigMask(pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRemote(pid, vdsoInsn(t, pid))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := GetSigMask(pid); m&(1<<(unix.SIGUSR1-1)) == 0 {
		t.Fatalf("NewRemote did not block signals: %#x", m)
	}
	exercise(t, pid, r)
	if rs, err := GetRseq(pid); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("rseq: %+v", rs)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if m, _ := GetSigMask(pid); m != mask {
		t.Fatalf("sigmask after Restore %#x, want %#x", m, mask)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}

	// The helper goes on counting without a gap or a bad write.
	prev := first
	for deadline := time.Now().Add(5 * time.Second); prev < first+50; {
		if time.Now().After(deadline) {
			t.Fatal("helper stopped counting")
		}
		n, err := strconv.Atoi(nextLine(t, lines))
		if err != nil || n != prev+1 {
			t.Fatalf("after %d got %d (%v)", prev, n, err)
		}
		prev = n
	}
}

// TestSeizeUnderSignals seizes and releases a task over and over while
// it is flooded with a handled signal, so that some seizes meet a
// signal-delivery-stop before the interrupt trap; the task must survive
// and keep counting.
func TestSeizeUnderSignals(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "count")
	pid := cmd.Process.Pid
	nextLine(t, lines)
	insn := vdsoInsn(t, pid)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = unix.Kill(pid, unix.SIGUSR1)
			}
		}
	}()
	for i := 0; i < 200; i++ {
		st, err := SeizeStop(pid)
		if err != nil {
			close(stop)
			t.Fatalf("round %d: %v", i, err)
		}
		if !st.IsEventStop() {
			close(stop)
			t.Fatalf("round %d: %v", i, st)
		}
		r, err := NewRemote(pid, insn)
		if err == nil {
			_, err = r.Syscall(unix.SYS_GETPID)
		}
		if err == nil {
			err = r.Restore()
		}
		if err == nil {
			err = Detach(pid)
		}
		if err != nil {
			close(stop)
			t.Fatalf("round %d: %v", i, err)
		}
	}
	close(stop)
	<-done
	t.Logf("signal-delivery-stops met while seizing: %d", seizeSignals.Load())
	// Drain what was printed meanwhile, then check it goes on counting.
	a, _ := strconv.Atoi(nextLine(t, lines))
	for len(lines) > 0 {
		a, _ = strconv.Atoi(<-lines)
	}
	for range 10 {
		b, _ := strconv.Atoi(nextLine(t, lines))
		if b != a+1 {
			t.Fatalf("counts %d then %d", a, b)
		}
		a = b
	}
}

func TestSeizeThreads(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "threads")
	pid := cmd.Process.Pid
	if l := nextLine(t, lines); l != "ready" {
		t.Fatalf("helper said %q", l)
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if err := Seize(tid); err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	if len(tids) != 4 {
		t.Fatalf("threads %v", tids)
	}
	insn := vdsoInsn(t, pid)
	for _, tid := range tids {
		r, err := NewRemote(tid, insn)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Syscall(unix.SYS_GETTID)
		if err != nil || int(got) != tid {
			t.Fatalf("remote gettid in %d: %d %v", tid, got, err)
		}
		if _, err := GetXstate(tid); err != nil {
			t.Fatal(err)
		}
		if err := r.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tid := range tids {
		if err := Detach(tid); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := strconv.Atoi(nextLine(t, lines))
	for range 20 {
		b, _ := strconv.Atoi(nextLine(t, lines))
		if b != a+1 {
			t.Fatalf("counts %d then %d", a, b)
		}
		a = b
	}
	for _, tid := range tids {
		if s := procStateTID(t, pid, tid); s != "S" && s != "R" {
			t.Fatalf("thread %d in state %q after detach", tid, s)
		}
	}
}

func procStateTID(t *testing.T, pid, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func TestSeizedClone3(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "count")
	pid := cmd.Process.Pid
	nextLine(t, lines)
	if err := Seize(pid); err != nil {
		t.Fatal(err)
	}
	if err := SetOptions(pid, unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_TRACEFORK); err != nil {
		t.Fatal(err)
	}
	insn := vdsoInsn(t, pid)
	r, err := NewRemote(pid, insn)
	if err != nil {
		t.Fatal(err)
	}
	page := remoteMmap(t, r, pageSize, unix.PROT_READ|unix.PROT_WRITE)
	args := make([]byte, 64)
	binary.LittleEndian.PutUint64(args[32:], uint64(unix.SIGCHLD))
	if err := WriteMem(pid, page, args); err != nil {
		t.Fatal(err)
	}
	c, err := r.Syscall(unix.SYS_CLONE3, page, uint64(len(args)))
	if err != nil {
		t.Fatal(err)
	}
	child := int(c)
	t.Cleanup(func() { _ = Kill(child); _, _ = Wait(child) })
	// A child of a seized tracee is seized too: it starts in an event stop.
	st, err := Wait(child)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsEventStop() || st.IsGroupStop() {
		t.Fatalf("new child: %v", st)
	}
	cr, err := NewRemote(child, insn)
	if err != nil {
		t.Fatal(err)
	}
	checkGetpid(t, cr, child)
	if _, err := r.Syscall(unix.SYS_MUNMAP, page, pageSize); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(nextLine(t, lines))
	if b, _ := strconv.Atoi(nextLine(t, lines)); b != a+1 {
		t.Fatalf("parent counts %d then %d", a, b)
	}
}

func TestSeizeInNanosleep(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "sleep", "700")
	pid := cmd.Process.Pid
	if l := nextLine(t, lines); l != "start" {
		t.Fatalf("helper said %q", l)
	}
	time.Sleep(100 * time.Millisecond) // let it block in nanosleep
	if err := Seize(pid); err != nil {
		t.Fatal(err)
	}
	regs, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if int64(regs.Orig_rax) < 0 || int64(regs.Rax) >= 0 {
		t.Fatalf("not seized inside a syscall: rax=%d orig_rax=%d", int64(regs.Rax), int64(regs.Orig_rax))
	}
	t.Logf("seized in syscall %d, rax=%d", regs.Orig_rax, int64(regs.Rax))
	r, err := NewRemote(pid, vdsoInsn(t, pid))
	if err != nil {
		t.Fatal(err)
	}
	if sv := r.Saved(); sv != regs {
		t.Fatal("Saved() differs from the registers at the stop")
	}
	exercise(t, pid, r)
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	l := nextLine(t, lines)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v (said %q)", err, l)
	}
	if !strings.HasPrefix(l, "done ") {
		t.Fatalf("helper said %q", l)
	}
}

func TestSeizeGroupStopped(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "count")
	pid := cmd.Process.Pid
	nextLine(t, lines)
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; procState(t, pid) != "T"; i++ {
		if i > 500 {
			t.Fatal("helper did not stop")
		}
		time.Sleep(time.Millisecond)
	}
	st, err := SeizeStop(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsGroupStop() || st.Signal() != unix.SIGSTOP {
		t.Fatalf("seized stopped task: %v", st)
	}
	r, err := NewRemote(pid, vdsoInsn(t, pid))
	if err != nil {
		t.Fatal(err)
	}
	checkGetpid(t, r, pid)
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := Detach(pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if s := procState(t, pid); s != "T" {
		t.Fatalf("state after detach %q, want T (still stopped)", s)
	}
}

func TestSeizeErrors(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	// A zombie cannot be seized; the error names it.
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	for i := 0; procState(t, pid) != "Z"; i++ {
		if i > 2000 {
			t.Fatal("true did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	err := Seize(pid)
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(pid)) || !strings.Contains(err.Error(), "PTRACE_SEIZE") {
		t.Fatalf("Seize of zombie: %v", err)
	}
	t.Log(err)
}

func TestSeizeTimeout(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	cmd, lines := startHelper(t, "vfork")
	child, err := strconv.Atoi(nextLine(t, lines))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(child, unix.SIGKILL) })
	defer func(d time.Duration) { seizeTimeout = d }(seizeTimeout)
	seizeTimeout = 300 * time.Millisecond
	err = Seize(cmd.Process.Pid)
	if !errors.Is(err, ErrNotStopped) || !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Seize of a vfork parent: %v", err)
	}
	t.Log(err)
}

func TestStubClone3(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	pid, err := StartStub("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	reap := map[int]bool{pid: true}
	t.Cleanup(func() {
		for p := range reap {
			_ = Kill(p)
			_, _ = Wait(p)
		}
	})
	insn := vdsoInsn(t, pid)
	r, err := NewRemote(pid, insn)
	if err != nil {
		t.Fatal(err)
	}
	checkGetpid(t, r, pid)

	page := remoteMmap(t, r, pageSize, unix.PROT_READ|unix.PROT_WRITE)
	// struct clone_args, CLONE_ARGS_SIZE_VER0: flags, pidfd, child_tid,
	// parent_tid, exit_signal, stack, stack_size, tls.
	args := make([]byte, 64)
	binary.LittleEndian.PutUint64(args[32:], uint64(unix.SIGCHLD))
	if err := WriteMem(pid, page, args); err != nil {
		t.Fatal(err)
	}
	c, err := r.Syscall(unix.SYS_CLONE3, page, uint64(len(args)))
	if err != nil {
		t.Fatal(err)
	}
	child := int(c)
	reap[child] = true
	st, err := Wait(child)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsSignalDelivery() || st.Signal() != unix.SIGSTOP {
		t.Fatalf("new child: %v", st)
	}
	cr, err := NewRemote(child, insn)
	if err != nil {
		t.Fatal(err)
	}
	if sv := cr.Saved(); sv.Rax != 0 || int64(sv.Orig_rax) != unix.SYS_CLONE3 {
		t.Fatalf("child regs: rax=%d orig_rax=%d", sv.Rax, int64(sv.Orig_rax))
	}
	checkGetpid(t, cr, child)
	// The page was copied into the child.
	got := make([]byte, len(args))
	if err := ReadMem(child, page, got); err != nil || !bytes.Equal(got, args) {
		t.Fatalf("child copy of the page: %x %v", got, err)
	}
	// The parent reaps nothing yet; the child exits through a remote exit.
	if _, err := cr.SyscallToExit(unix.SYS_EXIT_GROUP, 7); !errors.Is(err, ErrExited) {
		t.Fatalf("remote exit_group: %v", err)
	}
	delete(reap, child)
	if _, err := cr.Syscall(unix.SYS_GETPID); !errors.Is(err, ErrRemoteDone) {
		t.Fatalf("Syscall after SyscallToExit: %v", err)
	}
	// The parent gets SIGCHLD, blocked: it shows up as pending.
	checkGetpid(t, r, pid)
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteKeepsState checks that a remote arch_prctl(ARCH_SET_FS) is
// not undone by the next remote syscall, and is undone by Restore.
func TestRemoteKeepsState(t *testing.T) {
	pid, r := stubRemote(t)
	page := remoteMmap(t, r, pageSize, unix.PROT_READ|unix.PROT_WRITE)
	const archSetFS, archGetFS = 0x1002, 0x1003
	if _, err := r.Syscall(unix.SYS_ARCH_PRCTL, archSetFS, page); err != nil {
		t.Fatal(err)
	}
	checkGetpid(t, r, pid)
	if _, err := r.Syscall(unix.SYS_ARCH_PRCTL, archGetFS, page+8); err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	if err := ReadMem(pid, page+8, b[:]); err != nil {
		t.Fatal(err)
	}
	if fs := binary.LittleEndian.Uint64(b[:]); fs != page {
		t.Fatalf("fs_base %#x after another remote syscall, want %#x", fs, page)
	}
	if err := r.Restore(); err != nil {
		t.Fatal(err)
	}
	regs, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if sv := r.Saved(); regs.Fs_base != sv.Fs_base || regs.Rip != sv.Rip || regs.Rsp != sv.Rsp {
		t.Fatalf("after Restore fs_base=%#x rip=%#x, want %#x %#x", regs.Fs_base, regs.Rip, sv.Fs_base, sv.Rip)
	}
}

func TestXstateRoundTrip(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	pid, err := StartStub("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Kill(pid); _, _ = Wait(pid) })
	x, err := GetXstate(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) < 512+64 {
		t.Fatalf("xstate of %d bytes", len(x))
	}
	t.Logf("xstate: %d bytes, xfeatures %#x", len(x), binary.LittleEndian.Uint64(x[512:]))
	// Change MXCSR (offset 24) to a valid value and read it back; the
	// kernel takes MXCSR only with the SSE bit set in the header's xfeatures.
	y := bytes.Clone(x)
	y[512] |= 1 << 1
	binary.LittleEndian.PutUint32(y[24:], 0x1f80|0x6000) // round toward zero
	if err := SetXstate(pid, y); err != nil {
		t.Fatal(err)
	}
	z, err := GetXstate(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(z[24:]); got != 0x7f80 {
		t.Fatalf("mxcsr %#x after SetXstate", got)
	}
	if err := SetXstate(pid, x); err != nil {
		t.Fatal(err)
	}
	if z, _ = GetXstate(pid); !bytes.Equal(z[:512], x[:512]) {
		t.Fatal("legacy area differs after restoring the original xstate")
	}
	if err := SetXstate(pid, x[:len(x)-64]); err == nil {
		t.Fatal("SetXstate of a short buffer succeeded")
	}
}

func TestSignalsAndPeek(t *testing.T) {
	requireRoot(t)
	lockThread(t)
	pid, err := StartStub("/bin/true", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Kill(pid); _, _ = Wait(pid) })
	si, err := GetSigInfo(pid)
	if err != nil || si.Signo != int32(unix.SIGTRAP) {
		t.Fatalf("siginfo at exec stop: %+v %v", si, err)
	}
	r, err := NewRemote(pid, vdsoInsn(t, pid))
	if err != nil {
		t.Fatal(err)
	}
	// Queue blocked signals: one process-wide (kill), one for the thread (tgkill).
	if _, err := r.Syscall(unix.SYS_KILL, uint64(pid), uint64(unix.SIGUSR1)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Syscall(unix.SYS_TGKILL, uint64(pid), uint64(pid), uint64(unix.SIGUSR2)); err != nil {
		t.Fatal(err)
	}
	shared, err := PeekSigInfo(pid, true)
	if err != nil {
		t.Fatal(err)
	}
	private, err := PeekSigInfo(pid, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != 1 || SigInfoSigno(&shared[0]) != int(unix.SIGUSR1) ||
		len(private) != 1 || SigInfoSigno(&private[0]) != int(unix.SIGUSR2) {
		t.Fatalf("pending: shared %d private %d", len(shared), len(private))
	}
}

func TestMemForceAndVM(t *testing.T) {
	pid, r := stubRemote(t)
	const npages = 8
	addr := remoteMmap(t, r, npages*pageSize, unix.PROT_READ|unix.PROT_WRITE)

	// More iovecs than IOV_MAX, of odd sizes.
	var local [][]byte
	var remote []unix.RemoteIovec
	off := uint64(0)
	for i := 0; off+17 <= npages*pageSize && i < 2500; i++ {
		n := 1 + i%17
		b := bytes.Repeat([]byte{byte(i)}, n)
		local = append(local, b)
		remote = append(remote, unix.RemoteIovec{Base: uintptr(addr + off), Len: n})
		off += uint64(n)
	}
	if len(local) <= iovMax {
		t.Fatalf("only %d iovecs", len(local))
	}
	if err := WriteVM(pid, local, remote); err != nil {
		t.Fatal(err)
	}
	back := make([][]byte, len(local))
	for i := range back {
		back[i] = make([]byte, len(local[i]))
	}
	if err := ReadVM(pid, back, remote); err != nil {
		t.Fatal(err)
	}
	flat := make([]byte, off)
	if err := ReadMem(pid, addr, flat); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.Join(back, nil), bytes.Join(local, nil)) || !bytes.Equal(flat, bytes.Join(local, nil)) {
		t.Fatal("WriteVM/ReadVM/ReadMem disagree")
	}

	// A range running off the end of the mapping: the mapped part is
	// transferred, then an error naming the first unmapped address.
	big := make([]byte, 2*pageSize)
	end := addr + npages*pageSize
	err := ReadVM(pid, [][]byte{big}, []unix.RemoteIovec{{Base: uintptr(end - pageSize), Len: len(big)}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%#x", end)) {
		t.Fatalf("ReadVM past the end: %v", err)
	}
	t.Log(err)

	// FOLL_FORCE: WriteMem reaches a read-only page, WriteVM does not.
	if _, err := r.Syscall(unix.SYS_MPROTECT, addr, pageSize, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	if err := WriteMem(pid, addr, []byte("forced")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if err := ReadVM(pid, [][]byte{got}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 6}}); err != nil || string(got) != "forced" {
		t.Fatalf("read back %q %v", got, err)
	}
	if err := WriteVM(pid, [][]byte{got}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 6}}); err == nil {
		t.Fatal("WriteVM into a read-only page succeeded")
	}
	// Mismatched lengths are refused before any syscall.
	if err := ReadVM(pid, [][]byte{got}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 7}}); err == nil {
		t.Fatal("ReadVM with mismatched iovec lengths succeeded")
	}
	if _, err := FindSyscallInsn(pid, addr, addr+pageSize); !errors.Is(err, ErrNoSyscallInsn) {
		t.Fatalf("FindSyscallInsn in a page of zeros: %v", err)
	}
}

func TestUnexpectedStop(t *testing.T) {
	pid, r := stubRemote(t)
	// Point Insn at a page of zeros: the task faults (SIGSEGV, which the
	// blocked mask cannot hold back) before any syscall stop.
	page := remoteMmap(t, r, pageSize, unix.PROT_READ)
	bad := &Remote{TID: pid, Insn: page, saved: r.saved, restore: r.restore, last: r.last, mask: r.mask}
	_, err := bad.Syscall(unix.SYS_GETPID)
	var se *StopError
	if !errors.As(err, &se) || !errors.Is(err, ErrUnexpectedStop) || se.Regs == nil || se.Stop.Signal() != unix.SIGSEGV {
		t.Fatalf("syscall from a page of zeros: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("rip=%#x", page)) {
		t.Fatalf("error %q lacks the register dump", err)
	}
	t.Log(err)
	// The fault is discarded by resuming with sig 0; the good Remote still works.
	checkGetpid(t, r, pid)
}

// TestStopInSignal: a thread stopped at a syscall exit ends in a
// signal-delivery-stop for SIGTRAP; one that already has a SIGTRAP of its
// own pending is stopped with another signal, and keeps its SIGTRAP.
func TestStopInSignal(t *testing.T) {
	for _, ownTrap := range []bool{false, true} {
		pid, r := stubRemote(t)
		want := unix.SIGTRAP
		if ownTrap {
			// Blocked (NewRemote blocks all), so it stays pending.
			if _, err := r.Syscall(unix.SYS_TGKILL, uint64(pid), uint64(pid), uint64(unix.SIGTRAP)); err != nil {
				t.Fatal(err)
			}
			want = unix.SIGSTKFLT
		}
		if err := StopInSignal(pid); err != nil {
			t.Fatalf("own SIGTRAP %v: %v", ownTrap, err)
		}
		si, err := GetSigInfo(pid)
		if err != nil || unix.Signal(si.Signo) != want {
			t.Fatalf("own SIGTRAP %v: stopped for signal %d (%v), want %v", ownTrap, si.Signo, err, want)
		}
		private, err := PeekSigInfo(pid, false)
		if err != nil {
			t.Fatal(err)
		}
		if ownTrap && (len(private) != 1 || SigInfoSigno(&private[0]) != int(unix.SIGTRAP)) {
			t.Errorf("the thread's own SIGTRAP is no longer pending: %d pending", len(private))
		}
	}
}
