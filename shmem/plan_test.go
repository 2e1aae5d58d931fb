package shmem

import (
	"errors"
	"testing"

	"github.com/mmcr/mmcr/image"
)

func vma(start, end, pgoff uint64, kind image.VMAKind, shm uint32) *image.VMA {
	return &image.VMA{Start: start, End: end, Pgoff: pgoff, Kind: kind, ShmID: shm}
}

func TestPlanOwnerIsFirstInTreeOrder(t *testing.T) {
	a1 := vma(0x10000, 0x12000, 0x1000, image.KindSharedAnon, 1)
	a2 := vma(0x20000, 0x21000, 0, image.KindSharedAnon, 1)
	b1 := vma(0x8000, 0x9000, 0, image.KindSharedAnon, 1)
	m1 := vma(0x30000, 0x31000, 0, image.KindMemfd, 2)
	tree := &image.Tree{
		Tasks: []*image.Task{
			{PID: 100, VMAs: []*image.VMA{vma(0x1000, 0x2000, 0, image.KindPrivateAnon, 0), a1, a2}},
			{PID: 50, PPID: 100, VMAs: []*image.VMA{b1, m1}},
		},
		SharedObjects: []*image.SharedObject{
			{ID: 1, Size: 0x3000},
			{ID: 2, Size: 0x1000, Memfd: true, Name: "x"},
			{ID: 3, Size: 0x1000}, // nobody maps it
		},
	}
	p, err := NewPlan(tree)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 2 {
		t.Fatalf("Len = %d, want 2", p.Len())
	}
	o := p.Object(1)
	if o.OwnerPID != 100 || o.OwnerVMA != a1 {
		t.Fatalf("object 1 owner = %d %+v, want 100 a1", o.OwnerPID, o.OwnerVMA)
	}
	if got, want := o.MapFilesPath(), "/proc/100/map_files/10000-12000"; got != want {
		t.Fatalf("path = %q, want %q", got, want)
	}
	if !p.IsOwner(100, a1) || p.IsOwner(100, a2) || p.IsOwner(50, b1) {
		t.Fatal("IsOwner wrong")
	}
	if o := p.Object(2); o.OwnerPID != 50 || o.OwnerVMA != m1 {
		t.Fatalf("object 2 owner = %d", o.OwnerPID)
	}
	if p.Object(3) != nil {
		t.Fatal("unused object 3 has a plan")
	}
}

func TestPlanRejectsBadVMAs(t *testing.T) {
	cases := map[string]*image.Tree{
		"missing object": {Tasks: []*image.Task{{PID: 1, VMAs: []*image.VMA{vma(0x1000, 0x2000, 0, image.KindSharedAnon, 7)}}}},
		"beyond size": {
			Tasks:         []*image.Task{{PID: 1, VMAs: []*image.VMA{vma(0x1000, 0x3000, 0x1000, image.KindSharedAnon, 1)}}},
			SharedObjects: []*image.SharedObject{{ID: 1, Size: 0x2000}},
		},
		"kind mismatch": {
			Tasks:         []*image.Task{{PID: 1, VMAs: []*image.VMA{vma(0x1000, 0x2000, 0, image.KindMemfd, 1)}}},
			SharedObjects: []*image.SharedObject{{ID: 1, Size: 0x1000}},
		},
	}
	for name, tree := range cases {
		if _, err := NewPlan(tree); !errors.Is(err, ErrBadTree) {
			t.Errorf("%s: err = %v, want ErrBadTree", name, err)
		}
	}
}

func TestPlanUnalignedSizeRoundsUp(t *testing.T) {
	tree := &image.Tree{
		Tasks:         []*image.Task{{PID: 1, VMAs: []*image.VMA{vma(0x1000, 0x2000, 0, image.KindMemfd, 1)}}},
		SharedObjects: []*image.SharedObject{{ID: 1, Size: 10, Memfd: true}},
	}
	if _, err := NewPlan(tree); err != nil {
		t.Fatal(err)
	}
}
