package restore

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/testproc"
)

// TestRestoreHugetlb dumps a parent with anonymous hugetlb memory (one
// 2 MiB page, one 4 KiB part of it zero), private or shared, or a hugetlb
// memfd's, and a child sharing it (copy-on-write when private), and
// checks each restored task
// has the data in a hugetlb mapping of 2 MiB pages again, shared with the
// other or not as before.
func TestRestoreHugetlb(t *testing.T) {
	bin := hugetlbBin(t, 2) // the private one's copy-on-write takes a second page
	for _, tc := range []struct {
		mode string
		kind image.VMAKind
	}{{"private", image.KindPrivateAnon}, {"shared", image.KindSharedAnon}, {"memfd", image.KindMemfd}} {
		t.Run(tc.mode, func(t *testing.T) {
			d := dumpWorkload(t, false, bin, tc.mode)
			var huge []*image.VMA
			for _, v := range d.tree.Tasks[0].VMAs {
				if v.HugePageSize() != 0 {
					huge = append(huge, v)
				}
			}
			if len(huge) != 1 || huge[0].HugePageSize() != 2<<20 || huge[0].Kind != tc.kind {
				t.Errorf("the parent's hugetlb VMAs: %+v, want one %s VMA of 2 MiB pages", huge, tc.kind)
			}
			if tc.kind != image.KindPrivateAnon && len(huge) == 1 {
				if so := d.tree.SharedObjectByID(huge[0].ShmID); so == nil || so.HugePageSize != 2<<20 {
					t.Errorf("shared object of %#x: %+v, want one of 2 MiB pages", huge[0].Start, so)
				}
			}
			code, out := restoreDumped(t, d)
			if code != 0 || !strings.Contains(out, "PASS") {
				t.Fatalf("restored workload: exit %d, output %q", code, out)
			}
		})
	}
}

// TestRestoreHugetlbShortPool restores a dumped hugetlb tree after the
// huge page pool was emptied: the restore fails naming the mapping and the
// pages it needs, and leaves no task behind.
func TestRestoreHugetlbShortPool(t *testing.T) {
	bin := hugetlbBin(t, 2)
	const knob = "/proc/sys/vm/nr_hugepages"
	for _, mode := range []string{"private", "shared", "memfd"} {
		t.Run(mode, func(t *testing.T) {
			d := dumpWorkload(t, false, bin, mode)
			waitGone(t, d.pids)
			old, err := os.ReadFile(knob)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(knob, old, 0) })
			if err := os.WriteFile(knob, []byte("0"), 0); err != nil {
				t.Skipf("cannot empty the pool: %v", err)
			}
			_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
			if err == nil {
				for _, pid := range d.pids { // restored after all: not to be left running
					unix.Kill(pid, unix.SIGKILL)
				}
				waitGone(t, d.pids)
			}
			if err == nil || !strings.Contains(err.Error(), "free huge pages of 2048 KiB needed") {
				t.Fatalf("restore with no huge page: %v, want an error naming the huge pages needed", err)
			}
			waitGone(t, d.pids)
		})
	}
}

// TestRestoreHugetlbfsFile dumps a parent with a mapping of a file of a
// hugetlbfs mount and a child sharing it, and checks the restored tasks map
// the file again with its data, hugetlb pages: shared, or private with the
// pages they had copied on write.
func TestRestoreHugetlbfsFile(t *testing.T) {
	bin := hugetlbBin(t, 2) // the private one's copy-on-write takes a second page
	for _, tc := range []struct {
		mode string
		kind image.VMAKind
	}{{"file", image.KindSharedFile}, {"privfile", image.KindPrivateFile}} {
		t.Run(tc.mode, func(t *testing.T) {
			hugetlbfsFile(t, bin, tc.mode, tc.kind)
		})
	}
}

func hugetlbfsFile(t *testing.T, bin, mode string, kind image.VMAKind) {
	file := testproc.MountHugetlbfs(t)
	d := dumpWorkload(t, false, bin, mode, file)
	found := false
	for _, v := range d.tree.Tasks[0].VMAs {
		if f := d.tree.FileByID(v.FileID); v.Kind == kind && f != nil && f.Path == file {
			found = true
		}
	}
	if !found {
		t.Errorf("the parent's image has no %s mapping of %s", kind, file)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
