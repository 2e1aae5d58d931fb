package dump

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"golang.org/x/sys/unix"
)

// madvByFlag maps smaps VmFlags to the madvise advice restore reapplies
// (bit N of VMA.Madv = advice N).
var madvByFlag = map[string]uint{
	"dc": unix.MADV_DONTFORK,
	"dd": unix.MADV_DONTDUMP,
	"hg": unix.MADV_HUGEPAGE,
	"nh": unix.MADV_NOHUGEPAGE,
	"mg": unix.MADV_MERGEABLE,
	"wf": unix.MADV_WIPEONFORK,
	"sr": unix.MADV_SEQUENTIAL,
	"rr": unix.MADV_RANDOM,
}

const deletedSuffix = " (deleted)"

// hugetlbAnonPath is what maps shows for an anonymous hugetlb mapping.
const hugetlbAnonPath = "/anon_hugepage" + deletedSuffix

// aioRingPath is what maps shows for the ring of an AIO context.
const aioRingPath = "/[aio]" + deletedSuffix

// classify turns one smaps entry into a VMA with its kind, flags and
// madvise bits. FileID and ShmID are left for the caller, which resolves
// the map_files link. It refuses mappings restore cannot recreate.
func classify(m procfs.Mapping) (*image.VMA, error) {
	v, err := classifyLine(m)
	if err != nil {
		return nil, err
	}
	if err := applyVmFlags(v, m.VmFlags, m.KernelPageSize); err != nil {
		return nil, err
	}
	return v, nil
}

// classifyLine is classify from what a line of /proc/PID/maps says: the
// kind, protection and MAP_SHARED or MAP_PRIVATE. The rest comes from
// smaps' VmFlags (applyVmFlags), whose page walk dump leaves for later.
func classifyLine(m procfs.Mapping) (*image.VMA, error) {
	v := &image.VMA{
		Start: m.Start,
		End:   m.End,
		Pgoff: m.Pgoff,
		Prot:  m.Prot,
		Name:  m.Path,
	}
	p := m.Path
	switch {
	case p == "[heap]":
		v.Kind = image.KindHeap
	case p == "[stack]":
		v.Kind = image.KindStack
	case p == "[vdso]":
		v.Kind = image.KindVDSO
	case p == "[vvar]":
		v.Kind = image.KindVVAR
	case p == "[vvar_vclock]":
		v.Kind = image.KindVVARVclock
	case p == "[vsyscall]":
		v.Kind = image.KindVsyscall
	case m.Shared && (p == "/dev/zero"+deletedSuffix || strings.HasPrefix(p, "/SYSV") ||
		strings.HasPrefix(p, "[anon_shmem:")):
		v.Kind = image.KindSharedAnon
	case m.Shared && strings.HasPrefix(p, "/memfd:"):
		v.Kind = image.KindMemfd
	case m.Shared && p == aioRingPath:
		// An AIO context's ring (io_setup): restore makes the context
		// again and puts its ring here (Mm.AIORings, collectAIORings).
		v.Kind = image.KindAIORing
	case p == hugetlbAnonPath:
		// MAP_ANONYMOUS|MAP_HUGETLB: the kernel backs it with a hugetlbfs
		// file of that name; private, its pages are private anonymous
		// ones, shared, the file is the shared object. The page size
		// comes with the VmFlags.
		v.Kind = image.KindPrivateAnon
		if m.Shared {
			v.Kind = image.KindSharedAnon
		}
		v.Flags = unix.MAP_HUGETLB
	case m.Ino != 0 && strings.HasPrefix(p, "/"):
		v.Kind = image.KindPrivateFile
		if m.Shared {
			v.Kind = image.KindSharedFile
		}
	case m.Ino != 0 || (p != "" && !strings.HasPrefix(p, "[anon:")):
		// anon_inode:[perf_event], [uprobes], io_uring rings, DRM buffers...
		return nil, fmt.Errorf("vma %x-%x (%s): %w", m.Start, m.End, p, ErrUnsupported)
	case m.Shared:
		return nil, fmt.Errorf("vma %x-%x: shared mapping without a backing inode: %w", m.Start, m.End, ErrUnsupported)
	default:
		v.Kind = image.KindPrivateAnon
	}

	if m.Shared {
		v.Flags |= unix.MAP_SHARED
	} else {
		v.Flags |= unix.MAP_PRIVATE
	}
	switch v.Kind {
	case image.KindPrivateAnon, image.KindSharedAnon, image.KindHeap, image.KindStack:
		v.Flags |= unix.MAP_ANONYMOUS
	}
	return v, nil
}

