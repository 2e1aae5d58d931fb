package image

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// This file holds the description of memory a task shares copy-on-write
// with its parent (VMA.FromParent, Task.ParentPages) and the checks both
// Writer.Commit and Reader.Tree make of it.

// dontFork are the advice bits whose VMA a fork does not copy as it is
// (MADV_DONTFORK: not at all; MADV_WIPEONFORK: empty).
const dontFork = 1<<unix.MADV_DONTFORK | 1<<unix.MADV_WIPEONFORK

// Inheritable reports whether child's VMA v can be what remains of the
// copy a fork made of parent's VMA p: private anonymous memory (plain,
// heap or stack) inside p's range, with the same offset, protection,
// flags, advice and name, that fork copies with its pages (no
// MADV_DONTFORK or MADV_WIPEONFORK). v may be a part of p: a child that
// unmapped or remapped some of the memory it inherited keeps the rest as a
// VMA of its own (which the kernel does not merge again with new
// neighbours). VmFlags must match too, but for "lo": fork does not copy
// mlock.
func Inheritable(p, v *VMA) bool {
	switch v.Kind {
	case KindPrivateAnon, KindHeap, KindStack:
	case KindAIORing:
		// A fork's copy of its parent's AIO ring (the context stays the
		// parent's): the same mapping of the parent's ring.
		return p.Kind == KindAIORing && p.Start == v.Start && p.End == v.End && p.Prot == v.Prot
	default:
		return false
	}
	if p.Kind != v.Kind || v.Start < p.Start || v.End > p.End || p.Pgoff != v.Pgoff || p.Prot != v.Prot ||
		p.Flags != v.Flags || p.Madv != v.Madv || p.Name != v.Name || v.Madv&dontFork != 0 ||
		v.Flags&unix.MAP_SHARED != 0 {
		return false
	}
	return sameFlagsButLocked(p.VmFlags, v.VmFlags)
}

func sameFlagsButLocked(a, b []string) bool {
	strip := func(fs []string) []string {
		var out []string
		for _, f := range fs {
			if f != "lo" {
				out = append(out, f)
			}
		}
		return out
	}
	a, b = strip(a), strip(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ParentVMA returns the VMA of parent that child's VMA v can be inherited
// from (Inheritable), or nil.
func ParentVMA(parent *Task, v *VMA) *VMA {
	if p := vmaCovering(parent.VMAs, v.Start); p != nil && Inheritable(p, v) {
		return p
	}
	return nil
}

// checkCOW checks task's FromParent VMAs and ParentPages against its
// parent, which comes before it in tasks (tree order).
func checkCOW(tasks []*Task, i int) error {
	task := tasks[i]
	var parent *Task
	for _, p := range tasks[:i] {
		if p.PID == task.PPID {
			parent = p
		}
	}
	for _, v := range task.VMAs {
		if !v.FromParent {
			continue
		}
		if i == 0 || parent == nil {
			return fmt.Errorf("task %d: VMA %#x-%#x inherited from a parent that is not in the tree", task.PID, v.Start, v.End)
		}
		if ParentVMA(parent, v) == nil {
			return fmt.Errorf("task %d: VMA %#x-%#x inherited from parent %d, which has no such VMA", task.PID, v.Start, v.End, parent.PID)
		}
	}
	var prevEnd uint64
	for _, r := range task.ParentPages {
		if r.Start%PageSize != 0 || r.End%PageSize != 0 || r.Start >= r.End || r.Start < prevEnd {
			return fmt.Errorf("task %d: parent pages %#x-%#x unaligned, empty or out of order", task.PID, r.Start, r.End)
		}
		prevEnd = r.End
		v := vmaCovering(task.VMAs, r.Start)
		if v == nil || !v.FromParent || r.End > v.End {
			return fmt.Errorf("task %d: parent pages %#x-%#x are not inside one VMA inherited from the parent", task.PID, r.Start, r.End)
		}
	}
	return checkGuards(task)
}

// checkGuards checks that task's guard regions are sorted, page-aligned
// and each inside one VMA.
func checkGuards(task *Task) error {
	var prevEnd uint64
	for _, r := range task.Guards {
		if r.Start%PageSize != 0 || r.End%PageSize != 0 || r.Start >= r.End || r.Start < prevEnd {
			return fmt.Errorf("task %d: guard region %#x-%#x unaligned, empty or out of order", task.PID, r.Start, r.End)
		}
		prevEnd = r.End
		if v := vmaCovering(task.VMAs, r.Start); v == nil || r.End > v.End {
			return fmt.Errorf("task %d: guard region %#x-%#x is not inside one VMA", task.PID, r.Start, r.End)
		}
	}
	return nil
}

// vmaCovering returns the VMA of vmas (sorted) that holds addr, or nil.
func vmaCovering(vmas []*VMA, addr uint64) *VMA {
	lo, hi := 0, len(vmas)
	for lo < hi {
		m := (lo + hi) / 2
		if vmas[m].End <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(vmas) && vmas[lo].Start <= addr {
		return vmas[lo]
	}
	return nil
}
