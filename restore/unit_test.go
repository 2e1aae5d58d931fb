package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
)

func TestFinalRegs(t *testing.T) {
	neg := func(n int64) uint64 { return uint64(-n) }
	cases := []struct {
		name                       string
		rax, orig, rip             uint64
		wantRax, wantOrig, wantRip uint64
	}{
		// Restarting syscalls stay as dumped: the kernel restarts them,
		// or returns EINTR to a handler, on the way out of the stop.
		{"restartsys", neg(512), 35, 0x1000, neg(512), 35, 0x1000},
		{"restartnointr", neg(513), 7, 0x1000, neg(513), 7, 0x1000},
		{"restartnohand", neg(514), 7, 0x1000, neg(514), 7, 0x1000},
		{"restartblock", neg(516), 230, 0x1000, neg(int64(unix.EINTR)), ^uint64(0), 0x1000},
		{"finished syscall", 3, 0, 0x1000, 3, 0, 0x1000},
		{"plain error", neg(int64(unix.EAGAIN)), 0, 0x1000, neg(int64(unix.EAGAIN)), 0, 0x1000},
		{"not in a syscall", neg(516), ^uint64(0), 0x1000, neg(516), ^uint64(0), 0x1000},
	}
	for _, c := range cases {
		got := finalRegs(unix.PtraceRegs{Rax: c.rax, Orig_rax: c.orig, Rip: c.rip, Fs_base: 0x77})
		if got.Rax != c.wantRax || got.Rip != c.wantRip || got.Orig_rax != c.wantOrig || got.Fs_base != 0x77 {
			t.Errorf("%s: rax %#x rip %#x orig %#x, want rax %#x rip %#x orig %#x", c.name, got.Rax, got.Rip, got.Orig_rax,
				c.wantRax, c.wantRip, c.wantOrig)
		}
	}
}

func TestPickArea(t *testing.T) {
	stub := []procfs.Mapping{{Start: 0x400000, End: 0x800000}, {Start: 0x7ffd00000000, End: 0x7ffd00021000}}
	tree := &image.Tree{Tasks: []*image.Task{
		{VMAs: []*image.VMA{{Start: 0x7fefff000000, End: 0x7ff000100000}}},
		{VMAs: []*image.VMA{{Start: 0x7feffe000000, End: 0x7feffe800000}}},
	}}
	addr, err := pickArea(stub, tree, restorerSize)
	if err != nil {
		t.Fatal(err)
	}
	if addr%image.PageSize != 0 {
		t.Fatalf("addr %#x not page-aligned", addr)
	}
	check := func(s, e uint64) {
		if addr < e+1<<20 && s < addr+restorerSize+1<<20 {
			t.Errorf("area %#x too close to %#x-%#x", addr, s, e)
		}
	}
	for _, m := range stub {
		check(m.Start, m.End)
	}
	for _, tk := range tree.Tasks {
		for _, v := range tk.VMAs {
			check(v.Start, v.End)
		}
	}
	if addr < 0x7f0000000000 {
		t.Errorf("area %#x lower than needed", addr)
	}
}

func TestCheckFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	good := image.File{ID: 1, Path: p, Dev: st.Dev, Ino: st.Ino, Mode: st.Mode, Size: st.Size, MtimeNsec: st.Mtim.Nano()}
	if err := checkFile(&good, true); err != nil {
		t.Fatalf("unchanged file: %v", err)
	}
	bad := good
	bad.Size = 20
	err := checkFile(&bad, true)
	if err == nil || err.Error() != p+": size 10 != dumped 20" {
		t.Errorf("size change: %v", err)
	}
	if err := checkFile(&bad, false); err != nil {
		t.Errorf("non-strict check failed on size: %v", err)
	}
	bad = good
	bad.MtimeNsec++
	if err := checkFile(&bad, true); err == nil || !strings.Contains(err.Error(), "mtime") {
		t.Errorf("mtime change: %v", err)
	}
	bad = good
	bad.Path = p + ".gone"
	if err := checkFile(&bad, false); err == nil || !strings.Contains(err.Error(), p+".gone") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckPidFree(t *testing.T) {
	if err := checkPidFree(os.Getpid()); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("own pid: %v", err)
	}
}

func TestSplitRuns(t *testing.T) {
	vmas := []*image.VMA{
		{Start: 0x1000, End: 0x3000, Prot: unix.PROT_READ | unix.PROT_WRITE},
		{Start: 0x3000, End: 0x4000, Prot: unix.PROT_READ},
		{Start: 0x8000, End: 0x9000, Prot: unix.PROT_READ | unix.PROT_WRITE},
	}
	runs := []image.PageRun{{Addr: 0x2000, Len: 0x2000, Offset: 0}, {Addr: 0x8000, Len: 0x1000, Offset: 0x2000}}
	got, err := splitRuns(runs, vmas)
	if err != nil {
		t.Fatal(err)
	}
	want := []piece{{0x2000, 0, 0x1000, true}, {0x3000, 0x1000, 0x1000, false}, {0x8000, 0x2000, 0x1000, true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("piece %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := splitRuns([]image.PageRun{{Addr: 0x5000, Len: 0x1000}}, vmas); err == nil {
		t.Error("run outside every VMA accepted")
	}
}
