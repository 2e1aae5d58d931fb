package restore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"
)

// nobody is the unprivileged uid (and gid) the non-root tests run as.
const nobody = 65534

// nonRootEnv is a directory every user can read holding two copies of
// mmcr (plain, and with CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE granted by
// setcap) and the memtree workload, and a work directory owned by nobody.
type nonRootEnv struct {
	plain, capped, memtree string
	work                   string
}

func newNonRootEnv(t *testing.T) *nonRootEnv {
	t.Helper()
	needRoot(t)
	setcap, err := exec.LookPath("setcap")
	for _, p := range []string{"/usr/sbin/setcap", "/sbin/setcap"} {
		if err == nil {
			break
		}
		if _, serr := os.Stat(p); serr == nil {
			setcap, err = p, nil
		}
	}
	if err != nil {
		t.Skip("setcap not installed (apt-get install libcap2-bin): cannot grant mmcr file capabilities")
	}
	for _, tool := range []string{"go", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	dir, err := os.MkdirTemp("", "mmcr-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &nonRootEnv{plain: filepath.Join(dir, "mmcr"), capped: filepath.Join(dir, "mmcr-capped"),
		memtree: filepath.Join(dir, "memtree"), work: filepath.Join(dir, "work")}
	if out, err := exec.Command("go", "build", "-o", e.plain, "../cmd/mmcr").CombinedOutput(); err != nil {
		t.Fatalf("go build mmcr: %v\n%s", err, out)
	}
	if out, err := exec.Command("cp", e.plain, e.capped).CombinedOutput(); err != nil {
		t.Fatalf("cp mmcr: %v\n%s", err, out)
	}
	if out, err := exec.Command(setcap, "cap_checkpoint_restore,cap_sys_ptrace+ep", e.capped).CombinedOutput(); err != nil {
		t.Skipf("setcap on %s failed (filesystem without security xattrs?): %v: %s", e.capped, err, out)
	}
	if err := testproc.CompileC("gcc", e.memtree, filepath.Join("testdata", "memtree.c"), "-O1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.work, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.work, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return e
}

// asNobody runs prog as uid/gid nobody in the work dir; it returns the
// exit code and stderr. Its stdout goes to stdout (nil: discarded).
func (e *nonRootEnv) asNobody(t *testing.T, stdout io.Writer, prog string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = e.work
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + e.work}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s as uid %d: %v", prog, nobody, err)
	}
	return code, strings.TrimSpace(stderr.String())
}

// TestNonRoot runs mmcr as an unprivileged user (uid 65534): the
// binaries are built once for all three cases.
func TestNonRoot(t *testing.T) {
	e := newNonRootEnv(t)
	t.Run("refuses-other-users-process", func(t *testing.T) { nonRootRefusesOtherUsersProcess(t, e) })
	t.Run("capped-dump-restore", func(t *testing.T) { nonRootCappedDumpRestore(t, e) })
	t.Run("cannot-restore-root-image", func(t *testing.T) { nonRootCannotRestoreRootImage(t, e) })
}

func procStatusField(pid int, key string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// nonRootRefusesOtherUsersProcess: as uid nobody, mmcr refuses to dump
// a root process with a message naming both users, with or without file
// capabilities (CAP_SYS_PTRACE would let the kernel allow it: mmcr does
// not use it for that), and leaves the process alone.
func nonRootRefusesOtherUsersProcess(t *testing.T, e *nonRootEnv) {
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	pid := victim.Process.Pid
	time.Sleep(50 * time.Millisecond)
	for _, bin := range []string{e.plain, e.capped} {
		img := filepath.Join(e.work, "img-"+filepath.Base(bin))
		code, stderr := e.asNobody(t, nil, bin, "dump", "-t", strconv.Itoa(pid), "-D", img)
		t.Logf("%s: exit %d: %s", filepath.Base(bin), code, stderr)
		want := fmt.Sprintf("not permitted to trace pid %d (owned by uid 0) as uid %d", pid, nobody)
		if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "\n") {
			t.Errorf("%s: exit %d, stderr %q; want a failure saying %q on one line", filepath.Base(bin), code, stderr, want)
		}
		if tp := procStatusField(pid, "TracerPid"); tp != "0" {
			t.Errorf("victim traced by %s after the refused dump", tp)
		}
		if st := procStatusField(pid, "State"); !strings.HasPrefix(st, "S") && !strings.HasPrefix(st, "R") {
			t.Errorf("victim state %q after the refused dump", st)
		}
		if _, err := os.Stat(img); err == nil {
			t.Errorf("refused dump left %s", img)
		}
	}
}

