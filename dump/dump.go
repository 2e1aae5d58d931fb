// Package dump checkpoints a process tree: it freezes every thread with
// ptrace, collects each task's state and memory layout, streams page
// contents into an image directory, writes the metadata, and then kills
// the tree or lets it run on.
//
// The whole dump runs on one goroutine locked to its OS thread: ptrace
// requests must come from the thread that attached the tracee. Only the
// copying of pages (read, zero-page check, checksum, write) runs on a pool
// of workers and a writer, as many as the CPUs (copy.go): none of it needs
// ptrace.
//
// Order of work, and why:
//
//  0. image dir: made (0700) and flock-ed before the tree is touched, so a
//     second mmcr on the same dir fails having frozen nothing.
//  1. freeze: seize and interrupt every thread of every task, repeating
//     until a pass finds nothing new, so a fork racing the freeze is caught.
//     A thread already traced (another mmcr, a debugger) fails the dump.
//  2. collect: every task, /proc state first (VMAs before anything is
//     mapped into the task), then remote syscalls from a scratch page that
//     is unmapped again. All tasks are collected before any page is read:
//     the remote syscalls are the only moments a task runs code for mmcr,
//     and they stay short and early, before the long page copy.
//  3. pages: private pages per task through process_vm_readv (through
//     /proc/PID/mem when the tree has several tasks: it does not break
//     copy-on-write sharing), copied by workers and a writer (copy.go); a page
//     a child still shares with its parent is recorded as the parent's,
//     not stored again (cow.go); shared objects once each through their
//     map_files fd; ghosts of deleted files.
//  4. commit the metadata and, last, the manifest; then kill the tree or
//     detach it.
//
// On any failure, including a cancellation of Options.Ctx (checked
// between steps and page chunks; mmcr cancels on SIGINT/SIGTERM), the
// image is removed and every thread is detached exactly as it was found.
//
// Who may be dumped is the kernel's decision (see access.go): the seize is
// its ptrace access check, made with the caller's own rights.
package dump

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/shmem"
	"golang.org/x/sys/unix"
)

// Options says what to dump and where.
type Options struct {
	PID int    // root of the tree
	Dir string // image directory
	// LeaveRunning lets the tree run on after the dump; by default it is
	// killed once the image is complete.
	LeaveRunning bool
	// LeaveStopped leaves the tree stopped after the dump, as SIGSTOP
	// leaves it, for SIGCONT to resume (or SIGKILL to end): frozen as it
	// was dumped.
	LeaveStopped bool
	Log          *slog.Logger // nil: discard
	// Ctx cancels the dump (mmcr cancels it on SIGINT/SIGTERM). It is
	// checked between steps and between page batches, so a cancelled dump
	// takes the ordinary failure path: the image is removed and every
	// thread is detached as it was found. nil: never cancelled.
	Ctx context.Context
}

// ErrCanceled is wrapped by the error of a dump stopped through Options.Ctx.
var ErrCanceled = errors.New("dump canceled")

// ErrUnsupported is wrapped by every refusal to dump something mmcr cannot
// restore (a pipe or socket beyond stdio, an eventfd, a device mapping...).
var ErrUnsupported = errors.New("not supported")

// TaskError is a failure scoped to one task of the tree.
type TaskError struct {
	PID int
	Op  string // what was being done: "read vmas", "seize thread 42", ...
	Err error
}

func (e *TaskError) Error() string { return fmt.Sprintf("task %d: %s: %v", e.PID, e.Op, e.Err) }

func (e *TaskError) Unwrap() error { return e.Err }

func taskErr(pid int, op string, err error) error {
	var te *TaskError
	if errors.As(err, &te) && te.PID == pid {
		return err
	}
	return &TaskError{PID: pid, Op: op, Err: err}
}

