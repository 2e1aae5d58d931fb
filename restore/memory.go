package restore

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/internal/rawio"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
)

const (
	archMapVDSO64 = 0x2003 // arch_prctl ARCH_MAP_VDSO_64
	prSetMM       = 35
	prSetMMMap    = 14
	prctlMmMapLen = 11*8 + 8 + 4 + 4   // struct prctl_mm_map: 11 addresses, auxv pointer, auxv_size, exe_fd
	atFDCWD       = 0xffffffffffffff9c // AT_FDCWD (-100) as a syscall argument
)

// restoreMemory replaces tk's stub address space with the dumped one:
// vdso moved, every VMA and shared object created, pages written, mm
// fields set. b may hold syscalls to run first (a new session); plain
// mappings, closes, page drops and the mm fields go in the same batch,
// so a child that inherits most of its memory costs one round trip here.
func (rs *restorer) restoreMemory(tk *task, b *batch) error {
	pid := tk.t.PID
	maps, err := procfs.Default.Maps(pid)
	if err != nil {
		return fmt.Errorf("read maps of %d: %w", pid, err)
	}
	// A child starts as a fork of its restored parent: it keeps the VMAs
	// it inherits (FromParent, forkKept), everything else of the parent
	// goes.
	tk.kept = rs.forkKept(tk)
	var keep []span
	for i, v := range tk.t.VMAs {
		if v.FromParent || tk.kept[i] {
			keep = append(keep, span{v.Start, v.End})
		}
	}
	var vdso span // the stub's [vvar][vvar_vclock][vdso] block
	for _, m := range maps {
		switch {
		case m.Start < rs.area+restorerSize && rs.area < m.End:
			continue
		case isVDSOName(m.Path):
			vdso = vdso.union(span{m.Start, m.End})
			continue
		case m.Path == "[vsyscall]":
			continue
		}
		for _, p := range subtractSpans(span{m.Start, m.End}, keep) {
			b.add(fmt.Sprintf("unmap inherited mapping %#x-%#x %s", p.start, p.end, m.Path), unix.SYS_MUNMAP, p.start, p.len())
		}
	}
	// A fork finds the vdso where its parent has it, mostly where the dump
	// had it too: nothing to move, nothing to wait for.
	if want := tk.vdsoBlock(); vdso != want {
		if err := rs.runBatch(tk, b); err != nil {
			return err
		}
		if err := rs.moveVDSO(tk, vdso, want); err != nil {
			return err
		}
	}
	fds := make(map[uint32]uint64) // file ID -> remote fd, for this task
	defer func() {
		for _, fd := range fds {
			tk.r.Syscall(unix.SYS_CLOSE, fd)
		}
	}()
	for i, v := range tk.t.VMAs {
		if tk.kept[i] {
			continue
		}
		if i > 0 && keepApart(tk.t.VMAs[i-1], v) {
			if err := rs.runBatch(tk, b); err != nil {
				return err
			}
			if err := rs.mapApart(tk, v); err != nil {
				return fmt.Errorf("task %d vma %#x-%#x %s: %w", pid, v.Start, v.End, v.Kind, err)
			}
			continue
		}
		if err := rs.mapVMA(tk, v, fds, b); err != nil {
			return fmt.Errorf("task %d vma %#x-%#x %s %s: %w", pid, v.Start, v.End, v.Kind, v.Name, err)
		}
	}
	for _, fd := range fds {
		b.add("close mapped file", unix.SYS_CLOSE, fd)
	}
	clear(fds)
	for i, v := range tk.t.VMAs {
		if v.Madv != 0 && !tk.kept[i] { // a kept VMA has its parent's advice, the same
			if err := rs.runBatch(tk, b); err != nil {
				return err
			}
			rs.madvise(tk, v)
		}
	}
	if err := rs.rangePolicies(tk, b); err != nil {
		return err
	}
	if err := rs.setMm(tk, b); err != nil {
		return err
	}
	rs.addGuards(tk, b)
	if err := rs.writePages(tk, b); err != nil {
		return err
	}
	if err := rs.restoreAIO(tk); err != nil {
		return err
	}
	// Locked VMAs ("lo") are locked again once they hold their pages;
	// those locked on fault ("lf", mlock2 MLOCK_ONFAULT) keep only the
	// pages they have locked, not all of the range populated.
	for _, v := range tk.t.VMAs {
		if slices.Contains(v.VmFlags, "lo") {
			nr, args := uintptr(unix.SYS_MLOCK), []uint64{v.Start, v.Len()}
			if slices.Contains(v.VmFlags, "lf") {
				nr, args = unix.SYS_MLOCK2, append(args, unix.MLOCK_ONFAULT)
			}
			if _, err := tk.sys(nr, args...); err != nil {
				rs.log.Warn("mlock not restored", "pid", pid, "vma", fmt.Sprintf("%#x-%#x", v.Start, v.End), "err", err)
			}
		}
	}
	// A fork inherits the THP-disable flags of its parent.
	m := &tk.t.Mm
	thpOff := func(m *image.Mm) bool { return m.THPDisabled || m.THPExceptAdvised }
	if thpOff(m) || (tk.parent != nil && thpOff(&tk.parent.t.Mm)) {
		var v, flags uint64
		switch {
		case m.THPExceptAdvised:
			v, flags = 1, unix.PR_THP_DISABLE_EXCEPT_ADVISED
		case m.THPDisabled:
			v = 1
		}
		if _, err := tk.sys(unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, v, flags, 0, 0); err != nil {
			rs.log.Warn("THP disable not restored", "pid", tk.t.PID, "err", err)
		}
	}
	return nil
}

