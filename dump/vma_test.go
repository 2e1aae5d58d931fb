package dump

import (
	"errors"
	"testing"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"golang.org/x/sys/unix"
)

func TestClassify(t *testing.T) {
	const anon = unix.MAP_ANONYMOUS
	tests := []struct {
		name   string
		m      procfs.Mapping
		kind   image.VMAKind
		flags  uint32
		madv   uint64
		refuse bool
		start  uint64 // when set, the mapping starts there instead
	}{
		{name: "heap", m: procfs.Mapping{Path: "[heap]"}, kind: image.KindHeap, flags: unix.MAP_PRIVATE | anon},
		{name: "stack", m: procfs.Mapping{Path: "[stack]", VmFlags: []string{"rd", "wr", "gd"}},
			kind: image.KindStack, flags: unix.MAP_PRIVATE | anon | unix.MAP_GROWSDOWN},
		{name: "vdso", m: procfs.Mapping{Path: "[vdso]"}, kind: image.KindVDSO, flags: unix.MAP_PRIVATE},
		{name: "vvar with io pf", m: procfs.Mapping{Path: "[vvar]", VmFlags: []string{"rd", "pf", "io"}},
			kind: image.KindVVAR, flags: unix.MAP_PRIVATE},
		{name: "vvar_vclock", m: procfs.Mapping{Path: "[vvar_vclock]"}, kind: image.KindVVARVclock, flags: unix.MAP_PRIVATE},
		{name: "vsyscall", m: procfs.Mapping{Path: "[vsyscall]"}, kind: image.KindVsyscall, flags: unix.MAP_PRIVATE},
		{name: "private anon", m: procfs.Mapping{VmFlags: []string{"nr", "dc", "dd", "hg", "wf"}},
			kind: image.KindPrivateAnon, flags: unix.MAP_PRIVATE | anon | unix.MAP_NORESERVE,
			madv: 1<<unix.MADV_DONTFORK | 1<<unix.MADV_DONTDUMP | 1<<unix.MADV_HUGEPAGE | 1<<unix.MADV_WIPEONFORK},
		{name: "named anon", m: procfs.Mapping{Path: "[anon:jit]", VmFlags: []string{"nh", "mg", "sr", "rr"}},
			kind: image.KindPrivateAnon, flags: unix.MAP_PRIVATE | anon,
			madv: 1<<unix.MADV_NOHUGEPAGE | 1<<unix.MADV_MERGEABLE | 1<<unix.MADV_SEQUENTIAL | 1<<unix.MADV_RANDOM},
		{name: "shared anon", m: procfs.Mapping{Shared: true, Ino: 7, Path: "/dev/zero (deleted)"},
			kind: image.KindSharedAnon, flags: unix.MAP_SHARED | anon},
		{name: "sysv", m: procfs.Mapping{Shared: true, Ino: 7, Path: "/SYSV00000000 (deleted)"},
			kind: image.KindSharedAnon, flags: unix.MAP_SHARED | anon},
		{name: "named shared anon", m: procfs.Mapping{Shared: true, Ino: 7, Path: "[anon_shmem:buf]"},
			kind: image.KindSharedAnon, flags: unix.MAP_SHARED | anon},
		{name: "memfd", m: procfs.Mapping{Shared: true, Ino: 9, Path: "/memfd:a b (deleted)"},
			kind: image.KindMemfd, flags: unix.MAP_SHARED},
		{name: "private file", m: procfs.Mapping{Ino: 3, Path: "/usr/lib/libc.so.6"},
			kind: image.KindPrivateFile, flags: unix.MAP_PRIVATE},
		{name: "private memfd", m: procfs.Mapping{Ino: 9, Path: "/memfd:x (deleted)"},
			kind: image.KindPrivateFile, flags: unix.MAP_PRIVATE},
		{name: "shared file", m: procfs.Mapping{Shared: true, Ino: 3, Path: "/data/f (deleted)"},
			kind: image.KindSharedFile, flags: unix.MAP_SHARED},
		{name: "aio ring", m: procfs.Mapping{Shared: true, Ino: 5, Path: "/[aio] (deleted)"}, kind: image.KindAIORing, flags: unix.MAP_SHARED},
		{name: "anon inode", m: procfs.Mapping{Ino: 5, Path: "anon_inode:[perf_event]"}, refuse: true},
		{name: "private hugetlb", m: procfs.Mapping{Ino: 4, Path: "/anon_hugepage (deleted)", VmFlags: []string{"rd", "wr", "ht"}, KernelPageSize: 2 << 20},
			kind: image.KindPrivateAnon, flags: unix.MAP_PRIVATE | anon | unix.MAP_HUGETLB | unix.MAP_HUGE_2MB},
		{name: "private hugetlb, 1 GiB pages", m: procfs.Mapping{Ino: 4, Path: "/anon_hugepage (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 1 << 30},
			kind: image.KindPrivateAnon, flags: unix.MAP_PRIVATE | anon | unix.MAP_HUGETLB | unix.MAP_HUGE_1GB},
		{name: "hugetlb of unknown page size", m: procfs.Mapping{Ino: 4, Path: "/anon_hugepage (deleted)", VmFlags: []string{"ht"}}, refuse: true},
		{name: "hugetlb not aligned to its pages", m: procfs.Mapping{Ino: 4, Path: "/anon_hugepage (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			refuse: true, start: 0x1000},
		{name: "shared hugetlb", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/anon_hugepage (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			kind: image.KindSharedAnon, flags: unix.MAP_SHARED | anon | unix.MAP_HUGETLB | unix.MAP_HUGE_2MB},
		{name: "hugetlb memfd", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/memfd:buf (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			kind: image.KindMemfd, flags: unix.MAP_SHARED | unix.MAP_HUGETLB | unix.MAP_HUGE_2MB},
		{name: "hugetlb SysV segment", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/SYSV00000000 (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			kind: image.KindSharedAnon, flags: unix.MAP_SHARED | anon | unix.MAP_HUGETLB | unix.MAP_HUGE_2MB},
		{name: "private hugetlbfs file", m: procfs.Mapping{Ino: 4, Path: "/dev/hugepages/buf", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			kind: image.KindPrivateFile, flags: unix.MAP_PRIVATE},
		{name: "shared hugetlbfs file", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/dev/hugepages/buf", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20},
			kind: image.KindSharedFile, flags: unix.MAP_SHARED},
		{name: "deleted hugetlbfs file", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/dev/hugepages/buf (deleted)", VmFlags: []string{"ht"}, KernelPageSize: 2 << 20}, refuse: true},
		{name: "uprobes", m: procfs.Mapping{Path: "[uprobes]"}, refuse: true},
		{name: "shadow stack", m: procfs.Mapping{VmFlags: []string{"rd", "ss"}}, refuse: true},
		{name: "shared without inode", m: procfs.Mapping{Shared: true}, refuse: true},
		{name: "device", m: procfs.Mapping{Shared: true, Ino: 4, Path: "/dev/fb0", VmFlags: []string{"io", "pf"}}, refuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.Start, tt.m.End = 1<<30, 1<<31 // aligned to every page size
			if tt.start != 0 {
				tt.m.Start = tt.start
			}
			v, err := classify(tt.m)
			if tt.refuse {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("got %+v, %v; want ErrUnsupported", v, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind != tt.kind || v.Flags != tt.flags || v.Madv != tt.madv || v.Name != tt.m.Path {
				t.Errorf("got kind %v flags %#x madv %#x name %q; want %v %#x %#x",
					v.Kind, v.Flags, v.Madv, v.Name, tt.kind, tt.flags, tt.madv)
			}
		})
	}
	if n := memfdName("/memfd:a b (deleted)"); n != "a b" {
		t.Errorf("memfdName = %q", n)
	}
}
