package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
)

// ErrCredentials is wrapped by the refusal to restore tasks with more
// rights than the restoring user has.
var ErrCredentials = errors.New("credentials beyond the restoring user's")

// ErrXstate is wrapped by the refusal to restore registers dumped on a
// CPU (or kernel) whose extended state layout differs from this one's.
var ErrXstate = errors.New("incompatible xstate layout")

// caller is who runs the restore, as the kernel sees it before any
// capability mmcr's binary was given by setcap.
type caller struct {
	uid    uint32
	gids   []uint32 // real gid and supplementary groups
	isRoot bool
}

func currentCaller() caller {
	c := caller{uid: uint32(unix.Getuid()), isRoot: unix.Getuid() == 0}
	c.gids = append(c.gids, uint32(unix.Getgid()))
	if gs, err := unix.Getgroups(); err == nil {
		for _, g := range gs {
			c.gids = append(c.gids, uint32(g))
		}
	}
	return c
}

// checkCreds refuses, for a caller that is not root, any task whose
// credentials exceed the caller's: every uid must be the caller's, every
// gid and supplementary group one of the caller's, and no capability may
// be permitted, effective, inheritable or ambient. A copy of mmcr with
// file capabilities (setcap) could otherwise hand them, or uid 0 from a
// root image, to whoever runs it. Root may restore anything (it could
// run the image's code as anybody anyway).
func checkCreds(tree *image.Tree, c caller) error {
	if c.isRoot {
		return nil
	}
	for _, t := range tree.Tasks {
		if t.Zombie {
			continue // a fork of its parent, which is checked, for a moment
		}
		cr := &t.Creds
		for _, u := range []uint32{cr.UID, cr.EUID, cr.SUID, cr.FSUID} {
			if u != c.uid {
				return fmt.Errorf("task %d would run as uid %d, but the restoring user is uid %d: %w", t.PID, u, c.uid, ErrCredentials)
			}
		}
		for _, g := range append([]uint32{cr.GID, cr.EGID, cr.SGID, cr.FSGID}, cr.Groups...) {
			if !slices.Contains(c.gids, g) {
				return fmt.Errorf("task %d would get gid %d, which the restoring user (uid %d) does not have: %w", t.PID, g, c.uid, ErrCredentials)
			}
		}
		if caps := cr.CapPrm | cr.CapEff | cr.CapInh | cr.CapAmb; caps != 0 {
			return fmt.Errorf("task %d would get capabilities %#x; only root may restore a task with capabilities: %w", t.PID, caps, ErrCredentials)
		}
	}
	return nil
}

// Where the kernel's NT_X86_XSTATE regset says which state components it
// holds: bytes 464-471 of the legacy area (sw_reserved) carry the XCR0 the
// kernel enabled (arch/x86/include/asm/user.h), and the regset's length is
// the kernel's user xstate size for that XCR0.
const (
	xsaveXCR0Off  = 464
	xsaveMinBytes = 512 + 64 // legacy area + xsave header
)

// xstateLayout returns the XCR0 and size recorded in an xsave buffer.
func xstateLayout(xsave []byte) (xcr0 uint64, size int, ok bool) {
	if len(xsave) < xsaveMinBytes {
		return 0, len(xsave), false
	}
	return binary.LittleEndian.Uint64(xsave[xsaveXCR0Off:]), len(xsave), true
}

// checkXstate compares every dumped thread's xstate layout (XCR0 and size)
// with this machine's, read from the stub: setting registers saved under
// another layout would fail half-way through the release (EFAULT from
// PTRACE_SETREGSET) or, worse, drop state the task relies on.
func (rs *restorer) checkXstate() error {
	here, err := ptrace.GetXstate(rs.stub)
	if err != nil {
		return fmt.Errorf("read this CPU's xstate layout from stub %d: %w", rs.stub, err)
	}
	return compareXstate(rs.tree, here)
}

func compareXstate(tree *image.Tree, here []byte) error {
	hereXCR0, hereSize, ok := xstateLayout(here)
	if !ok {
		return fmt.Errorf("this CPU's xstate is only %d bytes: %w", hereSize, ErrXstate)
	}
	for _, t := range tree.Tasks {
		for _, th := range t.Threads {
			if len(th.Xsave) == 0 {
				continue // no extended state in the image: nothing is set
			}
			xcr0, size, ok := xstateLayout(th.Xsave)
			if !ok || xcr0 != hereXCR0 || size != hereSize {
				return fmt.Errorf("thread %d of task %d was dumped with xstate features %#x (%d bytes), "+
					"this CPU/kernel has %#x (%d bytes): the image comes from another CPU or kernel: %w",
					th.TID, t.PID, xcr0, size, hereXCR0, hereSize, ErrXstate)
			}
		}
	}
	return nil
}

// dumpableForTasks makes mmcr dumpable again when a non-root user runs a
// copy with file capabilities (exec of such a file clears the flag). The
// restored tasks open shared objects through /proc/<mmcr>/fd/N, and the
// /proc directories of a non-dumpable process belong to root: the tasks,
// running as that user, could not reach them. This opens nothing to the
// user's other processes: the kernel still lets only a process with all of
// mmcr's permitted capabilities (or CAP_SYS_PTRACE) ptrace it or open its
// fds.
func dumpableForTasks() error {
	if unix.Getuid() == 0 {
		return nil
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err == nil && d == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_DUMPABLE)", err)
	}
	return nil
}

// checkOpened makes sure the file task pid just opened by path (fd) is the
// dumped file: validate compared the path's identity before any task
// existed, but a path can be swapped for another file (or a symbolic link
// to one) in between. The open fd is what gets mapped, so its inode is
// what must match.
func checkOpened(pid int, fd uint64, f *image.File) error {
	var st unix.Stat_t
	link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	if err := unix.Stat(link, &st); err != nil {
		return fmt.Errorf("%s: stat the opened file: %w", f.Path, &os.PathError{Op: "stat", Path: link, Err: err})
	}
	if st.Dev != f.Dev || st.Ino != f.Ino {
		return fmt.Errorf("%s: opened inode %d:%d, dumped %d:%d (the file was replaced during the restore)",
			f.Path, st.Dev, st.Ino, f.Dev, f.Ino)
	}
	return nil
}