// addGuards adds to b the installs of tk's guard regions, which the dump
// stored no page in, and before them the removal of the guard markers a
// child's fork copied from its parent into the VMAs it keeps or inherits
// where the child had none at dump: writePages, which runs b first, could
// not write the child's own pages there. Both come before mlock, which
// the kernel refuses to combine with a guard install.
func (rs *restorer) addGuards(tk *task, b *batch) {
	if tk.parent != nil {
		var inherited []span
		for i, v := range tk.t.VMAs {
			if v.FromParent || tk.kept[i] {
				inherited = append(inherited, span{v.Start, v.End})
			}
		}
		var own []span
		for _, g := range tk.t.Guards {
			own = append(own, span{g.Start, g.End})
		}
		for _, g := range tk.parent.t.Guards {
			for _, in := range inherited {
				s := span{max(g.Start, in.start), min(g.End, in.end)}
				if s.start >= s.end {
					continue
				}
				for _, p := range subtractSpans(s, own) {
					b.add(fmt.Sprintf("remove guard region %#x-%#x inherited from parent %d", p.start, p.end, tk.parent.t.PID),
						unix.SYS_MADVISE, p.start, p.len(), kernel.MADV_GUARD_REMOVE)
				}
			}
		}
	}
	for _, g := range tk.t.Guards {
		b.add(fmt.Sprintf("install guard region %#x-%#x (madvise MADV_GUARD_INSTALL, Linux 6.13+)", g.Start, g.End),
			unix.SYS_MADVISE, g.Start, g.End-g.Start, kernel.MADV_GUARD_INSTALL)
	}
}

// Advice whose VMA a fork does not copy as it is (MADV_DONTFORK: not at
// all; MADV_WIPEONFORK: empty).
const dontForkAdvice = 1<<unix.MADV_DONTFORK | 1<<unix.MADV_WIPEONFORK

// forkKept says, per VMA of tk, whether tk keeps the copy its fork made of
// the parent's VMA instead of mapping it again: a shared mapping (shared
// anonymous, memfd, shared file) or a private file mapping at the same
// range and offset of the same object, with the same protection, flags,
// advice and VmFlags (but "lo": fork does not copy mlock) as a VMA of the
// parent. The parent's VMA is in place: a task's memory is restored before
// its children are made. A shared mapping then is the very object, as a
// reopen would give; a private file mapping also holds the parent's
// private pages, which writePages drops where the task has none of its
// own (fileZaps). Nothing is opened or mapped for such a VMA: what
// makes every further sharer of a shared object cost next to nothing.
func (rs *restorer) forkKept(tk *task) []bool {
	kept := make([]bool, len(tk.t.VMAs))
	if tk.parent == nil {
		return kept
	}
	pv := tk.parent.t.VMAs
	for i, v := range tk.t.VMAs {
		j := sort.Search(len(pv), func(j int) bool { return pv[j].End > v.Start })
		kept[i] = j < len(pv) && forkKeeps(pv[j], v)
	}
	return kept
}

// forkKeeps reports whether child VMA v is what a fork makes of parent VMA
// p, for the kinds forkKept keeps.
func forkKeeps(p, v *image.VMA) bool {
	switch v.Kind {
	case image.KindSharedAnon, image.KindMemfd, image.KindSharedFile, image.KindPrivateFile:
	default:
		return false
	}
	if p.Kind != v.Kind || p.Start != v.Start || p.End != v.End || p.Pgoff != v.Pgoff ||
		p.Prot != v.Prot || p.Flags != v.Flags || p.Madv != v.Madv || p.Name != v.Name ||
		p.FileID != v.FileID || p.ShmID != v.ShmID || v.Madv&dontForkAdvice != 0 {
		return false
	}
	a, b := unlocked(p.VmFlags), unlocked(v.VmFlags)
	return slices.Equal(a, b) && !slices.Contains(a, "dc") && !slices.Contains(a, "wf")
}

