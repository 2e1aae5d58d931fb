package restore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// resealManifest rewrites manifest.json so that every file listed matches
// its current size and CRC-32C: a test that edits an image on purpose uses
// it to get past the checksums to the check it wants to exercise.
func resealManifest(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, image.ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
		Files   []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			CRC32C string `json:"crc32c"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for i := range m.Files {
		data, err := os.ReadFile(filepath.Join(dir, m.Files[i].Name))
		if err != nil {
			t.Fatal(err)
		}
		sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
		var be [4]byte
		binary.BigEndian.PutUint32(be[:], sum)
		m.Files[i].Size, m.Files[i].CRC32C = int64(len(data)), hex.EncodeToString(be[:])
	}
	out, _ := json.MarshalIndent(&m, "", "  ")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// editXsave rewrites the XCR0 recorded in the first thread's xsave area
// of mmcr-ext.json with fn(old).
func editXsave(t *testing.T, dir string, fn func(uint64) uint64) {
	t.Helper()
	p := filepath.Join(dir, image.ExtName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var ext map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // int64s (mtimes) must survive the round trip
	if err := dec.Decode(&ext); err != nil {
		t.Fatal(err)
	}
	th := ext["tasks"].([]any)[0].(map[string]any)["threads"].([]any)[0].(map[string]any)
	xs, err := base64.StdEncoding.DecodeString(th["xsave"].(string))
	if err != nil || len(xs) < xsaveMinBytes {
		t.Fatalf("xsave in the image: %d bytes, %v", len(xs), err)
	}
	old := binary.LittleEndian.Uint64(xs[xsaveXCR0Off:])
	binary.LittleEndian.PutUint64(xs[xsaveXCR0Off:], fn(old))
	th["xsave"] = base64.StdEncoding.EncodeToString(xs)
	out, _ := json.Marshal(ext)
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	resealManifest(t, dir)
}

// expectNothingLeft checks a failed restore left none of the dumped pids.
func expectNothingLeft(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
			t.Errorf("pid %d exists after the failed restore", pid)
		}
	}
}

// TestRestoreXstateMismatch: an image whose recorded xstate features
// differ from this CPU's is refused before any task is made, with a
// message naming both layouts; the unedited image restores.
func TestRestoreXstateMismatch(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	var xcr0 uint64
	editXsave(t, d.dir, func(old uint64) uint64 { xcr0 = old; return old ^ 1<<61 })
	if xcr0&3 != 3 {
		t.Errorf("dumped XCR0 %#x lacks x87 and SSE: not the features word", xcr0)
	}
	created := false
	testHookAfterCreate = func() error { created = true; return nil }
	defer func() { testHookAfterCreate = nil }()
	_, err := Run(Options{Dir: d.dir, Log: testLog(t)})
	t.Logf("error: %v", err)
	if !errors.Is(err, ErrXstate) || !strings.Contains(err.Error(), fmt.Sprintf("%#x", xcr0^1<<61)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("%#x", xcr0)) {
		t.Fatalf("restore: %v, want ErrXstate naming features %#x and %#x", err, xcr0^1<<61, xcr0)
	}
	if created {
		t.Errorf("tasks were created before the xstate check")
	}
	expectNothingLeft(t, d.pids)
	// Put it back: the same image restores.
	editXsave(t, d.dir, func(uint64) uint64 { return xcr0 })
	testHookAfterCreate = nil
	root, err := Run(Options{Dir: d.dir, Log: testLog(t)})
	if err != nil {
		t.Fatalf("restore of the repaired image: %v", err)
	}
	unix.Kill(root, unix.SIGTERM)
	if code, err := Wait(root); err != nil || code != 0 {
		t.Fatalf("restored workload: exit %d, %v", code, err)
	}
}

func TestCompareXstate(t *testing.T) {
	mk := func(xcr0 uint64, size int) []byte {
		b := make([]byte, size)
		binary.LittleEndian.PutUint64(b[xsaveXCR0Off:], xcr0)
		return b
	}
	tree := func(xs []byte) *image.Tree {
		return &image.Tree{Tasks: []*image.Task{{PID: 7, Threads: []*image.Thread{{TID: 7, Xsave: xs}}}}}
	}
	here := mk(0x2e7, 2696)
	for _, c := range []struct {
		name string
		xs   []byte
		ok   bool
	}{
		{"same", mk(0x2e7, 2696), true},
		{"none", nil, true},
		{"other features", mk(0x207, 2696), false},
		{"other size", mk(0x2e7, 2440), false},
		{"too short", make([]byte, 100), false},
	} {
		err := compareXstate(tree(c.xs), here)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrXstate)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestCheckCreds(t *testing.T) {
	user := caller{uid: 1000, gids: []uint32{1000, 27}}
	mk := func(f func(*image.Creds)) *image.Tree {
		c := image.Creds{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000,
			Groups: []uint32{27}, CapBnd: 1<<41 - 1}
		f(&c)
		return &image.Tree{Tasks: []*image.Task{{PID: 9, Creds: c}}}
	}
	for _, c := range []struct {
		name string
		f    func(*image.Creds)
		ok   bool
	}{
		{"own", func(*image.Creds) {}, true},
		{"root uid", func(c *image.Creds) { c.EUID = 0 }, false},
		{"saved uid", func(c *image.Creds) { c.SUID = 1001 }, false},
		{"other gid", func(c *image.Creds) { c.FSGID = 5 }, false},
		{"other group", func(c *image.Creds) { c.Groups = append(c.Groups, 4) }, false},
		{"capability", func(c *image.Creds) { c.CapPrm = 1 << 21 }, false},
		{"ambient", func(c *image.Creds) { c.CapAmb = 1 << 12 }, false},
		{"inheritable", func(c *image.Creds) { c.CapInh = 1 }, false},
	} {
		err := checkCreds(mk(c.f), user)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrCredentials)) {
			t.Errorf("%s: %v", c.name, err)
		}
		if err := checkCreds(mk(c.f), caller{isRoot: true}); err != nil {
			t.Errorf("%s: refused for root: %v", c.name, err)
		}
	}
}

// TestRestoreUntrustedImages: a directory others could have written, or
// holding a symbolic link, is refused before anything is read from it;
// TrustImages overrides.
func TestRestoreUntrustedImages(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	for _, c := range []struct {
		name   string
		damage func() error
		undo   func() error
		want   string
	}{
		{"world-writable dir", func() error { return os.Chmod(d.dir, 0o777) }, func() error { return os.Chmod(d.dir, 0o700) }, "writable by group or others"},
		{"foreign owner", func() error { return os.Chown(d.dir, 4242, 4242) }, func() error { return os.Chown(d.dir, 0, 0) }, "owned by uid 4242"},
		{"group-writable file", func() error { return os.Chmod(filepath.Join(d.dir, "inventory.img"), 0o660) },
			func() error { return os.Chmod(filepath.Join(d.dir, "inventory.img"), 0o600) }, "inventory.img is writable"},
		{"symlink", func() error { return os.Symlink("/etc/passwd", filepath.Join(d.dir, "extra")) },
			func() error { return os.Remove(filepath.Join(d.dir, "extra")) }, "is a symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.undo(); err != nil {
					t.Fatal(err)
				}
			}()
			_, err := Run(Options{Dir: d.dir, Log: testLog(t)})
			if !errors.Is(err, image.ErrUntrusted) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore: %v, want ErrUntrusted saying %q", err, c.want)
			}
			expectNothingLeft(t, d.pids)
			if c.name != "world-writable dir" {
				return
			}
			root, err := Run(Options{Dir: d.dir, Log: testLog(t), TrustImages: true})
			if err != nil {
				t.Fatalf("restore with TrustImages: %v", err)
			}
			unix.Kill(root, unix.SIGTERM)
			if code, err := Wait(root); err != nil || code != 0 {
				t.Fatalf("restored workload: exit %d, %v", code, err)
			}
		})
	}
}

// TestRestoreLocked: a restore of a directory another mmcr holds (a dump
// writing it, another restore) is refused at once.
func TestRestoreLocked(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	unlock, err := image.LockDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	unlock()
	if !errors.Is(err, image.ErrLocked) {
		t.Fatalf("restore of a locked dir: %v, want image.ErrLocked", err)
	}
	expectNothingLeft(t, d.pids)
}

// countdownCtx is a context whose Err turns non-nil on its n-th call.
type countdownCtx struct {
	context.Context
	left, calls int
}

func (c *countdownCtx) Err() error {
	c.calls++
	c.left--
	if c.left < 0 {
		return context.Canceled
	}
	return nil
}

// TestRestoreCanceledAtEveryCheck cancels the restore at each of its
// checks in turn: each time it fails with ErrCanceled and leaves no task
// and no recreated file behind; then it completes and the tree verifies.
func TestRestoreCanceledAtEveryCheck(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	fileDir := t.TempDir()
	d := dumpWorkload(t, false, bin, fileDir)
	for n := 0; ; n++ {
		ctx := &countdownCtx{Context: context.Background(), left: n}
		root, err := Run(Options{Dir: d.dir, Ctx: ctx})
		if err == nil {
			t.Logf("restore completed once its first %d checks passed", n)
			if n < 3 {
				t.Errorf("only %d cancellation points", n)
			}
			unix.Kill(root, unix.SIGTERM)
			if code, err := Wait(root); err != nil || code != 0 {
				t.Fatalf("restored workload: exit %d, %v", code, err)
			}
			break
		}
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("cancel at check %d: %v", n, err)
		}
		expectNothingLeft(t, d.pids)
		if ents, _ := filepath.Glob(filepath.Join(fileDir, "*ghost*")); len(ents) != 0 {
			t.Fatalf("cancel at check %d: left %v", n, ents)
		}
		if n > 100 {
			t.Fatal("restore never completes")
		}
	}
}

// TestRestoreGhostNoFollow: the deleted file's directory was replaced by a
// symbolic link after the dump. The file must not be written through the
// link: it is recreated in a private directory under $TMPDIR, the restore
// works, and nothing is left anywhere.
func TestRestoreGhostNoFollow(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "objs")
	base := t.TempDir()
	fileDir := filepath.Join(base, "files")
	if err := os.Mkdir(fileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := dumpWorkload(t, false, bin, fileDir)
	moved := filepath.Join(base, "moved")
	if err := os.Rename(fileDir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, fileDir); err != nil {
		t.Fatal(err)
	}
	testHookAfterCreate = func() error {
		ents, _ := os.ReadDir(moved)
		for _, e := range ents {
			if strings.Contains(e.Name(), "ghost") {
				t.Errorf("deleted file recreated through the symbolic link: %s/%s", moved, e.Name())
			}
		}
		// Every file is mapped by now: put the directory back, so that
		// the workload finds its cwd where it was.
		if err := os.Remove(fileDir); err != nil {
			return err
		}
		return os.Rename(moved, fileDir)
	}
	defer func() { testHookAfterCreate = nil }()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	root, err := Run(Options{Dir: d.dir, Log: testLog(t), Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	maps, _ := os.ReadFile("/proc/" + itoa(root) + "/maps")
	if !strings.Contains(string(maps), filepath.Join(os.TempDir(), ".mmcr-ghost-")) {
		t.Errorf("deleted file not mapped from a private dir in %s:\n%s", os.TempDir(), maps)
	}
	unix.Kill(root, unix.SIGTERM)
	code, err := Wait(root)
	out, _ := io.ReadAll(r)
	if err != nil || code != 0 || !strings.Contains(string(out), "PASS") {
		t.Fatalf("restored workload: exit %d %v, output %q", code, err, out)
	}
	if ents, _ := filepath.Glob(filepath.Join(os.TempDir(), ".mmcr-ghost-*")); len(ents) != 0 {
		t.Errorf("private dirs left: %v", ents)
	}
}

// TestRestoreBackingFileMissing: a mapped file gone since the dump stops
// the restore before any task is made, naming the file.
func TestRestoreBackingFileMissing(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	if err := os.Rename(bin, bin+".moved"); err != nil {
		t.Fatal(err)
	}
	created := false
	testHookAfterCreate = func() error { created = true; return nil }
	defer func() { testHookAfterCreate = nil }()
	_, err := Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), bin) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("restore with %s gone: %v, want an error naming it", bin, err)
	}
	if created {
		t.Errorf("tasks were created before the missing file was noticed")
	}
	expectNothingLeft(t, d.pids)
}

// TestRestoreFileSwappedDuringRestore replaces a mapped file with a copy of
// the same size, mode and mtime (another inode) after the checks and
// before the tasks open it: the open file's identity is checked too, and
// the restore fails cleanly.
func TestRestoreFileSwappedDuringRestore(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "memtree")
	d := dumpWorkload(t, false, bin, "0")
	testHookBeforeCreate = func() {
		st, err := os.Stat(bin)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := os.ReadFile(bin)
		tmp := bin + ".new"
		if err := os.WriteFile(tmp, b, st.Mode()); err != nil {
			t.Error(err)
			return
		}
		os.Chtimes(tmp, st.ModTime(), st.ModTime())
		if err := os.Rename(tmp, bin); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBeforeCreate = nil }()
	_, err := Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "was replaced during the restore") {
		t.Fatalf("restore with the file swapped: %v, want 'was replaced during the restore'", err)
	}
	expectNothingLeft(t, d.pids)
}