// nonRootCappedDumpRestore: a copy of mmcr with cap_checkpoint_restore
// and cap_sys_ptrace (setcap ...+ep) dumps and restores, as uid nobody, a
// tree of nobody's; the restored tasks are nobody's with no capability,
// and verify their memory.
func nonRootCappedDumpRestore(t *testing.T, e *nonRootEnv) {
	cmd := exec.Command(e.memtree, "1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY") {
		t.Fatalf("workload: %q %v", line, err)
	}
	root := cmd.Process.Pid
	kid, _ := strconv.Atoi(strings.Fields(line)[1])
	img := filepath.Join(e.work, "img")
	code, stderr := e.asNobody(t, nil, e.capped, "dump", "-t", strconv.Itoa(root), "-D", img)
	if code != 0 {
		t.Fatalf("capped mmcr dump as uid %d: exit %d: %s", nobody, code, stderr)
	}
	cmd.Wait()
	waitGone(t, []int{root, kid})

	outPath := filepath.Join(e.work, "restored.out")
	outF, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	pidfile := filepath.Join(e.work, "pid")
	code, stderr = e.asNobody(t, outF, e.capped, "restore", "-D", img, "-d", "--pidfile", pidfile)
	if code != 0 {
		t.Fatalf("capped mmcr restore as uid %d: exit %d: %s", nobody, code, stderr)
	}
	for _, pid := range []int{root, kid} {
		if uid := procStatusField(pid, "Uid"); uid != "65534\t65534\t65534\t65534" {
			t.Errorf("restored %d: Uid %q", pid, uid)
		}
		for _, k := range []string{"CapPrm", "CapEff", "CapInh", "CapAmb"} {
			if v := procStatusField(pid, k); v != "0000000000000000" {
				t.Errorf("restored %d: %s %s, want none", pid, k, v)
			}
		}
	}
	// mmcr exited: the restored root is ours now (subreaper).
	unix.Kill(root, unix.SIGTERM)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(root, &ws, 0, nil); err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("restored root: %v, status %v", err, ws)
	}
	b, _ := os.ReadFile(outPath)
	if !strings.Contains(string(b), "PASS") {
		t.Errorf("restored workload output %q, want PASS", b)
	}
}

// nonRootCannotRestoreRootImage: uid nobody with the capped mmcr
// cannot use restore to get a root task: the image of a root process is
// refused before anything is created.
func nonRootCannotRestoreRootImage(t *testing.T, e *nonRootEnv) {
	d := dumpWorkload(t, false, e.memtree, "0")
	img := filepath.Join(e.work, "rootimg")
	if err := os.Mkdir(img, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(d.dir)
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(d.dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(img, ent.Name())
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, nobody, nobody)
	}
	os.Chown(img, nobody, nobody)
	code, stderr := e.asNobody(t, nil, e.capped, "restore", "-D", img, "-d")
	t.Logf("exit %d: %s", code, stderr)
	if code == 0 || !strings.Contains(stderr, "would run as uid 0") {
		t.Errorf("restore of a root image as uid %d: exit %d, %q; want a refusal", nobody, code, stderr)
	}
	expectNothingLeft(t, d.pids)
}
