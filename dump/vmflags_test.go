package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
	"github.com/mmcr/mmcr/procfs"
)

// TestDumpVmFlags: the VmFlags read from smaps while pages are copied land
// on the right VMAs, with the madvise advice and mmap flags restore
// derives from them, and the pages are all there.
func TestDumpVmFlags(t *testing.T) {
	requireRoot(t)
	w := startWorkload(t, buildC(t, "vmflags"))
	pid := w.pid(t, 1)
	addr := func(i int) uint64 {
		a, err := strconv.ParseUint(w.fields[i], 16, 64)
		if err != nil {
			t.Fatalf("ready field %d: %v", i, err)
		}
		return a
	}
	live, err := procfs.Default.Mappings(pid)
	if err != nil {
		t.Fatal(err)
	}
	r, task := dumpLeaveRunning(t, pid)
	runs, pagesFile, err := r.Pages(task.PID)
	if err != nil {
		t.Fatal(err)
	}
	pagesFile.Close()
	pagesIn := func(start, end uint64) (n uint64) {
		for _, run := range runs {
			lo, hi := max(run.Addr, start), min(run.Addr+run.Len, end)
			if lo < hi {
				n += (hi - lo) / image.PageSize
			}
		}
		return n
	}
	// Every VMA has smaps' flags (the live ones, read before the dump:
	// the workload changes none after its ready line).
	byStart := make(map[uint64]*image.VMA)
	for _, v := range task.VMAs {
		byStart[v.Start] = v
	}
	for _, m := range live {
		v := byStart[m.Start]
		if m.Path == "[vsyscall]" {
			continue
		}
		if v == nil || v.End != m.End {
			t.Errorf("live vma %x-%x %s: not in the image", m.Start, m.End, m.Path)
			continue
		}
		if !slices.Equal(v.VmFlags, m.VmFlags) {
			t.Errorf("vma %x-%x %s: VmFlags %q, smaps says %q", m.Start, m.End, m.Path, v.VmFlags, m.VmFlags)
		}
	}
	for _, tc := range []struct {
		field int
		flag  string
		madv  int // -1: none
		mmap  int
	}{
		{2, "dc", unix.MADV_DONTFORK, 0},
		{3, "dd", unix.MADV_DONTDUMP, 0},
		{4, "lo", -1, 0},
		{5, "nr", -1, unix.MAP_NORESERVE},
		{6, "gd", -1, unix.MAP_GROWSDOWN},
	} {
		a := addr(tc.field)
		var v *image.VMA
		for _, x := range task.VMAs {
			if x.Start <= a && a < x.End {
				v = x
			}
		}
		if v == nil {
			t.Errorf("no vma at %#x (%s)", a, tc.flag)
			continue
		}
		if !slices.Contains(v.VmFlags, tc.flag) {
			t.Errorf("vma %x-%x: VmFlags %q lack %q", v.Start, v.End, v.VmFlags, tc.flag)
		}
		if tc.madv >= 0 && v.Madv&(1<<tc.madv) == 0 {
			t.Errorf("vma %x-%x (%s): madvise bits %#x lack advice %d", v.Start, v.End, tc.flag, v.Madv, tc.madv)
		}
		if tc.mmap != 0 && v.Flags&uint32(tc.mmap) == 0 {
			t.Errorf("vma %x-%x (%s): flags %#x lack %#x", v.Start, v.End, tc.flag, v.Flags, tc.mmap)
		}
		if pages := pagesIn(v.Start, v.End); pages != 8 {
			t.Errorf("vma %x-%x (%s): %d pages in the image, want 8", v.Start, v.End, tc.flag, pages)
		}
	}
	w.finish(t)
}

