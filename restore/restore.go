// Package restore rebuilds a dumped process tree from an image directory.
//
// There is no restorer blob. A traced stub (the mmcr binary exec'd as
// "__restore-stub", stopped at exec, never run) gets one small RWX page at
// an address free in every target layout; its first two bytes are a
// `syscall` instruction and the rest is scratch for syscall arguments.
// Every task is a fork of that stub made by an injected clone3 with set_tid
// (the root in the stub, with CLONE_PARENT so its parent is mmcr; every
// other task in its restored parent), so every task inherits the page.
// Per task in tree order, right after the task is made and before any
// child of it, remote syscalls run from that page unmap the memory it
// inherited (all of it but the VMAs it shared copy-on-write with its
// parent at dump, VMA.FromParent, and the shared and file mappings its
// parent has the same, forkKept), move the vdso, create every other VMA
// and shared object; then, once every task exists, they set the task
// state. Syscalls that need no result go in batches run by a small loop
// in the same page (one ptrace round trip per batch). mmcr
// writes page contents itself: process_vm_writev into writable VMAs,
// /proc/PID/mem (FOLL_FORCE) into the others, and pwrite into shared
// objects. The last remote syscall unmaps the page itself: the task is
// stopped at its exit, gets its dumped registers, and is detached.
//
// Shared anonymous objects are created by their owner task (shmem.Plan)
// and reopened by everybody else through mmcr's open of the owner's
// map_files link; memfd objects are created by mmcr itself, so a memfd
// mapped MAP_PRIVATE somewhere before its first MAP_SHARED user is the
// same inode too. A task whose parent maps a shared object or a file the
// same way (same range, offset, protection, flags) keeps the copy its
// fork made instead (forkKept): nothing to open or map, so a tree of
// sharers costs little more than its first task. Threads other than the
// leader are made last, by clone3 with CLONE_THREAD in the leader, and
// get their registers at release.
//
// Per task, what needs no result from each other goes in one syscall
// batch: the memory (unmaps, mappings, mm fields, page drops) in one, the
// rest of the state (fds, cwd, signals, name, credentials) in one more
// for a single-threaded task (calls).
//
// Before the first task exists, Run locks the image dir (flock), refuses a
// dir others could have written (image.CheckTrusted), verifies the
// manifest, decodes the tree, and checks pids, mapped files, the caller's
// right to the dumped credentials (security.go) and the xstate layout.
// After that, any failure or a cancellation of Options.Ctx kills and
// reaps every task made so far.
//
// Precondition: all ptrace requests come from one OS thread; Run locks it
// for its whole duration.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
	"github.com/mmcr/mmcr/shmem"
)

// Options configure Run.
type Options struct {
	Dir      string // image directory
	Detached bool   // the caller exits once the tree runs; nothing to wait for
	PidFile  string // if set, the root pid is written there
	Log      *slog.Logger
	// Stdin, Stdout and Stderr are given to dumped fds 0-2 that were pipes,
	// ttys or sockets (FDExternal). nil means mmcr's own.
	Stdin, Stdout, Stderr *os.File
	// TrustImages skips image.CheckTrusted: restore from a directory owned
	// by another user, writable by others or holding symbolic links.
	TrustImages bool
	// LeaveStopped leaves every restored task stopped, as SIGSTOP leaves
	// it, instead of running: no restored thread runs an instruction of
	// its own until it gets SIGCONT.
	LeaveStopped bool
	// Ctx cancels the restore (mmcr cancels it on SIGINT/SIGTERM): checked
	// between steps, it fails the restore, which kills every task created
	// so far. Once the tree is released it is no longer looked at. nil:
	// never cancelled.
	Ctx context.Context
}

// ErrCanceled is wrapped by the error of a restore stopped through Options.Ctx.
var ErrCanceled = errors.New("restore canceled")

// ErrUnsupported marks images restore cannot handle yet.
var ErrUnsupported = errors.New("not supported yet")

// StubArg is the argument that makes the mmcr binary the restore stub.
const StubArg = "__restore-stub"

// The restorer area: `syscall; int3` at 0, the syscall batch loop at
// batchCodeOff, then scratch for syscall arguments and batch tables.
const (
	restorerSize = 16 * image.PageSize
	scratchOff   = 128
)

// testHookAfterCreate, when set by a test, runs once every task exists;
// an error makes Run fail there.
var testHookAfterCreate func() error

// testHookBeforeCreate, when set by a test, runs after every check and
// before the first task is made: a test changes files under the restore.
var testHookBeforeCreate func()

// testHookBeforeRelease, when set by a test, runs once every task has its
// state, before any is let go: a test queues a signal for the restored
// tree while it is still stopped.
var testHookBeforeRelease func()

