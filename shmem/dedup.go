// Package shmem handles shared anonymous memory objects (MAP_SHARED
// anonymous mappings, SysV segments and memfds): at dump, Registry finds
// one object per shmem inode across every VMA of every task; at restore,
// the plan decides which task creates each object and which reopen it.
package shmem

import (
	"github.com/mmcr/mmcr/image"
)

// Key identifies a shmem inode: two VMAs share memory iff their
// /proc/PID/map_files links stat to the same Key.
type Key struct {
	Dev, Ino uint64
}

// Registry assigns one image.SharedObject to each shmem inode met during a
// dump. IDs are dense from 1 in the order inodes are first seen, which is
// tree order when the dumper walks tasks and VMAs in order. Not safe for
// concurrent use.
type Registry struct {
	objects []*image.SharedObject
	byKey   map[Key]*image.SharedObject
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byKey: make(map[Key]*image.SharedObject)}
}

// Add records that a VMA maps [pgoff, pgoff+length) of the shmem inode k
// whose st_size is size, and returns its object and whether it was new.
//
// The object's Size is the largest of every st_size seen and of every
// mapped extent, rounded up to a page: restore creates the object at that
// size and places each VMA inside it, which needs every extent to fit even
// when a memfd was truncated below a live mapping.
func (r *Registry) Add(k Key, size, pgoff, length uint64, memfd bool, name string) (*image.SharedObject, bool) {
	need := max(size, pgoff+length)
	need = (need + image.PageSize - 1) &^ (image.PageSize - 1)
	if o, ok := r.byKey[k]; ok {
		o.Size = max(o.Size, need)
		return o, false
	}
	o := &image.SharedObject{
		ID:    uint32(len(r.objects) + 1),
		Dev:   k.Dev,
		Ino:   k.Ino,
		Size:  need,
		Memfd: memfd,
		Name:  name,
	}
	r.objects = append(r.objects, o)
	r.byKey[k] = o
	return o, true
}

// Lookup returns the object of inode k, or nil.
func (r *Registry) Lookup(k Key) *image.SharedObject { return r.byKey[k] }

// Objects returns every object, ordered by ID (Objects()[i].ID == i+1).
func (r *Registry) Objects() []*image.SharedObject { return r.objects }
