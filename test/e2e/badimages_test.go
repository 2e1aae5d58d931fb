package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/testproc"
)

// damage is one way to break an image directory.
type damage struct {
	name string
	// glob selects the files (pattern relative to the image dir; %d is
	// replaced by the root pid); all matches are damaged.
	glob string
	op   func(path string) error
}

func remove(p string) error { return os.Remove(p) }

func truncateTo(frac float64) func(string) error {
	return func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, int64(float64(st.Size())*frac))
	}
}

func flipByte(off int64, mask byte) func(string) error {
	return func(p string) error {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("read byte %d of %s: %w", off, p, err)
		}
		b[0] ^= mask
		_, err = f.WriteAt(b, off)
		return err
	}
}

// CRIU image files start with two u32 magics (IMG_COMMON and the image's
// own; inventory.img has only its own) followed by entries, each a u32
// size and that many bytes of protobuf. So in mm/core/pstree byte 11 is the
// high byte of the first entry's size: flipping its top bit promises ~2 GiB
// the file does not hold. The manifest's checksums must catch flips in data.
var damages = []damage{
	{"missing-inventory", "inventory.img", remove},
	{"missing-pstree", "pstree.img", remove},
	{"missing-core", "core-%d.img", remove},
	{"missing-mm", "mm-%d.img", remove},
	{"missing-pagemap", "pagemap-%d.img", remove},
	{"missing-pages", "pages-*.img", remove},
	{"empty-inventory", "inventory.img", truncateTo(0)},
	{"truncated-pstree", "pstree.img", truncateTo(0.5)},
	{"truncated-core", "core-%d.img", truncateTo(0.5)},
	{"truncated-mm", "mm-%d.img", truncateTo(0.5)},
	{"truncated-pagemap", "pagemap-%d.img", truncateTo(0.5)},
	{"truncated-pages", "pages-*.img", truncateTo(0.5)},
	{"flipped-magic-inventory", "inventory.img", flipByte(0, 0xff)},
	{"flipped-magic-mm", "mm-%d.img", flipByte(1, 0x5a)},
	{"flipped-magic-core", "core-%d.img", flipByte(5, 0x5a)},
	{"flipped-size-mm", "mm-%d.img", flipByte(11, 0x80)},
	{"flipped-size-core", "core-%d.img", flipByte(11, 0x80)},
	{"flipped-size-pstree", "pstree.img", flipByte(11, 0x80)},
	{"flipped-data-pages", "pages-*.img", flipMiddle},
	{"flipped-data-mm", "mm-%d.img", flipLast},
	{"missing-manifest", "manifest.json", remove},
	{"flipped-manifest", "manifest.json", flipByte(0, 0x20)},
	{"empty-dir", "*", remove},
}

func flipMiddle(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return flipByte(st.Size()/2, 0x01)(p)
}

func flipLast(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return flipByte(st.Size()-1, 0x01)(p)
}

// takePid starts "sleep 300" with exactly pid (through ns_last_pid) and
// returns it, or 0 when other processes keep taking that pid first.
func takePid(t *testing.T, pid int, dir string) int {
	for try := 0; try < 20; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("write ns_last_pid: %v", err)
		}
		s, err := testproc.Start(testproc.Spec{Path: "/bin/sleep", Args: []string{"300"}, Dir: dir,
			Stdout: os.DevNull, Stderr: os.DevNull})
		if err != nil {
			t.Fatal(err)
		}
		p := s.Pid
		if p == pid {
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "sleep" {
					return p
				}
			}
			t.Fatalf("sleep (pid %d) did not exec", p)
		}
		unix.Kill(p, unix.SIGKILL)
		testproc.WaitGone([]int{p}, 5*time.Second)
	}
	return 0
}