// restorer holds the state of one Run.
type restorer struct {
	opts   Options
	log    *slog.Logger
	img    *image.Reader
	tree   *image.Tree
	plan   *shmem.Plan
	stub   int // helper stub pid, 0 once gone
	stubR  *ptrace.Remote
	area   uint64 // restorer area address, same in every task
	tasks  []*task
	byPID  map[int]*task
	ghosts *ghostSet
	// epollFirst is the first fd of each shared epoll (registersEpoll).
	epollFirst map[uint32]*image.FD
	// shm holds mmcr's own open of every shared object once its owner made it.
	shm map[uint32]*os.File
	// stubStatus (credentials) and stubLimits are what every task has
	// from the stub until restoreState sets its own: read once.
	stubStatus *procfs.Status
	stubLimits []unix.Rlimit
	// bufs are the page windows, reused across tasks; mapped are those
	// of them that are mmaps (unmapped at the end).
	bufs, mapped [][]byte
	// tasks to kill on failure, in creation order, and their threads
	// other than the leaders (reaped first: a traced leader is not
	// reported gone before its traced threads are reaped).
	created        []int
	createdThreads []int
	// sysvMade are the SysV segments restore made, removed on failure.
	sysvMade []int
	// openFDs are mmcr's fds of the pipes it made and the open file
	// descriptions tasks share (pipes.go), and opens the one of each
	// description (FD.OpenID) the tasks take theirs from.
	openFDs map[int]bool
	opens   map[uint32]int
}

// task is one task being restored.
type task struct {
	t      *image.Task
	r      *ptrace.Remote // the leader's
	parent *task
	// threads are all threads once created, the leader first (its r is r).
	threads []*thread
	// exe is the file ID setMm made the task's exe link (0: still the
	// stub's); a child forked from the task inherits it.
	exe uint32
	// kept says, per VMA of t, that the task keeps its fork's copy of
	// the parent's (forkKept); set by restoreMemory.
	kept []bool
	// runs are the task's dumped private pages, once written: all the
	// private pages it has in its private file VMAs (fileZaps).
	runs []image.PageRun
}

// thread is one thread of a task being restored.
type thread struct {
	tid int
	th  *image.Thread
	r   *ptrace.Remote
}

// sys runs a remote syscall in the thread; its error names the syscall
// and the tid.
func (thr *thread) sys(nr uintptr, args ...uint64) (uint64, error) {
	return thr.r.Syscall(nr, args...)
}

