package restore

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// A child keeps its fork's copy of a private file mapping of its parent:
// pages the parent wrote after the fork are dropped in the child (the file
// shows through again), pages the child wrote are its own, down a
// three-level tree.
func TestRestoreKeepsForkedFileMappings(t *testing.T) {
	needRoot(t)
	bin := buildC(t, "filefork")
	d := dumpWorkload(t, false, bin, filepath.Join(t.TempDir(), "ff.dat"))
	if len(d.tree.Tasks) != 3 {
		t.Fatalf("%d tasks dumped, want 3", len(d.tree.Tasks))
	}
	// Every task but the root keeps its file mappings from its parent.
	tasks := make(map[int]*task)
	for _, it := range d.tree.Tasks {
		tasks[it.PID] = &task{t: it, parent: tasks[it.PPID]}
	}
	rs := &restorer{}
	for _, it := range d.tree.Tasks[1:] {
		tk := tasks[it.PID]
		kept := rs.forkKept(tk)
		n := 0
		for i, v := range it.VMAs {
			if v.Kind == image.KindPrivateFile && strings.HasSuffix(v.Name, "ff.dat") {
				n++
				if !kept[i] {
					t.Errorf("task %d: %#x-%#x %s not kept from the parent", it.PID, v.Start, v.End, v.Name)
				}
			}
		}
		if n != 2 {
			t.Errorf("task %d: %d mappings of ff.dat, want 2", it.PID, n)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

func TestForkKeeps(t *testing.T) {
	p := &image.VMA{Start: 0x1000, End: 0x5000, Pgoff: 0x2000, Prot: unix.PROT_READ | unix.PROT_WRITE,
		Flags: unix.MAP_SHARED, Kind: image.KindSharedAnon, ShmID: 3, Name: "/dev/zero (deleted)",
		VmFlags: []string{"rd", "wr", "sh", "mr", "mw", "me", "ms"}}
	same := func() *image.VMA { v := *p; v.VmFlags = append([]string(nil), p.VmFlags...); return &v }
	if !forkKeeps(p, same()) {
		t.Errorf("identical shared VMA not kept")
	}
	locked := same()
	locked.VmFlags = append(locked.VmFlags, "lo")
	if !forkKeeps(p, locked) {
		t.Errorf("VMA locked in the child only not kept (fork drops mlock, restore locks it again)")
	}
	for name, change := range map[string]func(v *image.VMA){
		"range":       func(v *image.VMA) { v.End = 0x4000 },
		"offset":      func(v *image.VMA) { v.Pgoff = 0 },
		"protection":  func(v *image.VMA) { v.Prot = unix.PROT_READ },
		"object":      func(v *image.VMA) { v.ShmID = 4 },
		"advice":      func(v *image.VMA) { v.Madv = 1 << unix.MADV_HUGEPAGE },
		"dontfork":    func(v *image.VMA) { v.Madv = 1 << unix.MADV_DONTFORK },
		"vmflags":     func(v *image.VMA) { v.VmFlags = v.VmFlags[:6] },
		"private":     func(v *image.VMA) { v.Kind, v.Flags = image.KindPrivateAnon, unix.MAP_PRIVATE },
		"file kind":   func(v *image.VMA) { v.Kind = image.KindSharedFile },
		"mapped file": func(v *image.VMA) { v.FileID = 2 },
	} {
		v := same()
		change(v)
		if forkKeeps(p, v) {
			t.Errorf("%s differs: kept", name)
		}
	}
}

func TestFileZaps(t *testing.T) {
	const pg = image.PageSize
	v := &image.VMA{Start: 10 * pg, End: 20 * pg, Kind: image.KindPrivateFile}
	parent := []image.PageRun{
		{Addr: 8 * pg, Len: 4 * pg},  // 8-12: 10-12 inside v
		{Addr: 14 * pg, Len: 3 * pg}, // 14-17
		{Addr: 19 * pg, Len: 3 * pg}, // 19-22: 19-20 inside v
	}
	own := []image.PageRun{
		{Addr: 15 * pg, Len: pg},     // 15
		{Addr: 11 * pg, Len: 2 * pg}, // 11-13, not sorted
		{Addr: 15 * pg, Len: 2 * pg}, // overlapping
	}
	got := fileZaps(v, parent, own)
	want := []span{{10 * pg, 11 * pg}, {14 * pg, 15 * pg}, {19 * pg, 20 * pg}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fileZaps = %v, want %v", got, want)
	}
	if got := fileZaps(v, nil, own); len(got) != 0 {
		t.Errorf("fileZaps without parent pages = %v, want none", got)
	}
}