// applyVmFlags records smaps' VmFlags of v (which classifyLine made) and
// what restore derives from them: MAP_GROWSDOWN, MAP_NORESERVE, the
// madvise advice and, for anonymous hugetlb, the size of its pages
// (smaps' KernelPageSize, pageSize) in MAP_HUGE_* bits. It refuses
// mappings of deleted hugetlbfs files, device and PFN mappings.
func applyVmFlags(v *image.VMA, flags []string, pageSize uint64) error {
	v.VmFlags = append([]string(nil), flags...)
	for _, f := range flags {
		switch f {
		case "gd":
			v.Flags |= unix.MAP_GROWSDOWN
		case "nr":
			v.Flags |= unix.MAP_NORESERVE
		}
		if adv, ok := madvByFlag[f]; ok {
			v.Madv |= 1 << adv
		}
	}
	if hasFlag(flags, "ht") {
		switch {
		case (v.Kind == image.KindSharedFile || v.Kind == image.KindPrivateFile) && !strings.HasSuffix(v.Name, deletedSuffix):
			// A file of a hugetlbfs mount: like any file, its data stays
			// in the file, which restore maps again; a private mapping's
			// copied-on-write pages are dumped as any private file
			// mapping's.
			return nil
		case v.Kind == image.KindMemfd || v.Kind == image.KindSharedAnon && strings.HasPrefix(v.Name, "/SYSV"):
			// A hugetlb memfd (MFD_HUGETLB) or SysV segment (SHM_HUGETLB):
			// the flags tell its object's page size (hugetlbObjects);
			// restore's mmap or shmat of it does without them.
			v.Flags |= unix.MAP_HUGETLB
		case v.Flags&unix.MAP_HUGETLB == 0:
			return fmt.Errorf("vma %x-%x (%s): hugetlb mapping of a deleted file: %w",
				v.Start, v.End, v.Name, ErrUnsupported)
		}
		shift := bits.TrailingZeros64(pageSize)
		if pageSize <= image.PageSize || pageSize&(pageSize-1) != 0 || v.Start%pageSize != 0 || v.End%pageSize != 0 {
			return fmt.Errorf("vma %x-%x: hugetlb mapping of %d-byte pages: %w", v.Start, v.End, pageSize, ErrUnsupported)
		}
		v.Flags |= uint32(shift) << unix.MAP_HUGE_SHIFT
	}
	if hasFlag(flags, "um") || hasFlag(flags, "uw") || hasFlag(flags, "ui") {
		// Registered with a userfaultfd (one in the tree is refused with
		// the fds): its faults go to a monitor that cannot come back with
		// the task, and restored as plain memory its missing pages would
		// read as zeros instead of what the monitor supplies.
		return fmt.Errorf("vma %x-%x: registered with a userfaultfd (its monitor cannot be restored): %w",
			v.Start, v.End, ErrUnsupported)
	}
	if hasFlag(flags, "ss") {
		// The CPU checks returns against it: restore would have to map it
		// as a shadow stack (map_shadow_stack) and set the threads' SSP.
		return fmt.Errorf("vma %x-%x: shadow stack (CET): %w", v.Start, v.End, ErrUnsupported)
	}
	if !special(v.Kind) && (hasFlag(flags, "io") || hasFlag(flags, "pf")) {
		return fmt.Errorf("vma %x-%x (%s): device or PFN mapping: %w", v.Start, v.End, v.Name, ErrUnsupported)
	}
	return nil
}

// memfdName returns NAME of "/memfd:NAME (deleted)".
func memfdName(path string) string {
	return strings.TrimSuffix(strings.TrimPrefix(path, "/memfd:"), deletedSuffix)
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// special reports kinds the kernel provides: never dumped page by page.
func special(k image.VMAKind) bool {
	switch k {
	case image.KindVDSO, image.KindVVAR, image.KindVVARVclock, image.KindVsyscall:
		return true
	}
	return false
}