// unlocked returns VmFlags without "lo" and "lf" (a fork locks nothing).
func unlocked(flags []string) []string {
	return slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == "lo" || f == "lf" })
}

type span struct{ start, end uint64 }

// subtractSpans returns the parts of s outside every span of keep (sorted,
// not overlapping).
func subtractSpans(s span, keep []span) []span {
	i := sort.Search(len(keep), func(i int) bool { return keep[i].end > s.start })
	var out []span
	for cur := s.start; cur < s.end; i++ {
		if i == len(keep) || keep[i].start >= s.end {
			return append(out, span{cur, s.end})
		}
		if keep[i].start > cur {
			out = append(out, span{cur, keep[i].start})
		}
		cur = max(cur, keep[i].end)
	}
	return out
}

func (s span) empty() bool { return s.end == 0 }
func (s span) len() uint64 { return s.end - s.start }
func (s span) union(o span) span {
	if s.empty() {
		return o
	}
	return span{min(s.start, o.start), max(s.end, o.end)}
}

func isVDSOName(name string) bool {
	return name == "[vdso]" || name == "[vvar]" || name == "[vvar_vclock]"
}

// testVDSOFallback makes moveVDSO skip the mremap (tests).
var testVDSOFallback bool

// vdsoBlock is where the dump had tk's [vvar][vvar_vclock][vdso] block.
func (tk *task) vdsoBlock() span {
	var want span
	for _, v := range tk.t.VMAs {
		switch v.Kind {
		case image.KindVDSO, image.KindVVAR, image.KindVVARVclock:
			want = want.union(span{v.Start, v.End})
		}
	}
	return want
}

// moveVDSO puts the stub's vdso block (cur) where the dump had it (want).
// Same kernel, same block: mremap it whole; if that fails, unmap it and
// ask for a new one at the dumped address.
func (rs *restorer) moveVDSO(tk *task, cur, want span) error {
	switch {
	case cur.empty() && want.empty():
		return nil
	case want.empty():
		_, err := tk.sys(unix.SYS_MUNMAP, cur.start, cur.len())
		return err
	case cur.empty():
		_, err := tk.sys(unix.SYS_ARCH_PRCTL, archMapVDSO64, want.start)
		return err
	case cur.len() != want.len():
		return fmt.Errorf("task %d: vdso block is %#x bytes here, %#x in the image (another kernel?): %w",
			tk.t.PID, cur.len(), want.len(), ErrUnsupported)
	case cur.start == want.start:
		return nil
	}
	if !testVDSOFallback {
		_, err := tk.sys(unix.SYS_MREMAP, cur.start, cur.len(), cur.len(),
			unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, want.start)
		if err == nil {
			return nil
		}
		rs.log.Debug("vdso block mremap failed, mapping a new one", "pid", tk.t.PID, "err", err)
	}
	if _, err := tk.sys(unix.SYS_MUNMAP, cur.start, cur.len()); err != nil {
		return err
	}
	if _, err := tk.sys(unix.SYS_ARCH_PRCTL, archMapVDSO64, want.start); err != nil {
		return fmt.Errorf("map vdso at %#x: %w", want.start, err)
	}
	return nil
}