// TestApplyVmFlagsChanged: smaps that no longer match the VMAs collected
// from maps fail the dump, naming the task, instead of giving a VMA
// another's flags.
func TestApplyVmFlagsChanged(t *testing.T) {
	root := t.TempDir()
	const pid = 4242
	if err := os.MkdirAll(filepath.Join(root, strconv.Itoa(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	smaps := "1000-3000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac dc \n" +
		"5000-6000 rw-p 00000000 00:00 0 \nVmFlags: rd wr mr mw me ac \n"
	if err := os.WriteFile(filepath.Join(root, strconv.Itoa(pid), "smaps"), []byte(smaps), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &dumper{fs: procfs.FS{Root: root}, vmFlags: make(map[int]*vmFlagsRead)}
	vma := func(start, end uint64) *image.VMA {
		v, err := classifyLine(procfs.Mapping{Start: start, End: end, Prot: unix.PROT_READ | unix.PROT_WRITE})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	same := &image.Task{PID: pid, VMAs: []*image.VMA{vma(0x1000, 0x3000), vma(0x5000, 0x6000)}}
	d.startVmFlags(same)
	if err := d.applyVmFlags(same); err != nil {
		t.Fatalf("matching smaps: %v", err)
	}
	if v := same.VMAs[0]; v.Madv != 1<<unix.MADV_DONTFORK || !slices.Contains(v.VmFlags, "dc") {
		t.Errorf("first vma: madvise %#x, VmFlags %q: want MADV_DONTFORK and dc", v.Madv, v.VmFlags)
	}
	if err := d.applyVmFlags(same); err != nil || same.VMAs[1].Madv != 0 {
		t.Errorf("second apply: %v, second vma madvise %#x", err, same.VMAs[1].Madv)
	}

	for _, tc := range []struct {
		name string
		vmas []*image.VMA
		want string
	}{
		{"moved", []*image.VMA{vma(0x1000, 0x3000), vma(0x5000, 0x7000)}, "smaps has vma 5000-6000 where maps had 5000-7000"},
		{"count", []*image.VMA{vma(0x1000, 0x3000)}, "smaps lists 2 vmas, maps listed 1"},
	} {
		task := &image.Task{PID: pid, VMAs: tc.vmas}
		d.startVmFlags(task)
		err := d.applyVmFlags(task)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "task 4242") {
			t.Errorf("%s: %v, want an error of task 4242 saying %q", tc.name, err, tc.want)
		}
	}
	d.waitVmFlags()
}

// TestDumpRefusesDeletedHugetlbfs: a mapping of a deleted file of a
// hugetlbfs mount, known as hugetlb only from its VmFlags ("ht"), which
// dump reads while the pages are copied, is refused by name (restore
// would make the file again where hugetlbfs takes no write), and the
// failed dump leaves the task running untouched with no image. (Anonymous
// hugetlb, memfds, SysV segments and hugetlbfs files are dumped: restore's
// TestRestoreHugetlb*, TestRestoreSysVShm.)
func TestDumpRefusesDeletedHugetlbfs(t *testing.T) {
	requireRoot(t)
	testproc.HugePages(t, 1)
	file := testproc.MountHugetlbfs(t)
	w := startWorkload(t, buildC(t, "hugetlb"), "file", file)
	requireRefusal(t, w, []int{w.pid(t, 1)}, "hugetlb mapping of a deleted file", fmt.Sprintf("vma %s-", w.fields[2]))
}

// TestDumpRefusesSecretmem: a task mapping memfd_secret memory is refused
// by name (its pages cannot be read, and would come back as an ordinary
// file), and left as it was.
func TestDumpRefusesSecretmem(t *testing.T) {
	requireRoot(t)
	fd, _, e := unix.Syscall(unix.SYS_MEMFD_SECRET, 0, 0, 0)
	if e != 0 {
		t.Skipf("no memfd_secret here: %v", e)
	}
	unix.Close(int(fd))
	w := startWorkload(t, buildC(t, "secretmem"))
	requireRefusal(t, w, []int{w.pid(t, 1)}, "memfd_secret", fmt.Sprintf("vma %s-", w.fields[2]))
}