// reseal rewrites the size and CRC-32C of files in dir's manifest.json
// (format "mmcr-image" v1: {"files": [{"name", "size", "crc32c"}]}) so that
// damaged files pass the manifest check and reach the decoders.
func reseal(dir string, files []string) error {
	mpath := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(mpath)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	list, ok := m["files"].([]any)
	if !ok {
		return fmt.Errorf("manifest has no files list (format changed?)")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		found := false
		for _, ent := range list {
			e, ok := ent.(map[string]any)
			if !ok || e["name"] != filepath.Base(f) {
				continue
			}
			e["size"] = len(data)
			e["crc32c"] = fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
			found = true
		}
		if !found {
			return fmt.Errorf("manifest does not list %s", filepath.Base(f))
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(mpath, out, 0o600)
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if !ent.Type().IsRegular() {
			continue
		}
		src, err := os.Open(filepath.Join(from, ent.Name()))
		if err != nil {
			return err
		}
		dst, err := os.OpenFile(filepath.Join(to, ent.Name()), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			_, err = io.Copy(dst, src)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// expectRestoreFailure runs restore on a broken image and checks that it
// fails with one line on stderr, no panic, and nothing left running.
func (e *env) expectRestoreFailure(t *testing.T, name, img string, pids []int) {
	t.Helper()
	r := e.mmcrTimeout(30*time.Second, name, "restore", "-D", img, "-d", "--pidfile", filepath.Join(e.dir, name+".pid"))
	if r.ok() {
		t.Errorf("mmcr restore succeeded on a broken image")
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("mmcr restore panicked: %s", firstLine(r.stderr))
	}
	if s := strings.TrimSpace(r.stderr); s == "" {
		t.Errorf("mmcr restore printed no error")
	} else if strings.Contains(s, "\n") {
		t.Errorf("mmcr restore printed %d lines on stderr, want one", strings.Count(s, "\n")+1)
	} else {
		t.Logf("mmcr restore: %s", s)
	}
	if left := testproc.WaitGone(pids, 5*time.Second); len(left) > 0 {
		t.Errorf("after the failed restore, processes with the dumped pids exist: %s", describePids(left))
	}
	if left := waitNoDescendants(5 * time.Second); len(left) > 0 {
		t.Errorf("after the failed restore, processes are left running: %s", describePids(left))
	}
	testproc.KillDescendants()
}

func runBadImages(t *testing.T, sc scenario) {
	e := newEnv(t, sc)
	root := e.start()
	before := e.snapshot(root)
	pids := pidsOf(before)
	e.dump(root)
	e.expectGone(pids, "dumped tree (dump must kill it)")
	files, _ := os.ReadDir(e.img)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	t.Logf("image files: %s", strings.Join(names, " "))

	// Each damage runs twice when it touches a checksummed file: as is
	// (the manifest must catch it) and "resealed" (the manifest rewritten to
	// match, so the decoders themselves meet the damage). A flipped data
	// byte resealed may well be a valid image (other memory, another flag):
	// only the checksum can catch it, so those are not resealed.
	type variant struct {
		damage
		reseal bool
	}
	var variants []variant
	for _, d := range damages {
		variants = append(variants, variant{d, false})
		if !strings.HasPrefix(d.name, "flipped-data-") && !strings.HasPrefix(d.name, "missing-") &&
			!strings.Contains(d.glob, "manifest") && d.glob != "*" {
			variants = append(variants, variant{damage{d.name + "-resealed", d.glob, d.op}, true})
		}
	}
	for i, d := range variants {
		t.Run(d.name, func(t *testing.T) {
			bad := filepath.Join(e.dir, fmt.Sprintf("bad-%02d", i))
			if err := copyDir(e.img, bad); err != nil {
				t.Fatal(err)
			}
			glob := d.glob
			if strings.Contains(glob, "%d") {
				glob = fmt.Sprintf(glob, root)
			}
			matches, _ := filepath.Glob(filepath.Join(bad, glob))
			if len(matches) == 0 {
				t.Fatalf("image has no file matching %s (files: %s)", glob, strings.Join(names, " "))
			}
			for _, m := range matches {
				if err := d.op(m); err != nil {
					t.Fatal(err)
				}
			}
			if d.reseal {
				if err := reseal(bad, matches); err != nil {
					t.Fatalf("reseal manifest: %v", err)
				}
			}
			e.in(t, func() { e.expectRestoreFailure(t, "restore-"+d.name, bad, pids) })
		})
	}

	// A dumped pid taken by another process: restore must refuse quickly,
	// leave that process alone and clean up whatever it had made.
	t.Run("pid-taken", func(t *testing.T) {
		e.in(t, func() {
			victim := pids[len(pids)-1] // a child: the root may be made first
			holder := takePid(t, victim, e.dir)
			if holder == 0 {
				t.Skipf("could not start a process with pid %d (another process took it first)", victim)
			}
			r := e.mmcrTimeout(30*time.Second, "restore-pid-taken", "restore", "-D", e.img, "-d", "--pidfile", filepath.Join(e.dir, "pid-taken.pid"))
			if r.ok() {
				t.Errorf("mmcr restore succeeded although pid %d was taken", victim)
			}
			if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("mmcr restore panicked: %s", firstLine(r.stderr))
			}
			if s := strings.TrimSpace(r.stderr); s == "" || strings.Contains(s, "\n") {
				t.Errorf("mmcr restore must print one line on stderr, printed %q", s)
			} else {
				t.Logf("mmcr restore: %s", s)
			}
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", holder)); strings.TrimSpace(string(comm)) != "sleep" {
				t.Errorf("the process holding pid %d is gone or changed (comm %q)", holder, strings.TrimSpace(string(comm)))
			}
			others := []int{}
			for _, p := range pids {
				if p != victim {
					others = append(others, p)
				}
			}
			if left := testproc.WaitGone(others, 5*time.Second); len(left) > 0 {
				t.Errorf("after the failed restore, processes with the dumped pids exist: %s", describePids(left))
			}
			unix.Kill(holder, unix.SIGKILL)
			e.expectGone([]int{holder}, "pid holder")
			if left := waitNoDescendants(5 * time.Second); len(left) > 0 {
				t.Errorf("after the failed restore, processes are left running: %s", describePids(left))
			}
		})
	})

	// The pristine images must still restore: the failures above were
	// caused by the damage.
	t.Run("pristine", func(t *testing.T) {
		e.in(t, func() {
			mark := testproc.Mark()
			e.restore("restore-pristine", e.img, root)
			e.compareTree(root, before, "pristine restore")
			e.verdict(root, mark)
			e.expectGone(pids, "pristine restore tree after its verdict")
		})
	})

	// A backing file that changed after dump must be refused.
	t.Run("backing-file-changed", func(t *testing.T) {
		backing := filepath.Join(e.run, "backing.dat")
		b, err := os.ReadFile(backing)
		if err != nil {
			t.Fatal(err)
		}
		changed := append(bytes.Repeat([]byte{0xee}, len(b)), make([]byte, 4096)...)
		if err := os.WriteFile(backing, changed, 0o644); err != nil {
			t.Fatal(err)
		}
		e.in(t, func() { e.expectRestoreFailure(t, "restore-backing-changed", e.img, pids) })
	})
}
