package image

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hugetlbTree is sampleTree whose root's [anon:buf] VMA is private
// anonymous hugetlb memory of 2 MiB pages.
func hugetlbTree(t *testing.T) (*Tree, *VMA) {
	tree := sampleTree()
	for _, v := range tree.Tasks[0].VMAs {
		if v.Name == "[anon:buf]" {
			v.End = v.Start + 2<<20
			v.Flags |= unix.MAP_HUGETLB | unix.MAP_HUGE_2MB
			v.Name = "/anon_hugepage (deleted)"
			return tree, v
		}
	}
	t.Fatal("sampleTree has no [anon:buf] VMA")
	return nil, nil
}

func TestHugetlbRoundTrip(t *testing.T) {
	tree, want := hugetlbTree(t)
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	r, got := openTree(t, dir)
	var v *VMA
	for _, x := range got.Tasks[0].VMAs {
		if x.Start == want.Start {
			v = x
		}
	}
	if v == nil || v.HugePageSize() != 2<<20 || v.Flags != want.Flags {
		t.Fatalf("hugetlb VMA came back as %+v", v)
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range sum.Tasks[0].VMAs {
		if vs.Start == want.Start && vs.HugePageSize != 2<<20 {
			t.Errorf("summary: huge page size %d, want 2 MiB", vs.HugePageSize)
		}
	}
}

func TestHugetlbRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(v *VMA)
		msg  string
	}{
		{"not aligned to its pages", func(v *VMA) { v.End = v.Start + 1<<20 }, "not aligned"},
		{"no page size", func(v *VMA) { v.Flags &^= unix.MAP_HUGE_MASK << unix.MAP_HUGE_SHIFT }, "hugetlb flags"},
		{"on a stack", func(v *VMA) { v.Kind = KindStack }, "hugetlb flags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, v := hugetlbTree(t)
			tc.edit(v)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("commit: got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

// TestSharedHugetlbChecks: a shared hugetlb VMA and its object must agree
// on the page size, and only anonymous objects of a whole number of pages
// may have one.
func TestSharedHugetlbChecks(t *testing.T) {
	obj := &SharedObject{ID: 1, Size: 4 << 20, HugePageSize: 2 << 20}
	huge := &VMA{Start: 0x40000000, End: 0x40200000, Pgoff: 2 << 20, Kind: KindSharedAnon, ShmID: 1,
		Flags: unix.MAP_SHARED | unix.MAP_ANONYMOUS | unix.MAP_HUGETLB | unix.MAP_HUGE_2MB}
	if err := checkSharedHugetlb(obj); err != nil {
		t.Fatal(err)
	}
	if err := checkHugetlb(huge, obj); err != nil {
		t.Fatal(err)
	}
	plain := *huge
	plain.Flags = unix.MAP_SHARED | unix.MAP_ANONYMOUS
	if err := checkHugetlb(&plain, obj); err == nil {
		t.Error("a VMA without hugetlb flags on a hugetlb object passed")
	}
	if err := checkHugetlb(huge, &SharedObject{ID: 1, Size: 4 << 20}); err == nil {
		t.Error("a hugetlb VMA on a shmem object passed")
	}
	odd := *huge
	odd.Pgoff = 4096
	if err := checkHugetlb(&odd, obj); err == nil {
		t.Error("a hugetlb VMA at an unaligned offset passed")
	}
	for _, bad := range []*SharedObject{
		{ID: 1, Size: 3 << 20, HugePageSize: 2 << 20},
		{ID: 1, Size: 2 << 20, HugePageSize: 3 << 20},
	} {
		if err := checkSharedHugetlb(bad); err == nil {
			t.Errorf("object %+v passed", *bad)
		}
	}
}
