package shmem

import "testing"

func TestRegistryDedup(t *testing.T) {
	r := NewRegistry()
	a, isNew := r.Add(Key{Dev: 1, Ino: 10}, 8192, 0, 4096, false, "")
	if !isNew || a.ID != 1 || a.Size != 8192 {
		t.Fatalf("first add: %+v new=%v", a, isNew)
	}
	b, isNew := r.Add(Key{Dev: 1, Ino: 11}, 100, 0, 4096, true, "buf")
	if !isNew || b.ID != 2 || b.Size != 4096 || !b.Memfd || b.Name != "buf" {
		t.Fatalf("second add: %+v new=%v", b, isNew)
	}
	// Same inode from another VMA (another task, another offset).
	c, isNew := r.Add(Key{Dev: 1, Ino: 10}, 8192, 4096, 4096, false, "")
	if isNew || c != a {
		t.Fatalf("re-add gave %+v new=%v, want object 1", c, isNew)
	}
	// A mapping beyond st_size grows the object to fit.
	r.Add(Key{Dev: 1, Ino: 10}, 8192, 8192, 4096, false, "")
	if a.Size != 12288 {
		t.Fatalf("size %d, want 12288", a.Size)
	}
	objs := r.Objects()
	if len(objs) != 2 || objs[0].ID != 1 || objs[1].ID != 2 {
		t.Fatalf("objects %+v", objs)
	}
	if r.Lookup(Key{Dev: 1, Ino: 11}) != b || r.Lookup(Key{Dev: 2, Ino: 11}) != nil {
		t.Fatal("lookup")
	}
}