// mapVMA creates one VMA in tk, or adds the syscalls that do to b. fds
// caches the remote fds of mapped files.
func (rs *restorer) mapVMA(tk *task, v *image.VMA, fds map[uint32]uint64, b *batch) error {
	const fixed = unix.MAP_FIXED
	prot := uint64(v.Prot)
	if v.FromParent {
		return nil // inherited by fork, with the parent's pages
	}
	switch v.Kind {
	case image.KindVDSO, image.KindVVAR, image.KindVVARVclock, image.KindVsyscall:
		return nil
	case image.KindPrivateAnon, image.KindHeap, image.KindStack, image.KindAIORing:
		// An AIO ring comes back as private memory first: restoreAIO
		// puts a new context's ring over it.
		flags := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | fixed)
		if slices.Contains(v.VmFlags, "dp") {
			// MAP_DROPPABLE (Linux 6.11+; glibc's getrandom state): a
			// private mapping whose pages the kernel may free under
			// pressure, a mapping type of its own; smaps says "dp".
			flags = unix.MAP_DROPPABLE | unix.MAP_ANONYMOUS | fixed
		}
		if v.Flags&unix.MAP_GROWSDOWN != 0 || slices.Contains(v.VmFlags, "gd") {
			flags |= unix.MAP_GROWSDOWN
		}
		if v.Flags&unix.MAP_NORESERVE != 0 || slices.Contains(v.VmFlags, "nr") {
			flags |= unix.MAP_NORESERVE
		}
		// Private anonymous hugetlb: its pages come from the huge page pool
		// of that size (the mmap fails when the pool is short).
		flags |= uint64(v.Flags & (unix.MAP_HUGETLB | unix.MAP_HUGE_MASK<<unix.MAP_HUGE_SHIFT))
		mmapAccounted(b, v, flags, ^uint64(0))
	case image.KindPrivateFile, image.KindSharedFile:
		shared := v.Kind == image.KindSharedFile
		mode := uint64(unix.O_RDONLY)
		if shared && (v.Prot&unix.PROT_WRITE != 0 || slices.Contains(v.VmFlags, "mw")) {
			mode = unix.O_RDWR
		}
		key := v.FileID
		if mode == unix.O_RDWR {
			key |= 1 << 31
		}
		fd, ok := fds[key]
		if !ok {
			f := rs.tree.FileByID(v.FileID)
			path := rs.ghosts.path(f)
			if id := rs.shmOfFile(f); id != 0 {
				// A file mapping of a memfd: the very object, reopened.
				if rs.shm[id] == nil {
					return fmt.Errorf("file %s is shared object %d, not created yet", f.Path, id)
				}
				path, mode = rs.shmPath(id), unix.O_RDWR
			}
			var err error
			if fd, err = rs.remoteOpen(tk, path, mode); err != nil {
				return err
			}
			if path == f.Path && !f.Deleted {
				if err := checkOpened(tk.t.PID, fd, f); err != nil {
					tk.r.Syscall(unix.SYS_CLOSE, fd)
					return err
				}
			}
			fds[key] = fd
		}
		if shared {
			b.add("mmap", unix.SYS_MMAP, v.Start, v.Len(), prot, unix.MAP_SHARED|fixed, fd, v.Pgoff)
		} else {
			mmapAccounted(b, v, unix.MAP_PRIVATE|fixed, fd)
		}
	case image.KindSharedAnon, image.KindMemfd:
		if err := rs.runBatch(tk, b); err != nil {
			return err
		}
		return rs.mapShared(tk, v)
	default:
		return fmt.Errorf("kind %d: %w", v.Kind, ErrUnsupported)
	}
	return nil
}

// keepApart reports whether v, private anonymous memory, must be kept
// apart from prev, the VMA before it: they touch and are alike in all
// that the kernel merges on (kind, protection, flags, advice, VmFlags,
// policy), so it kept them apart at dump for what no /proc file shows:
// one was moved by mremap (glibc's realloc of a large block does) and
// keeps a page offset that does not continue its neighbour's, with an
// anon_vma of its own. Mapped afresh next to prev, v would be merged
// into it.
func keepApart(prev, v *image.VMA) bool {
	plain := func(x *image.VMA) bool {
		return x.Kind == image.KindPrivateAnon && !x.FromParent && x.Flags&(unix.MAP_GROWSDOWN|unix.MAP_HUGETLB) == 0 &&
			!slices.Contains(x.VmFlags, "dp")
	}
	return plain(prev) && plain(v) && prev.End == v.Start && prev.Prot == v.Prot && prev.Flags == v.Flags &&
		prev.Madv == v.Madv && prev.Name == v.Name && slices.Equal(prev.VmFlags, v.VmFlags) && samePolicy(prev.MemPolicy, v.MemPolicy)
}

