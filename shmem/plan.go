package shmem

import (
	"errors"
	"fmt"

	"github.com/mmcr/mmcr/image"
)

// ErrBadTree wraps every inconsistency NewPlan finds between the VMAs and
// the shared objects of a tree.
var ErrBadTree = errors.New("shmem: inconsistent shared objects")

// Plan says, for every shared object of a dumped tree, who creates it at
// restore and how everybody else reaches it.
//
// The owner of an object is the first task in tree order that maps it, and
// its first VMA (by address) of the object is the owner VMA. The owner
// creates the object at full size and puts the owner VMA in place; every
// other VMA of the object, in the owner or in a later task, is made by
// opening /proc/OWNER/map_files/START-END of the owner VMA and mapping it
// MAP_SHARED at its own address and offset. Restore handles tasks in tree
// order, so the owner VMA always exists before it is reopened.
//
// (restore follows the plan for MAP_SHARED|MAP_ANONYMOUS objects; memfd
// objects it creates in mmcr itself, since a memfd may also be mapped
// MAP_PRIVATE or held as an fd before its owner VMA exists.)
type Plan struct {
	objects map[uint32]*Object
}

// Object is the restore plan of one shared object.
type Object struct {
	Shm *image.SharedObject
	// OwnerPID is the task that creates the object; OwnerVMA is the VMA
	// of OwnerPID that is created first and that everybody else reopens.
	OwnerPID int
	OwnerVMA *image.VMA
}

// MapFilesPath is the path every non-owner VMA opens to reach the object.
func (o *Object) MapFilesPath() string {
	return fmt.Sprintf("/proc/%d/map_files/%x-%x", o.OwnerPID, o.OwnerVMA.Start, o.OwnerVMA.End)
}

// NewPlan computes the plan of tree. Every shared VMA must name an existing
// shared object and stay inside it; shared objects nobody maps are ignored.
func NewPlan(tree *image.Tree) (*Plan, error) {
	p := &Plan{objects: make(map[uint32]*Object)}
	for _, t := range tree.Tasks {
		for _, v := range t.VMAs {
			if v.Kind != image.KindSharedAnon && v.Kind != image.KindMemfd {
				continue
			}
			shm := tree.SharedObjectByID(v.ShmID)
			if shm == nil {
				return nil, fmt.Errorf("%w: task %d vma %#x-%#x: no shared object %d", ErrBadTree, t.PID, v.Start, v.End, v.ShmID)
			}
			if (v.Kind == image.KindMemfd) != shm.Memfd {
				return nil, fmt.Errorf("%w: task %d vma %#x-%#x is %s but object %d memfd=%v", ErrBadTree, t.PID, v.Start, v.End, v.Kind, shm.ID, shm.Memfd)
			}
			if v.Pgoff%image.PageSize != 0 || v.Pgoff+v.Len() > roundUp(shm.Size) {
				return nil, fmt.Errorf("%w: task %d vma %#x-%#x maps [%#x, %#x) of object %d of size %#x", ErrBadTree, t.PID, v.Start, v.End, v.Pgoff, v.Pgoff+v.Len(), shm.ID, shm.Size)
			}
			if _, ok := p.objects[shm.ID]; !ok {
				// Tasks come in tree order and VMAs sorted by address: the first seen is the owner.
				p.objects[shm.ID] = &Object{Shm: shm, OwnerPID: t.PID, OwnerVMA: v}
			}
		}
	}
	return p, nil
}

// Object returns the plan of shared object id, or nil when no VMA maps it.
func (p *Plan) Object(id uint32) *Object { return p.objects[id] }

// IsOwner says whether vma of task pid is the one that creates its object.
func (p *Plan) IsOwner(pid int, vma *image.VMA) bool {
	o := p.objects[vma.ShmID]
	return o != nil && o.OwnerPID == pid && o.OwnerVMA == vma
}

// Len is the number of shared objects in use.
func (p *Plan) Len() int { return len(p.objects) }

func roundUp(n uint64) uint64 { return (n + image.PageSize - 1) &^ (image.PageSize - 1) }