// Run restores the tree in opts.Dir and returns the root's pid once every
// task runs. Without Detached, the root is mmcr's child: wait for it with Wait.
// On failure every task created so far is killed and reaped.
func Run(opts Options) (rootPID int, err error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Ctx == nil {
		opts.Ctx = context.Background()
	}
	if err := dumpableForTasks(); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	runtime.LockOSThread()
	// On a failure that leaves tracees in an unknown state the thread stays
	// locked and dies with its goroutine's end; on success it is released.
	rs := &restorer{opts: opts, log: opts.Log, byPID: make(map[int]*task), shm: make(map[uint32]*os.File),
		openFDs: make(map[int]bool), opens: make(map[uint32]int)}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
		if err != nil {
			rs.abort()
			rootPID = 0
			// Errors below carry no package prefix: it goes on once, here.
			err = fmt.Errorf("restore: %w", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	return rs.run()
}

func (rs *restorer) run() (int, error) {
	t0 := time.Now()
	phase := func(name string) { rs.log.Debug("restore phase done", "phase", name, "elapsed", time.Since(t0)) }
	// One mmcr per image dir: a dump still writing it, or a second
	// restore racing for the same pids, makes this one fail now.
	unlock, err := image.LockDir(rs.opts.Dir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if !rs.opts.TrustImages {
		if err := image.CheckTrusted(rs.opts.Dir, os.Geteuid()); err != nil {
			return 0, fmt.Errorf("%w (--trust-images restores it anyway)", err)
		}
	}
	// Restore reads every pages file once: their checksums are checked
	// on that read (writePages, fillShm), not on one more of their own.
	img, err := image.OpenDeferred(rs.opts.Dir)
	if err != nil {
		return 0, fmt.Errorf("open image %s: %w", rs.opts.Dir, err)
	}
	rs.img = img
	defer img.Close()
	tree, err := img.Tree()
	if err != nil {
		return 0, fmt.Errorf("read image %s: %w", rs.opts.Dir, err)
	}
	rs.tree = tree
	phase("read image")
	if err := rs.validate(); err != nil {
		return 0, err
	}
	if err := checkCreds(tree, currentCaller()); err != nil {
		return 0, err
	}
	if rs.plan, err = shmem.NewPlan(tree); err != nil {
		return 0, err
	}
	if rs.ghosts, err = recreateGhosts(img, tree, rs.log); err != nil {
		return 0, err
	}
	if err := rs.createMemfds(); err != nil {
		return 0, err
	}
	if err := rs.createSysV(); err != nil {
		return 0, err
	}
	if err := rs.makePipes(); err != nil {
		return 0, err
	}
	if err := rs.makeSockets(); err != nil {
		return 0, err
	}
	if err := rs.startStub(); err != nil {
		return 0, err
	}
	if err := rs.checkXstate(); err != nil {
		return 0, err
	}
	phase("validate and prepare")
	if err := rs.canceled(); err != nil {
		return 0, err
	}
	if testHookBeforeCreate != nil {
		testHookBeforeCreate()
	}
	// Every task gets its memory right after it is made, before its
	// children: they are forks of it and inherit what they shared with
	// it copy-on-write at dump.
	if err := rs.createTasks(); err != nil {
		return 0, err
	}
	phase("create tasks and memory")
	if testHookAfterCreate != nil {
		if err := testHookAfterCreate(); err != nil {
			return 0, err
		}
	}
	for _, tk := range rs.tasks {
		if err := rs.createThreads(tk); err != nil {
			return 0, err
		}
	}
	for _, tk := range rs.tasks {
		if err := rs.canceled(); err != nil {
			return 0, err
		}
		if err := rs.restoreState(tk); err != nil {
			return 0, err
		}
	}
	if err := rs.canceled(); err != nil {
		return 0, err
	}
	if err := rs.restoreOwners(); err != nil {
		return 0, err
	}
	if err := rs.sealMemfds(); err != nil {
		return 0, err
	}
	// Every task has its pipes and shared files: mmcr's opens of them go
	// (a pipe whose last reader or writer is a task's must see it go with
	// the task).
	rs.closeOpens()
	// Every task has mapped and opened its files: deleted files can go,
	// and SysV segments removed at dump.
	if err := rs.ghosts.unlink(); err != nil {
		return 0, err
	}
	if err := rs.finishSysV(); err != nil {
		return 0, err
	}
	phase("task state")
	if testHookBeforeRelease != nil {
		testHookBeforeRelease()
	}
	if err := rs.release(); err != nil {
		return 0, err
	}
	phase("release")
	rs.closeShm()
	rs.freeBufs()
	root := rs.tasks[0].t.PID
	if rs.opts.PidFile != "" {
		// A restore that cannot say where the tree is has failed: the
		// tree is killed like on any other failure.
		if err := os.WriteFile(rs.opts.PidFile, fmt.Appendf(nil, "%d\n", root), 0o644); err != nil {
			return 0, fmt.Errorf("write pid file: %w", err)
		}
	}
	rs.created, rs.createdThreads = nil, nil // they run on their own now
	rs.sysvMade = nil                        // and use the segments made for them
	rs.log.Info("restored", "root", root, "tasks", len(rs.tasks))
	return root, nil
}

// canceled returns an error wrapping ErrCanceled and the cause once
// opts.Ctx is done.
func (rs *restorer) canceled() error {
	if rs.opts.Ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(rs.opts.Ctx))
}

// abort kills every task created so far and the stub, reaps them and removes
// recreated ghost files.
func (rs *restorer) abort() {
	// Be the subreaper while killing: a killed task's orphans come to
	// mmcr and are reaped now, so their pids are free at once (pid 1
	// reaps slowly here).
	var was int
	unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0)
	if len(rs.created) > 0 {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, uintptr(was), 0, 0, 0)
	}
	for _, pid := range rs.created {
		unix.Kill(pid, unix.SIGKILL)
	}
	for _, tid := range rs.createdThreads {
		reap(tid)
	}
	for i := len(rs.created) - 1; i >= 0; i-- {
		reap(rs.created[i])
	}
	// A task whose parent was still dying above comes to mmcr a moment
	// later; wait for those, a bounded time.
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range rs.created {
		for procExists(pid) && time.Now().Before(deadline) {
			var ws unix.WaitStatus
			if wpid, _ := unix.Wait4(pid, &ws, unix.WALL|unix.WNOHANG, nil); wpid != pid {
				time.Sleep(time.Millisecond)
			}
		}
	}
	rs.created, rs.createdThreads = nil, nil
	rs.closeShm()
	rs.closeOpens()
	rs.freeBufs()
	if rs.stub != 0 {
		unix.Kill(rs.stub, unix.SIGKILL)
		reap(rs.stub)
		rs.stub = 0
	}
	if rs.ghosts != nil {
		rs.ghosts.remove()
	}
	rs.abortSysV()
}

func (rs *restorer) closeShm() {
	for id, f := range rs.shm {
		f.Close()
		delete(rs.shm, id)
	}
}

func procExists(pid int) bool {
	_, err := os.Lstat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// reap waits for a killed tracee or child to be gone.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}

// Wait waits for the restored root (mmcr's child) to end and returns its
// exit code, 128+signal when a signal killed it.
func Wait(rootPID int) (exitCode int, err error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(rootPID, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for %d: %w", rootPID, err)
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}