// mapApart maps v where the kernel likes and moves it into place with
// mremap: it keeps the page offset of where it was made, which does not
// continue that of the VMA before it, and an anon_vma of its own, so the
// two stay apart as at dump.
func (rs *restorer) mapApart(tk *task, v *image.VMA) error {
	flags := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS)
	if v.Flags&unix.MAP_NORESERVE != 0 || slices.Contains(v.VmFlags, "nr") {
		flags |= unix.MAP_NORESERVE
	}
	prot := uint64(v.Prot)
	first := prot
	acct := v.Prot&unix.PROT_WRITE == 0 && slices.Contains(v.VmFlags, "ac")
	if acct {
		first |= unix.PROT_WRITE
	}
	tmp, err := tk.sys(unix.SYS_MMAP, 0, v.Len(), first, flags, ^uint64(0), 0)
	if err != nil {
		return err
	}
	if tmp == v.Start {
		// Made in place after all: its offset continues its neighbour's.
		// Another, then, and this one goes.
		other, err := tk.sys(unix.SYS_MMAP, 0, v.Len(), first, flags, ^uint64(0), 0)
		if err != nil {
			return err
		}
		if _, err := tk.sys(unix.SYS_MUNMAP, tmp, v.Len()); err != nil {
			return err
		}
		tmp = other
	}
	// A page faulted in first: mremap gives a VMA that never had one
	// the offset of its new place (to merge it). Written through
	// /proc/PID/mem, which may write whatever the protection; dropped
	// again once in place (the VMA keeps its anon_vma).
	if err := ptrace.WriteMem(tk.t.PID, tmp, []byte{0}); err != nil {
		return fmt.Errorf("fault in a page at %#x: %w", tmp, err)
	}
	if _, err := tk.sys(unix.SYS_MREMAP, tmp, v.Len(), v.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
		return fmt.Errorf("move into place: %w", err)
	}
	if _, err := tk.sys(unix.SYS_MADVISE, v.Start, image.PageSize, unix.MADV_DONTNEED); err != nil {
		return err
	}
	if acct {
		if _, err := tk.sys(unix.SYS_MPROTECT, v.Start, v.Len(), prot); err != nil {
			return err
		}
	}
	return nil
}

// mmapAccounted maps a private VMA. One that is read-only now but was
// writable once carries VM_ACCOUNT ("ac" in smaps), like a RELRO segment:
// map it writable and mprotect it, so it gets the flag too and is not
// merged with a read-only neighbour the dump saw as a separate VMA.
func mmapAccounted(b *batch, v *image.VMA, flags, fd uint64) {
	prot := uint64(v.Prot)
	acct := v.Prot&unix.PROT_WRITE == 0 && slices.Contains(v.VmFlags, "ac")
	first := prot
	if acct {
		first |= unix.PROT_WRITE
	}
	what := fmt.Sprintf("vma %#x-%#x %s", v.Start, v.End, v.Kind)
	if size := v.HugePageSize(); size != 0 {
		what += fmt.Sprintf(" (hugetlb: %d free huge pages of %d KiB needed)", v.Len()/size, size>>10)
	}
	b.add(what, unix.SYS_MMAP, v.Start, v.Len(), first, flags, fd, v.Pgoff)
	if acct {
		b.add(what, unix.SYS_MPROTECT, v.Start, v.Len(), prot)
	}
}

// rangePolicies gives each VMA its NUMA memory policy (mbind) before its
// pages are written, so that they are placed by it. A VMA inherited from
// the parent (kept, or a range of private memory still shared) came with
// the parent's policy: only a different one is set, MPOL_DEFAULT
// included. Nodes this machine lacks fail the restore, naming the range
// and the policy.
func (rs *restorer) rangePolicies(tk *task, b *batch) error {
	for i, v := range tk.t.VMAs {
		var inherited *image.MemPolicy
		if (tk.kept[i] || v.FromParent) && tk.parent != nil {
			pv := tk.parent.t.VMAs
			j := sort.Search(len(pv), func(j int) bool { return pv[j].End > v.Start })
			if j < len(pv) && pv[j].Start <= v.Start {
				inherited = pv[j].MemPolicy
			}
		}
		if samePolicy(v.MemPolicy, inherited) {
			continue
		}
		if err := rs.runBatch(tk, b); err != nil {
			return err
		}
		var mode, nodes uint64 // MPOL_DEFAULT: no policy of the range's own
		what := "default"
		if p := v.MemPolicy; p != nil {
			s := rs.newScratch()
			words := make([]uint64, image.MemPolicyNodeWords)
			copy(words, p.Nodes)
			mode, nodes = uint64(p.Mode), s.u64s(words...)
			if err := s.write(tk.t.PID); err != nil {
				return err
			}
			what = p.String()
		}
		if _, err := tk.sys(unix.SYS_MBIND, v.Start, v.Len(), mode, nodes, image.MemPolicyNodeWords*64, 0); err != nil {
			return fmt.Errorf("task %d vma %#x-%#x: memory policy (mbind %s): %w", tk.t.PID, v.Start, v.End, what, err)
		}
	}
	return nil
}

// samePolicy reports whether a and b are one policy (nil: none).
func samePolicy(a, b *image.MemPolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Mode == b.Mode && slices.Equal(a.Nodes, b.Nodes)
}