// dumper holds the state of one dump. All its methods run on the locked
// OS thread of Run.
type dumper struct {
	log  *slog.Logger
	fs   procfs.FS
	opts Options

	// seized lists every thread ever attached, in attach order;
	// seizedSet is the same as a set.
	seized    []int
	seizedSet map[int]bool
	// order is the tasks in tree order; threads maps a task to its live
	// threads, leader first.
	order   []int
	threads map[int][]int
	// jobStopped holds the tasks found in a job-control stop (SIGSTOP,
	// SIGTSTP...): restore leaves them stopped.
	jobStopped map[int]bool
	// zombies are the tree's children that had exited and were not yet
	// reaped when the last pass looked (their tasks, complete: a zombie
	// has nothing else to collect), in the order met.
	zombies []*image.Task

	tree  *image.Tree
	files *fileTable
	shm   *shmem.Registry
	// shmSrc says where to open each shared object: a VMA that maps it.
	shmSrc map[uint32]vmaRef
	// memfdFDs are the memfd descriptors, added to shm at the end.
	memfdFDs []memfdFD
	// epolls are the epoll descriptors, in tree and fd order, their
	// targets checked once their sharing is known (checkEpolls).
	epolls []epollEnd
	// pipeEnds, socketEnds, fileEnds (regular files, directories and
	// devices) and madeEnds (eventfds, signalfds, timerfds, inotify
	// instances, pidfds and epolls: what restore makes in mmcr when it is
	// shared) are the descriptors that may share open
	// file descriptions, in tree and fd order, resolved once every task is
	// collected (opens.go, pipes.go, sockets.go); nextOpen numbers their
	// descriptions until image.NumberOpens.
	pipeEnds   []pipeEnd
	socketEnds []socketEnd
	fileEnds   []openEnd
	madeEnds   []openEnd
	nextOpen   uint32
	w          *image.Writer
	pool       *copyPool // page-copy workers (copy.go)
	// cow finds the private pages a task shares with its parent.
	cow cowDeduper
	// vmFlags is each task's smaps, read while pages are copied (vmflags.go).
	vmFlags map[int]*vmFlagsRead
	// sysvShm are the SysV segments of /proc/sysvipc/shm by id, read at
	// the first attachment met.
	sysvShm map[int32]procfs.SysVShm
}

// vmaRef names one VMA of one task (its map_files link) or, with viaFD,
// a descriptor fd of the task (a memfd no task maps).
type vmaRef struct {
	pid        int
	start, end uint64
	viaFD      bool
	fd         int
}

// Run dumps the tree rooted at opts.PID into opts.Dir.
func Run(opts Options) (err error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PID <= 0 {
		return fmt.Errorf("dump: invalid pid %d", opts.PID)
	}
	if opts.Dir == "" {
		return errors.New("dump: no image directory given")
	}
	if opts.LeaveRunning && opts.LeaveStopped {
		return errors.New("dump: leave the tree running or stopped, not both")
	}
	if opts.Ctx == nil {
		opts.Ctx = context.Background()
	}
	runtime.LockOSThread()
	d := &dumper{
		log:        opts.Log,
		fs:         procfs.Default,
		opts:       opts,
		seizedSet:  make(map[int]bool),
		threads:    make(map[int][]int),
		tree:       &image.Tree{},
		files:      newFileTable(),
		shm:        shmem.NewRegistry(),
		shmSrc:     make(map[uint32]vmaRef),
		vmFlags:    make(map[int]*vmFlagsRead),
		jobStopped: make(map[int]bool),
	}
	restoreCaps, err := lowerPrivileges()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("dump: %w", err)
	}
	clean := true
	defer func() {
		if r := recover(); r != nil {
			err = oneLine{fmt.Errorf("dump: internal error: %v", r)}
			d.log.Error("panic during dump", "panic", r, "stack", string(stackTrace()))
		}
		if err != nil {
			clean = d.abort()
		}
		// A tracee we failed to detach stays bound to this thread: keep
		// the thread locked so it dies with the goroutine rather than
		// serving other goroutines.
		if clean {
			restoreCaps()
			runtime.UnlockOSThread()
		}
	}()

	if err := d.run(); err != nil {
		return oneLine{fmt.Errorf("dump: %w", err)}
	}
	return nil
}

// oneLine keeps an error's chain but prints it on one line: the CLI shows
// it as the single line a failed dump leaves on stderr.
type oneLine struct{ err error }

func (e oneLine) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e oneLine) Unwrap() error { return e.err }

func stackTrace() []byte {
	buf := make([]byte, 64<<10)
	return buf[:runtime.Stack(buf, false)]
}

