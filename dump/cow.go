package dump

import (
	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
)

// A private page a task still shares copy-on-write with its parent (fork
// gave both the same physical page and neither wrote it since) is stored
// once, in the parent's pages: the child's image says "the parent's page
// here" (image.Task.ParentPages on an image.VMA.FromParent VMA) and
// restore forks the child from its restored parent to share it again.
// Sharing is read from the PFNs of /proc/PID/pagemap, which only root
// sees; without them no page compares equal and every page is stored.

// cowChunk bounds how many pages' PFNs are compared at once (2 x 256 KiB).
const cowChunk = 32 << 10

// cowDeduper compares the private pages of one task at a time with its
// parent's. Its zero value is ready; done releases the task's state.
type cowDeduper struct {
	task        *image.Task
	parent      *image.Task // nil: the task has no parent in the tree
	child, pmap *procfs.Pagemap
	cbuf, pbuf  []uint64
	shared      uint64 // pages of task found shared so far
}

// parentOf returns t's parent, collected before it (tree order), or nil
// for the root.
func (d *dumper) parentOf(t *image.Task) *image.Task {
	if t.PID == d.opts.PID {
		return nil
	}
	for _, p := range d.tree.Tasks {
		if p.PID == t.PPID {
			return p
		}
	}
	return nil
}

// start prepares for task t (dumped after its parent: tree order). Its
// errors name the task.
func (c *cowDeduper) start(d *dumper, t *image.Task) error {
	c.done()
	c.task = t
	if c.parent = d.parentOf(t); c.parent == nil {
		return nil
	}
	// Inheritable compares the VMAs' VmFlags.
	if err := d.applyVmFlags(c.parent); err != nil {
		c.parent = nil
		return err
	}
	if err := d.applyVmFlags(t); err != nil {
		c.parent = nil
		return err
	}
	var err error
	if c.child, err = d.fs.OpenPagemap(t.PID); err != nil {
		c.parent = nil
		return taskErr(t.PID, "open pagemaps", err)
	}
	if c.pmap, err = d.fs.OpenPagemap(c.parent.PID); err != nil {
		c.done()
		return taskErr(t.PID, "open pagemaps", err)
	}
	return nil
}

// done closes the pagemaps and returns how many pages of the task were
// found shared with its parent.
func (c *cowDeduper) done() uint64 {
	if c.child != nil {
		c.child.Close()
	}
	if c.pmap != nil {
		c.pmap.Close()
	}
	n := c.shared
	*c = cowDeduper{cbuf: c.cbuf, pbuf: c.pbuf}
	return n
}

// dedupe takes runs, the present private pages of v, and returns those to
// store. When v can be a fork's copy of a parent VMA, pages that are the
// parent's very page (same PFN) are left out: v is marked FromParent and
// they go to the task's ParentPages.
func (c *cowDeduper) dedupe(v *image.VMA, runs []procfs.PageRange) ([]procfs.PageRange, error) {
	if c.parent == nil {
		return runs, nil
	}
	if image.ParentVMA(c.parent, v) == nil {
		return runs, nil
	}
	var own []procfs.PageRange
	var shared []image.Range
	var err error
	for _, r := range runs {
		for start := r.Start; start < r.End; {
			end := min(r.End, start+cowChunk*image.PageSize)
			if c.cbuf, err = c.child.PFNs(c.cbuf[:0], start, end); err != nil {
				return nil, err
			}
			if c.pbuf, err = c.pmap.PFNs(c.pbuf[:0], start, end); err != nil {
				return nil, err
			}
			for i, pfn := range c.cbuf {
				a := start + uint64(i)*image.PageSize
				if pfn != 0 && pfn == c.pbuf[i] {
					shared = appendShared(shared, a)
				} else {
					own = appendOwn(own, a)
				}
			}
			start = end
		}
	}
	if len(shared) == 0 {
		return runs, nil
	}
	for _, r := range shared {
		c.shared += (r.End - r.Start) / image.PageSize
	}
	v.FromParent = true
	c.task.ParentPages = append(c.task.ParentPages, shared...)
	return own, nil
}

func appendShared(rs []image.Range, a uint64) []image.Range {
	if n := len(rs); n > 0 && rs[n-1].End == a {
		rs[n-1].End += image.PageSize
		return rs
	}
	return append(rs, image.Range{Start: a, End: a + image.PageSize})
}

func appendOwn(rs []procfs.PageRange, a uint64) []procfs.PageRange {
	if n := len(rs); n > 0 && rs[n-1].End == a {
		rs[n-1].End += image.PageSize
		return rs
	}
	return append(rs, procfs.PageRange{Start: a, End: a + image.PageSize})
}