// madvise reapplies the advice bits of v; refusals are logged.
func (rs *restorer) madvise(tk *task, v *image.VMA) {
	for bit := uint64(0); bit < 64; bit++ {
		if v.Madv&(1<<bit) == 0 {
			continue
		}
		if _, err := tk.sys(unix.SYS_MADVISE, v.Start, v.Len(), bit); err != nil {
			rs.log.Warn("madvise not restored", "pid", tk.t.PID, "vma", fmt.Sprintf("%#x-%#x", v.Start, v.End), "advice", bit, "err", err)
		}
	}
}

// remoteOpen opens path in tk and returns the remote fd.
func (rs *restorer) remoteOpen(tk *task, path string, flags uint64) (uint64, error) {
	s := rs.newScratch()
	p := s.str(path)
	if err := s.write(tk.t.PID); err != nil {
		return 0, err
	}
	fd, err := tk.sys(unix.SYS_OPENAT, atFDCWD, p, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

// mapShared maps a VMA of a shared object. The owner creates the object
// and mmcr writes its contents once through the owner VMA's map_files
// link, keeping that file open; every other VMA is a MAP_SHARED mapping of
// a reopen of mmcr's file, so all of them share one inode.
func (rs *restorer) mapShared(tk *task, v *image.VMA) error {
	obj := rs.plan.Object(v.ShmID)
	if obj.Shm.SysV != nil {
		return rs.attachSysV(tk, v, obj.Shm)
	}
	prot := uint64(v.Prot)
	flags := uint64(unix.MAP_SHARED | unix.MAP_FIXED)
	if obj.Shm.Memfd || !rs.plan.IsOwner(tk.t.PID, v) {
		if rs.shm[v.ShmID] == nil {
			return fmt.Errorf("shared object %d not created yet by %d", v.ShmID, obj.OwnerPID)
		}
		// A mapping that may never be written (no "mw": it was made
		// through a read-only fd, or after a memfd's write seal) is
		// mapped through a read-only fd again, or it would count as
		// writable and a write seal could not be added (sealMemfds).
		mode := uint64(unix.O_RDWR)
		if prot&unix.PROT_WRITE == 0 && len(v.VmFlags) > 0 && !slices.Contains(v.VmFlags, "mw") {
			mode = unix.O_RDONLY
		}
		fd, err := rs.remoteOpen(tk, rs.shmPath(v.ShmID), mode)
		if err != nil {
			return err
		}
		_, err = tk.sys(unix.SYS_MMAP, v.Start, v.Len(), prot, flags, fd, v.Pgoff)
		tk.r.Syscall(unix.SYS_CLOSE, fd)
		return err
	}
	size := roundPage(obj.Shm.Size)
	rw := uint64(unix.PROT_READ | unix.PROT_WRITE)
	// A shmem (or hugetlb) object of the full size at a place of the
	// kernel's choice; the owner's piece moves into place, the rest goes.
	tmpFlags := uint64(unix.MAP_SHARED | unix.MAP_ANONYMOUS)
	if h := obj.Shm.HugePageSize; h != 0 {
		tmpFlags |= uint64(v.Flags & (unix.MAP_HUGETLB | unix.MAP_HUGE_MASK<<unix.MAP_HUGE_SHIFT))
		size = (size + h - 1) &^ (h - 1)
	}
	tmp, err := tk.sys(unix.SYS_MMAP, 0, size, rw, tmpFlags, ^uint64(0), 0)
	if err != nil {
		if obj.Shm.HugePageSize != 0 {
			return fmt.Errorf("map hugetlb object %d (%d free huge pages of %d KiB needed): %w",
				obj.Shm.ID, size/obj.Shm.HugePageSize, obj.Shm.HugePageSize>>10, err)
		}
		return err
	}
	if _, err := tk.sys(unix.SYS_MREMAP, tmp+v.Pgoff, v.Len(), v.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start); err != nil {
		return err
	}
	if size > v.Len() {
		if _, err := tk.sys(unix.SYS_MUNMAP, tmp, size); err != nil {
			return err
		}
	}
	if prot != rw {
		if _, err := tk.sys(unix.SYS_MPROTECT, v.Start, v.Len(), prot); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(obj.MapFilesPath(), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new shared object %d: %w", obj.Shm.ID, err)
	}
	rs.shm[obj.Shm.ID] = f
	if obj.Shm.HugePageSize != 0 {
		return rs.fillHugetlb(obj.Shm.ID, f, size)
	}
	return rs.fillShm(obj.Shm.ID, f)
}

// fillHugetlb writes a hugetlb object's dumped pages into f (of size
// bytes) through a mapping of it: hugetlbfs has no write().
func (rs *restorer) fillHugetlb(id uint32, f *os.File, size uint64) error {
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map hugetlb object %d to fill it: %w", id, err)
	}
	defer unix.Munmap(mem)
	return rs.fillMapped(id, mem)
}

// fillMapped writes a shared object's dumped pages into mem, mmcr's own
// mapping of it (hugetlbfs has no write(); a SysV segment is attached).
func (rs *restorer) fillMapped(id uint32, mem []byte) error {
	return rs.fillObject(id, func(b []byte, off uint64) error {
		if off+uint64(len(b)) > uint64(len(mem)) {
			return fmt.Errorf("page at %#x is past the end %#x of the memory it goes to", off, len(mem))
		}
		copy(mem[off:], b)
		return nil
	})
}

// shmPath is the path a task opens to reach shared object id: mmcr's own
// file of it, so it does not matter how the creator's VMAs changed since.
func (rs *restorer) shmPath(id uint32) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), rs.shm[id].Fd())
}

