package mapfiles

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("map_files needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN")
	}
}

func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// mapFile creates a file of n pages in dir and maps it MAP_SHARED.
func mapFile(t *testing.T, dir, name string, n int) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, n*4096), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, n*4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return p, mem
}

func TestPath(t *testing.T) {
	if got := Path(42, 0x7f1c2a000000, 0x7f1c2a021000); got != "/proc/42/map_files/7f1c2a000000-7f1c2a021000" {
		t.Errorf("got %q", got)
	}
}

func TestPlainFile(t *testing.T) {
	needRoot(t)
	p, mem := mapFile(t, t.TempDir(), "plain file", 2)
	pid, s, e := os.Getpid(), addrOf(mem), addrOf(mem)+2*4096
	link, err := Readlink(pid, s, e)
	if err != nil || link != p {
		t.Fatalf("readlink %q %v, want %q", link, err, p)
	}
	want, err := StatPath(p)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Stat(pid, s, e)
	if err != nil || id != want {
		t.Fatalf("stat %+v %v, want %+v", id, err, want)
	}
	f, err := Open(pid, s, e, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fid, err := IdentityOf(f)
	if err != nil || fid != want {
		t.Fatalf("fstat %+v %v", fid, err)
	}
	r, err := Resolve(pid, s, e, p)
	if err != nil || r.Path != p || r.Deleted || r.Renamed || !r.SameFile(want) {
		t.Fatalf("resolve %+v %v", r, err)
	}
}

// The kernel's link text follows a rename: the path names the inode still.
func TestRenamed(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p, mem := mapFile(t, dir, "old", 1)
	want, _ := StatPath(p)
	np := filepath.Join(dir, "new")
	if err := os.Rename(p, np); err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(os.Getpid(), addrOf(mem), addrOf(mem)+4096, p)
	if err != nil || r.Path != np || r.Deleted || r.Renamed || !r.SameFile(want) {
		t.Fatalf("resolve %+v %v, want path %q", r, err, np)
	}
	// A new file at the old name changes nothing: the link names the inode.
	if err := os.WriteFile(p, []byte("impostor"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Resolve(os.Getpid(), addrOf(mem), addrOf(mem)+4096, p)
	if err != nil || r.Path != np || r.Renamed || !r.SameFile(want) {
		t.Fatalf("resolve %+v %v", r, err)
	}
}

// Unlinking the mapped name while another hard link keeps the inode: the
// link text is the old name plus " (deleted)", which names nothing now.
func TestUnlinkedNameStillLinked(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p, mem := mapFile(t, dir, "a", 1)
	if err := os.Link(p, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(os.Getpid(), addrOf(mem), addrOf(mem)+4096, p)
	if err != nil || r.Path != p || r.Deleted || !r.Renamed || r.Nlink != 1 {
		t.Fatalf("resolve %+v %v", r, err)
	}
	// And with an impostor at the old name: still renamed (another inode).
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Resolve(os.Getpid(), addrOf(mem), addrOf(mem)+4096, p)
	if err != nil || !r.Renamed || r.Deleted {
		t.Fatalf("resolve %+v %v", r, err)
	}
}

func TestDeleted(t *testing.T) {
	needRoot(t)
	p, mem := mapFile(t, t.TempDir(), "doomed", 3)
	want, _ := StatPath(p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	s, e := addrOf(mem), addrOf(mem)+3*4096
	link, err := Readlink(os.Getpid(), s, e)
	if err != nil || link != p+" (deleted)" {
		t.Fatalf("readlink %q %v", link, err)
	}
	r, err := Resolve(os.Getpid(), s, e, p)
	if err != nil || r.Path != p || !r.Deleted || r.Renamed || !r.SameFile(want) || r.Nlink != 0 || r.Size != 3*4096 {
		t.Fatalf("resolve %+v %v", r, err)
	}
	// The content is still readable through the link.
	f, err := Open(os.Getpid(), s, e, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != 3*4096 {
		t.Fatalf("stat %v %v", fi, err)
	}
}

func TestErrorNamesEverything(t *testing.T) {
	needRoot(t)
	_, err := Resolve(os.Getpid(), 0x1000, 0x2000, "/some/hint")
	var me *Error
	if !errors.As(err, &me) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
	msg := err.Error()
	for _, s := range []string{fmt.Sprint(os.Getpid()), "1000-2000", "/some/hint"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q lacks %q", msg, s)
		}
	}
}

// A shared anon mapping and a second mapping of its map_files link are one
// shmem inode: the way restore makes a sibling share memory.
func TestSharedAnonReopen(t *testing.T) {
	needRoot(t)
	mem, err := unix.Mmap(-1, 0, 4*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	pid, s := os.Getpid(), addrOf(mem)
	link, err := Readlink(pid, s, s+4*4096)
	if err != nil || link != "/dev/zero (deleted)" {
		t.Fatalf("readlink %q %v", link, err)
	}
	id, err := Stat(pid, s, s+4*4096)
	if err != nil {
		t.Fatal(err)
	}
	if id.Size != 4*4096 {
		t.Errorf("shmem size %d", id.Size)
	}
	t.Logf("shared anon identity: %+v", id)
	f, err := Open(pid, s, s+4*4096, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Map pages 1-2 of the object elsewhere and see writes through both.
	other, err := unix.Mmap(int(f.Fd()), 4096, 2*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(other)
	mem[4096+7] = 42
	if other[7] != 42 {
		t.Fatalf("second mapping does not share memory")
	}
	o := addrOf(other)
	id2, err := Stat(pid, o, o+2*4096)
	if err != nil || !id2.SameFile(id) {
		t.Fatalf("reopened mapping %+v %v, want inode of %+v", id2, err, id)
	}
}

func TestMemfd(t *testing.T) {
	needRoot(t)
	fd, err := unix.MemfdCreate("mm cr", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skip("memfd_create:", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	if err := f.Truncate(2 * 4096); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 2*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	s := addrOf(mem)
	r, err := Resolve(os.Getpid(), s, s+2*4096, "")
	if err != nil || r.Path != "/memfd:mm cr" {
		t.Fatalf("resolve %+v %v", r, err)
	}
	want, _ := IdentityOf(f)
	if !r.SameFile(want) {
		t.Errorf("memfd identity %+v, want %+v", r.Identity, want)
	}
	t.Logf("memfd resolved: %+v", r)
}

// A MAP_SHARED|MAP_ANONYMOUS region inherited over fork: parent and child
// see one (dev, ino) through their own map_files links.
func TestSharedAnonAcrossFork(t *testing.T) {
	needRoot(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	bin := filepath.Join(t.TempDir(), "shared_fork")
	if out, err := exec.Command(gcc, "-O1", "-o", bin, "testdata/shared_fork.c").CombinedOutput(); err != nil {
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
	var ids []Identity
	var pids []int
	for i := 0; i < 2; i++ {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("helper: %v", err)
		}
		var pid int
		var addr, n uint64
		if _, err := fmt.Sscanf(line, "%d %x %d", &pid, &addr, &n); err != nil {
			t.Fatalf("helper said %q: %v", line, err)
		}
		id, err := Stat(pid, addr, addr+n)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		ids = append(ids, id)
	}
	if pids[0] == pids[1] || !ids[0].SameFile(ids[1]) {
		t.Fatalf("pids %v identities %+v: want one inode in two tasks", pids, ids)
	}
}

func TestList(t *testing.T) {
	needRoot(t)
	_, mem := mapFile(t, t.TempDir(), "listed", 2)
	rs, err := List(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := Range{addrOf(mem), addrOf(mem) + 2*4096}
	found := false
	for i, r := range rs {
		found = found || r == want
		if i > 0 && rs[i-1].End > r.Start {
			t.Fatalf("not sorted: %x", rs)
		}
	}
	if !found {
		t.Errorf("%x not in %x", want, rs)
	}
}

func TestResolveLinkFD(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fdfile")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	link := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	r, err := ResolveLink(link)
	if err != nil || r.Path != p || r.Deleted || r.Renamed {
		t.Fatalf("%+v %v", r, err)
	}
	os.Remove(p)
	r, err = ResolveLink(link)
	if err != nil || r.Path != p || !r.Deleted {
		t.Fatalf("after unlink: %+v %v", r, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r, err = ResolveLink(fmt.Sprintf("/proc/self/fd/%d", pr.Fd()))
	if err != nil || !strings.HasPrefix(r.Path, "pipe:[") || r.Renamed || r.Deleted {
		t.Fatalf("pipe: %+v %v", r, err)
	}
}
