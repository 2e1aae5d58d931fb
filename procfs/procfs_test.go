package procfs

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var fixture = FS{Root: "testdata/proc"}

const fixturePID = 4242

func TestMappingsFixture(t *testing.T) {
	ms, err := fixture.Mappings(fixturePID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 15 {
		t.Fatalf("got %d mappings, want 15", len(ms))
	}
	first := ms[0]
	want := Mapping{Start: 0x55e31e217000, End: 0x55e31e219000, Prot: unix.PROT_READ, Pgoff: 0,
		DevMajor: 0xfe, DevMinor: 0, Ino: 247026, Path: "/usr/bin/cat",
		VmFlags: []string{"rd", "mr", "mw", "me"}, Rss: 8 << 10, KernelPageSize: 4096}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("first mapping\n got %+v\nwant %+v", first, want)
	}
	if m := ms[2]; m.Prot != unix.PROT_READ|unix.PROT_WRITE || m.Pgoff != 0x7000 || m.Anonymous != 4<<10 || m.Swap != 4<<10 {
		t.Errorf("data mapping: %+v", m)
	}
	paths := map[int]string{
		3: "[heap]", 4: "/dev/zero (deleted)", 5: "/tmp/dir with spaces/my file (1).bin",
		6: "/tmp/gone (deleted)", 7: "[anon:my region]", 8: "", 9: "/memfd:shared buf (deleted)",
		10: "[stack]", 11: "[vvar]", 12: "[vvar_vclock]", 13: "[vdso]", 14: "[vsyscall]",
	}
	for i, p := range paths {
		if ms[i].Path != p {
			t.Errorf("mapping %d: path %q, want %q", i, ms[i].Path, p)
		}
	}
	if !ms[4].Shared || ms[4].DevMinor != 1 || ms[4].Ino != 1029 || !ms[4].Deleted() || ms[4].PathName() != "/dev/zero" {
		t.Errorf("shared anon: %+v", ms[4])
	}
	if ms[6].PathName() != "/tmp/gone" || ms[5].Deleted() {
		t.Errorf("deleted detection wrong")
	}
	if !ms[10].HasFlag("gd") || ms[10].HasFlag("sh") {
		t.Errorf("stack flags %v", ms[10].VmFlags)
	}
	if ms[14].Start != 0xffffffffff600000 || ms[14].Prot != unix.PROT_EXEC {
		t.Errorf("vsyscall: %+v", ms[14])
	}
}

func TestParseSmapsErrors(t *testing.T) {
	bad := []string{
		"Size: 4 kB\n", // key before header
		"1000-0500 rw-p 00000000 00:00 0\n",
		"1000-2000 rwzp 00000000 00:00 0\n",
		"1000-2000 rw-p 0000000g 00:00 0\n",
		"1000-2000 rw-p 00000000 0000 0\n",
		"1000-2000 rw-p 00000000 00:00 x\n",
		"1000-2000 rw-p 00000000 00:00 0\nRss: lots kB\n",
		"1000-2000 rw-p 00000000 00:00 0\njunk\n",
		"3000-4000 rw-p 00000000 00:00 0\n1000-2000 rw-p 00000000 00:00 0\n",
	}
	for _, s := range bad {
		_, err := ParseSmaps(strings.NewReader(s), "x/smaps")
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "x/smaps") {
			t.Errorf("%q: err %v, want ErrParse naming the file", s, err)
		}
	}
}

