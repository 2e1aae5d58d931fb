package dump

import (
	"fmt"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
)

// A task's VMAs are collected from /proc/PID/maps. Their VmFlags are only
// in /proc/PID/smaps, whose counters make the kernel walk every page table
// entry (~20 ms per GiB mapped here): dump reads smaps on a goroutine of
// its own once the task's remote syscalls are over, while pages are
// copied, and applies the flags (vmFlagsReader.apply) before anything
// needs them: the copy-on-write comparison of a child with its parent, the
// shared objects, the image.

// vmFlagsRead is one task's smaps, read in the background.
type vmFlagsRead struct {
	done    chan struct{}
	flags   [][]string // VmFlags of each VMA, in address order
	sizes   []uint64   // and its KernelPageSize
	starts  []uint64   // and each one's range, to check it is the VMA's
	ends    []uint64
	err     error
	applied bool
}

// startVmFlags reads t's smaps in the background. t's VMAs must no longer
// change: the task is frozen and its remote syscalls are done.
func (d *dumper) startVmFlags(t *image.Task) {
	r := &vmFlagsRead{done: make(chan struct{})}
	d.vmFlags[t.PID] = r
	go func() {
		defer close(r.done)
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("internal error: %v", p)
			}
		}()
		maps, err := d.fs.Mappings(t.PID)
		if err != nil {
			r.err = err
			return
		}
		for _, m := range maps {
			r.flags = append(r.flags, m.VmFlags)
			r.sizes = append(r.sizes, m.KernelPageSize)
			r.starts = append(r.starts, m.Start)
			r.ends = append(r.ends, m.End)
		}
	}()
}

// applyVmFlags waits for t's smaps and applies its VmFlags to t's VMAs;
// it refuses a VMA the flags show restore cannot recreate. Calling it
// again for t does nothing.
func (d *dumper) applyVmFlags(t *image.Task) error {
	r := d.vmFlags[t.PID]
	if r == nil {
		return fmt.Errorf("internal error: no smaps read for task %d", t.PID)
	}
	<-r.done
	if r.applied {
		return nil
	}
	if r.err != nil {
		return taskErr(t.PID, "read vmas", r.err)
	}
	if len(r.flags) != len(t.VMAs) {
		return taskErr(t.PID, "read vmas", fmt.Errorf("smaps lists %d vmas, maps listed %d: the address space changed while frozen",
			len(r.flags), len(t.VMAs)))
	}
	for i, v := range t.VMAs {
		if r.starts[i] != v.Start || r.ends[i] != v.End {
			return taskErr(t.PID, "read vmas", fmt.Errorf("smaps has vma %x-%x where maps had %x-%x: the address space changed while frozen",
				r.starts[i], r.ends[i], v.Start, v.End))
		}
		if err := applyVmFlags(v, r.flags[i], r.sizes[i]); err != nil {
			return taskErr(t.PID, "read vmas", err)
		}
	}
	if err := d.sharedGuards(t); err != nil {
		return err
	}
	r.applied = true
	return nil
}

// sharedGuards adds the guard regions of t's shared VMAs to t.Guards
// (Run sorts them once every task's pages are queued). copyPrivatePages
// finds those of private VMAs in its scan for pages; a shared VMA (guards
// allowed there since Linux 6.15) is scanned only when its VmFlags say it
// may hold one ("gu"), which is rare.
func (d *dumper) sharedGuards(t *image.Task) error {
	var pm *procfs.Pagemap
	for _, v := range t.VMAs {
		if hasPrivatePages(v.Kind) || special(v.Kind) || !hasFlag(v.VmFlags, "gu") {
			continue
		}
		if pm == nil {
			var err error
			if pm, err = d.fs.OpenPagemap(t.PID); err != nil {
				return taskErr(t.PID, "open pagemap", err)
			}
			defer pm.Close()
		}
		_, guards, err := pm.PrivatePages(v.Start, v.End)
		if err != nil {
			return taskErr(t.PID, fmt.Sprintf("scan guard regions of vma %#x-%#x", v.Start, v.End), err)
		}
		for _, g := range guards {
			t.Guards = appendGuard(t.Guards, v, g.Start, g.End)
		}
	}
	return nil
}

// applyAllVmFlags applies every task's VmFlags (applyVmFlags).
func (d *dumper) applyAllVmFlags() error {
	for _, t := range d.tree.Tasks {
		if err := d.applyVmFlags(t); err != nil {
			return err
		}
	}
	return nil
}

// waitVmFlags waits for every smaps read still running: none may outlive
// the dump (the tree is released or killed after it).
func (d *dumper) waitVmFlags() {
	for _, r := range d.vmFlags {
		<-r.done
	}
}