func (d *dumper) run() error {
	t0 := time.Now()
	phase := func(name string) { d.log.Debug("dump phase done", "phase", name, "elapsed", time.Since(t0)) }
	st, err := d.fs.Status(d.opts.PID)
	if err != nil {
		return taskErr(d.opts.PID, "read status", err)
	}
	if st.Tgid != d.opts.PID {
		return fmt.Errorf("%d is a thread of process %d, not a process", d.opts.PID, st.Tgid)
	}
	if err := d.checkNotAncestor(); err != nil {
		return err
	}
	// The image directory is made and locked before the tree is touched:
	// a second mmcr on the same directory fails here, having frozen nothing.
	var w *image.Writer
	w, err = image.Create(d.opts.Dir)
	if err != nil {
		return fmt.Errorf("create image in %s: %w", d.opts.Dir, err)
	}
	d.w = w
	if err := d.canceled(); err != nil {
		return err
	}
	if err := d.freeze(); err != nil {
		return err
	}
	d.log.Info("tree frozen", "tasks", len(d.order), "threads", len(d.seized))
	phase("freeze")
	d.pool = newCopyPool(0)
	defer d.pool.close()

	// Every task's state first, pages after: the remote syscalls (the only
	// time a task runs code for mmcr, with a scratch page mapped) all
	// happen early and briefly, so an mmcr killed with SIGKILL during the
	// long page copy leaves no task mid-syscall (the kernel detaches the
	// tracees, which then run on untouched).
	defer d.waitVmFlags()
	if err := d.collectTasks(); err != nil {
		return err
	}
	if err := d.resolvePipes(); err != nil {
		return err
	}
	if err := d.resolveSockets(); err != nil {
		return err
	}
	if err := d.resolveFileOpens(); err != nil {
		return err
	}
	if err := d.checkEpolls(); err != nil {
		return err
	}
	image.NumberOpens(d.tree)
	phase("collect")
	for _, t := range d.tree.Tasks {
		if err := d.canceled(); err != nil {
			return err
		}
		if err := d.dumpPrivatePages(t); err != nil {
			// A mapping the VmFlags refuse (a device, hugetlb) may have
			// failed the copy first: the refusal says what is wrong. Any
			// other trouble with the flags (the task gone meanwhile) is
			// not the copy's cause.
			if ferr := d.applyVmFlags(t); errors.Is(ferr, ErrUnsupported) {
				return ferr
			}
			return err
		}
	}
	phase("private pages")
	if err := d.applyAllVmFlags(); err != nil {
		return err
	}
	for _, t := range d.tree.Tasks {
		// The guards of shared VMAs came with the VmFlags, maybe before
		// those of the private ones.
		slices.SortFunc(t.Guards, func(a, b image.Range) int { return cmp.Compare(a.Start, b.Start) })
	}
	if err := d.addMemfdFDs(); err != nil {
		return err
	}
	// Zombies have nothing to collect or copy; having no children, they
	// may follow every live task.
	d.tree.Tasks = append(d.tree.Tasks, d.zombies...)
	d.tree.Files = d.files.files
	d.tree.SharedObjects = d.shm.Objects()
	hugetlbObjects(d.tree)
	if err := d.dumpSharedObjects(); err != nil {
		return err
	}
	if err := d.dumpGhosts(); err != nil {
		return err
	}
	phase("shared objects and ghosts")
	// Last chance to stop: once Commit has written the manifest the image
	// is complete and the tree is killed (or resumed).
	if err := d.canceled(); err != nil {
		return err
	}
	if err := d.w.Commit(d.tree); err != nil {
		return fmt.Errorf("write images to %s: %w", d.opts.Dir, err)
	}
	d.w = nil
	phase("commit")
	d.log.Info("image written", "dir", d.opts.Dir, "tasks", len(d.tree.Tasks),
		"files", len(d.tree.Files), "shared objects", len(d.tree.SharedObjects))

	switch {
	case d.opts.LeaveRunning:
		return d.detachAll()
	case d.opts.LeaveStopped:
		// Queued while the threads sit in their ptrace stops, SIGSTOP is
		// the first thing each one meets once let go: none runs an
		// instruction of its own before the group stop.
		for _, pid := range d.order {
			if err := unix.Kill(pid, unix.SIGSTOP); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("stop task %d: %w", pid, err)
			}
		}
		return d.detachAll()
	}
	d.killAll()
	return nil
}

// canceled returns an error wrapping ErrCanceled and the cause once
// opts.Ctx is done.
func (d *dumper) canceled() error {
	if d.opts.Ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(d.opts.Ctx))
}

// abort undoes a failed dump: removes the partial image and detaches every
// thread. It reports whether every thread was detached.
func (d *dumper) abort() (clean bool) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("panic while aborting dump", "panic", r)
			clean = false
		}
	}()
	if d.w != nil {
		if err := d.w.Abort(); err != nil {
			d.log.Warn("remove partial image", "dir", d.opts.Dir, "err", err)
		}
		d.w = nil
	}
	return d.detachAll() == nil
}

// checkNotAncestor refuses to dump a tree that holds the dumper itself.
func (d *dumper) checkNotAncestor() error {
	for p := os.Getpid(); ; {
		if p == d.opts.PID {
			return fmt.Errorf("task %d is mmcr itself or one of its ancestors", d.opts.PID)
		}
		if p <= 1 {
			return nil
		}
		st, err := d.fs.Stat(p)
		if err != nil {
			return nil // best effort: our own ancestry is not worth failing on
		}
		p = st.PPID
	}
}

// hugetlbObjects gives each shared object that its VMAs map as hugetlb
// (their page size came with the VmFlags) that page size.
func hugetlbObjects(tree *image.Tree) {
	for _, t := range tree.Tasks {
		for _, v := range t.VMAs {
			if so := tree.SharedObjectByID(v.ShmID); so != nil && (v.Kind == image.KindSharedAnon || v.Kind == image.KindMemfd) {
				so.HugePageSize = max(so.HugePageSize, v.HugePageSize())
			}
		}
	}
}