// shmOfFile returns the shared object a file is (a memfd also mapped
// MAP_PRIVATE or opened), or 0.
func (rs *restorer) shmOfFile(f *image.File) uint32 {
	if f == nil {
		return 0
	}
	for _, o := range rs.tree.SharedObjects {
		if o.Dev == f.Dev && o.Ino == f.Ino {
			return o.ID
		}
	}
	return 0
}

// createMemfds makes every memfd object in mmcr itself and fills it: its
// name and inode are then what every task maps, whichever maps it first
// and however (MAP_SHARED, or MAP_PRIVATE as a file).
func (rs *restorer) createMemfds() error {
	for _, o := range rs.tree.SharedObjects {
		if !o.Memfd {
			continue
		}
		// Sealing allowed: sealMemfds gives it its seals back at the end
		// (F_SEAL_SEAL among them when it had none to add).
		flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
		if h := o.HugePageSize; h != 0 {
			flags |= unix.MFD_HUGETLB | bits.TrailingZeros64(h)<<unix.MFD_HUGE_SHIFT
		}
		fd, err := unix.MemfdCreate(o.Name, flags)
		if err != nil {
			return fmt.Errorf("memfd_create %q: %w", o.Name, err)
		}
		f := os.NewFile(uintptr(fd), "memfd:"+o.Name)
		rs.shm[o.ID] = f
		if err := f.Truncate(int64(o.Size)); err != nil {
			return fmt.Errorf("memfd %q: %w", o.Name, err)
		}
		if o.HugePageSize != 0 {
			err = rs.fillHugetlb(o.ID, f, o.Size)
		} else {
			err = rs.fillShm(o.ID, f)
		}
		if err != nil {
			if o.HugePageSize != 0 {
				return fmt.Errorf("hugetlb memfd %q (%d free huge pages of %d KiB needed): %w", o.Name, o.Size/o.HugePageSize, o.HugePageSize>>10, err)
			}
			return err
		}
		// Its own length, which Size rounds up to whole pages and to
		// every mapping (one may reach past the end, as at dump).
		if o.Length != 0 && o.Length != o.Size {
			if err := f.Truncate(int64(o.Length)); err != nil {
				return fmt.Errorf("memfd %q: %w", o.Name, err)
			}
		}
		if err := memfdOwner(f, o); err != nil {
			return fmt.Errorf("memfd %q: %w", o.Name, err)
		}
	}
	return nil
}

// memfdOwner gives memfd f the mode and owner of o (an image of
// mmcr-ext version 7 or later: Mode is never 0 then).
func memfdOwner(f *os.File, o *image.SharedObject) error {
	if o.Mode == 0 {
		return nil
	}
	fd := int(f.Fd())
	if err := unix.Fchmod(fd, o.Mode); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Uid != o.UID || st.Gid != o.GID {
		if err := unix.Fchown(fd, int(o.UID), int(o.GID)); err != nil {
			return os.NewSyscallError("fchown", err)
		}
	}
	return nil
}

// sealMemfds gives every memfd its seals back, once every task has mapped
// it: a write seal forbids the writable shared mappings a task may have
// made before its F_SEAL_FUTURE_WRITE, as the tasks' later writes
// through their fds.
func (rs *restorer) sealMemfds() error {
	for _, o := range rs.tree.SharedObjects {
		if !o.Memfd || o.Seals == 0 {
			continue
		}
		if _, err := unix.FcntlInt(rs.shm[o.ID].Fd(), unix.F_ADD_SEALS, int(o.Seals)); err != nil {
			return fmt.Errorf("memfd %q: add seals %#x: %w", o.Name, o.Seals, os.NewSyscallError("fcntl F_ADD_SEALS", err))
		}
	}
	return nil
}