func TestStatFixture(t *testing.T) {
	st, err := fixture.Stat(fixturePID)
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{Comm: "my (weird) comm", State: 'S', PPID: 1, PGID: 4242, SID: 4242, Flags: 4194560,
		NumThreads: 2, StartTime: 45767,
		StartCode: 94285013753856, EndCode: 94285013773737, StartStack: 140725167906000,
		StartData: 94285013789744, EndData: 94285013791360, StartBrk: 94285303353344,
		ArgStart: 140725167909375, ArgEnd: 140725167909395, EnvStart: 140725167909395, EnvEnd: 140725167910891,
		ExitSignal: 17}
	if st != want {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	for _, s := range []string{"", "1 comm S 1", "1 (x) S 1 2 3", "1 (x) SS 1", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 x 36 37 38"} {
		if _, err := ParseStat([]byte(s), "st"); !errors.Is(err, ErrParse) {
			t.Errorf("%q: err %v, want ErrParse", s, err)
		}
	}
}

func TestStatusFixture(t *testing.T) {
	st, err := fixture.Status(fixturePID)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Name: "my (weird) comm", State: 'S', Tgid: 4242, PPid: 1, Umask: 0o27,
		UID: [4]uint32{1000, 1001, 1002, 1003}, GID: [4]uint32{100, 101, 102, 103},
		Groups: []uint32{4, 24, 27}, NSpid: []int{4242, 7}, Threads: 2,
		ShdPnd: 0x100, SigBlk: 0x10000, SigIgn: 0x1000, SigCgt: 0x180000000,
		CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
		NoNewPrivs: true, Seccomp: 2, THPDisabled: true, VmLck: 12 << 10}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	for _, bad := range []string{"Uid:\t1 2 3\n", "VmLck:\t12 MB\n", "VmLck:\t99999999999999999999 kB\n"} {
		if _, err := ParseStatus([]byte(bad), "s"); !errors.Is(err, ErrParse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTasksFixture(t *testing.T) {
	th, err := fixture.Threads(fixturePID)
	if err != nil || !reflect.DeepEqual(th, []int{4242, 4243}) {
		t.Errorf("threads %v %v", th, err)
	}
	c, err := fixture.Children(fixturePID, 4242)
	if err != nil || !reflect.DeepEqual(c, []int{4300, 4301}) {
		t.Errorf("children %v %v", c, err)
	}
	all, err := fixture.AllChildren(fixturePID)
	if err != nil || !reflect.DeepEqual(all, []int{4300, 4301, 4302}) {
		t.Errorf("all children %v %v", all, err)
	}
	p, err := fixture.Personality(fixturePID)
	if err != nil || p != 0 {
		t.Errorf("personality %v %v", p, err)
	}
	oom, err := fixture.OomScoreAdj(fixturePID)
	if err != nil || oom != -500 {
		t.Errorf("oom_score_adj %v %v", oom, err)
	}
}

// TestOomScoreAdjBad: a value that is not a number in the kernel's range
// is a parse error naming the file.
func TestOomScoreAdjBad(t *testing.T) {
	for _, content := range []string{"", "abc\n", "1001\n", "-1001\n", "12 34\n"} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "7"), 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "7", "oom_score_adj")
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := FS{Root: dir}.OomScoreAdj(7)
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), name) {
			t.Errorf("%q: %v, want a parse error naming %s", content, err, name)
		}
	}
}

func TestFDsFixture(t *testing.T) {
	fds, err := fixture.FDs(fixturePID)
	if err != nil {
		t.Fatal(err)
	}
	want := []FD{
		{Num: 0, Target: "/dev/null", Flags: 0o100002, MntID: 23, Ino: 3},
		{Num: 3, Target: "/tmp/dir with spaces/my file (1).bin", Flags: 0o2102001, Pos: 4096, MntID: 31, Ino: 77},
		{Num: 5, Target: "anon_inode:[eventfd]", Flags: 0o2000000, MntID: 15, Ino: 1234, Eventfd: &EventfdInfo{}},
	}
	if !reflect.DeepEqual(fds, want) {
		t.Errorf("got  %+v\nwant %+v", fds, want)
	}
}

func TestAuxv(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	words := []uint64{6, 4096, 25, 0x7ffd0000, 0, 0, 0, 0}
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	if err := os.WriteFile(filepath.Join(root, "7", "auxv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FS{Root: root}.Auxv(7)
	if err != nil || !reflect.DeepEqual(got, words[:6]) {
		t.Errorf("auxv %v %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(root, "7", "auxv"), b[:12], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (FS{Root: root}).Auxv(7); !errors.Is(err, ErrParse) {
		t.Errorf("odd auxv: %v", err)
	}
}

func TestMissingProcess(t *testing.T) {
	_, err := fixture.Mappings(1)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err %v, want not-exist", err)
	}
}

// TestParseMapsPathEndingInCR: a file name may end in "\r", which the
// kernel prints as it is; the parser must keep it (a line scanner that
// drops it would name another file).
func TestParseMapsPathEndingInCR(t *testing.T) {
	ms, err := ParseSmaps(strings.NewReader("1000-2000 r--p 00000000 fe:00 12 /tmp/odd\r\n2000-3000 rw-p 00000000 00:00 0 \n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Path != "/tmp/odd\r" {
		t.Fatalf("got %+v", ms)
	}
}