// fillShm writes a shared object's dumped pages into f, with raw pwrite
// calls as every page write of streamWindows.
func (rs *restorer) fillShm(id uint32, f *os.File) error {
	fd := int(f.Fd())
	defer runtime.KeepAlive(f) // the raw fd must outlive the writes
	return rs.fillObject(id, func(b []byte, off uint64) error {
		for len(b) > 0 {
			iov := []unix.Iovec{{Base: &b[0]}}
			iov[0].SetLen(len(b))
			n, err := rawio.Pwritev(fd, iov, int64(off))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return &os.PathError{Op: "write", Path: f.Name(), Err: err}
			}
			if n == 0 {
				return &os.PathError{Op: "write", Path: f.Name(), Err: io.ErrShortWrite}
			}
			b, off = b[n:], off+uint64(n)
		}
		return nil
	})
}

// fillObject reads a shared object's dumped pages and hands each run of
// them to put with its offset in the object.
func (rs *restorer) fillObject(id uint32, put func(b []byte, off uint64) error) error {
	runs, pf, err := rs.img.OpenShmemPages(id)
	if err != nil {
		return fmt.Errorf("read pages of shared object %d: %w", id, err)
	}
	defer pf.Close()
	var pieces []piece
	for _, r := range runs {
		for done := uint64(0); done < r.Len; {
			n := min(r.Len-done, pageWindow)
			pieces = append(pieces, piece{addr: r.Addr + done, off: r.Offset + int64(done), n: n})
			done += n
		}
	}
	err = rs.streamWindows(pf, pieces, func(ps []piece, start int64, buf []byte) error {
		for _, p := range ps {
			if err := put(buf[p.off-start:p.off-start+int64(p.n)], p.addr); err != nil {
				return fmt.Errorf("write shared object %d: %w", id, err)
			}
		}
		return nil
	})
	if err == nil {
		err = pf.Check()
	}
	if err != nil {
		return fmt.Errorf("pages of shared object %d: %w", id, err)
	}
	return nil
}

func roundPage(n uint64) uint64 { return (n + image.PageSize - 1) &^ (image.PageSize - 1) }

// setMm adds to b the PR_SET_MM_MAP that sets the mm fields and the exe
// link, and writes its arguments: nothing may write the scratch again
// before b runs.
func (rs *restorer) setMm(tk *task, b *batch) error {
	m := &tk.t.Mm
	if m.StartCode == 0 && m.EndCode == 0 {
		rs.log.Warn("image has no mm fields", "pid", tk.t.PID)
		return nil
	}
	exeFd := uint64(0xffffffff)
	if f := rs.tree.FileByID(m.ExeFileID); f != nil && tk.exe != m.ExeFileID {
		// A fork has its parent's exe link: only a task with another
		// exe (the root) opens one.
		fd, err := rs.remoteOpen(tk, rs.ghosts.path(f), unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("task %d: exe: %w", tk.t.PID, err)
		}
		exeFd = fd
	}
	s := rs.newScratch()
	var auxv uint64
	auxvLen := uint64(len(m.Auxv) * 8)
	if auxvLen > 0 {
		auxv = s.u64s(m.Auxv...)
	}
	mm := make([]byte, prctlMmMapLen)
	for i, w := range []uint64{m.StartCode, m.EndCode, m.StartData, m.EndData, m.StartBrk, m.Brk,
		m.StartStack, m.ArgStart, m.ArgEnd, m.EnvStart, m.EnvEnd, auxv} {
		binary.LittleEndian.PutUint64(mm[8*i:], w)
	}
	binary.LittleEndian.PutUint32(mm[96:], uint32(auxvLen))
	binary.LittleEndian.PutUint32(mm[100:], uint32(exeFd))
	mp := s.add(mm)
	if err := s.write(tk.t.PID); err != nil {
		if exeFd != 0xffffffff {
			tk.r.Syscall(unix.SYS_CLOSE, exeFd)
		}
		return err
	}
	b.add(fmt.Sprintf("set mm fields (code %#x-%#x data %#x-%#x brk %#x-%#x stack %#x)",
		m.StartCode, m.EndCode, m.StartData, m.EndData, m.StartBrk, m.Brk, m.StartStack),
		unix.SYS_PRCTL, prSetMM, prSetMMMap, mp, prctlMmMapLen, 0)
	if exeFd != 0xffffffff {
		b.add("close exe", unix.SYS_CLOSE, exeFd)
	}
	if rs.tree.FileByID(m.ExeFileID) != nil {
		tk.exe = m.ExeFileID
	}
	return nil
}
