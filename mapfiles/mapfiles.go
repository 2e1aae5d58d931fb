// Package mapfiles works with /proc/PID/map_files: one symlink per
// file-backed VMA, named "start-end" in lowercase hex without 0x. Opening a
// link yields the very inode the VMA maps, even after the file was renamed
// or deleted, and for MAP_SHARED anonymous memory the shmem inode behind it;
// so (dev, ino) from fstat of the link identifies what a VMA maps, and the
// path text in /proc/PID/maps is only a hint.
//
// Opening or stat'ing map_files needs CAP_CHECKPOINT_RESTORE (or
// CAP_SYS_ADMIN) in the task's user namespace; readlink does too.
package mapfiles

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is the proc root map_files paths are built on; tests may change it.
var Root = "/proc"

// Path returns /proc/PID/map_files/START-END.
func Path(pid int, start, end uint64) string {
	return Root + "/" + strconv.Itoa(pid) + "/map_files/" + Name(start, end)
}

// Name is the link name of a VMA: "7f1c2a000000-7f1c2a021000".
func Name(start, end uint64) string {
	return strconv.FormatUint(start, 16) + "-" + strconv.FormatUint(end, 16)
}

// Error is a failure on one map_files link: it names the task, the VMA and
// the path involved.
type Error struct {
	PID        int
	Start, End uint64
	Op         string // "open", "stat", "readlink", "resolve"
	Path       string // the file path involved, when there is one
	Err        error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s map_files of %d %x-%x", e.Op, e.PID, e.Start, e.End)
	if e.Path != "" {
		s += " (" + e.Path + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Open opens the file a VMA maps through its map_files link (O_CLOEXEC is
// added). flag is O_RDONLY or O_RDWR; the kernel checks it against the
// link's mode, which follows the VMA's f_mode.
func Open(pid int, start, end uint64, flag int) (*os.File, error) {
	p := Path(pid, start, end)
	f, err := os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{PID: pid, Start: start, End: end, Op: "open", Err: err}
	}
	return f, nil
}

// Identity is what fstat says of a file: enough to tell whether two opens
// are one inode and whether a path still names it.
type Identity struct {
	Dev, Ino  uint64
	Mode      uint32 // st_mode: type and permission bits
	Size      int64
	MtimeNsec int64 // nanoseconds since the epoch
	Nlink     uint64
	UID, GID  uint32
}

// SameFile says whether a and b are one inode.
func (a Identity) SameFile(b Identity) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

func identityOf(st *unix.Stat_t) Identity {
	return Identity{
		Dev:       st.Dev,
		Ino:       st.Ino,
		Mode:      st.Mode,
		Size:      st.Size,
		MtimeNsec: st.Mtim.Nano(),
		Nlink:     st.Nlink,
		UID:       st.Uid,
		GID:       st.Gid,
	}
}

// IdentityOf fstats an open file.
func IdentityOf(f *os.File) (Identity, error) {
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		return Identity{}, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return Identity{}, err
	}
	if serr != nil {
		return Identity{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: serr}
	}
	return identityOf(&st), nil
}

// StatPath stats a path (following symlinks).
func StatPath(p string) (Identity, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return Identity{}, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return identityOf(&st), nil
}

// Stat stats the file a VMA maps, through its map_files link.
func Stat(pid int, start, end uint64) (Identity, error) {
	id, err := StatPath(Path(pid, start, end))
	if err != nil {
		return Identity{}, &Error{PID: pid, Start: start, End: end, Op: "stat", Err: err}
	}
	return id, nil
}

// Readlink returns the link text of a VMA's map_files entry: the file's
// path as the kernel knows it now, with " (deleted)" appended when it was
// unlinked ("/dev/zero (deleted)", "/memfd:x (deleted)" for shmem).
func Readlink(pid int, start, end uint64) (string, error) {
	s, err := os.Readlink(Path(pid, start, end))
	if err != nil {
		return "", &Error{PID: pid, Start: start, End: end, Op: "readlink", Err: err}
	}
	return s, nil
}

// ResolvedFile is what a VMA maps, checked against its path.
type ResolvedFile struct {
	Identity
	// Path is the link text without the " (deleted)" suffix.
	Path string
	// Deleted: the inode has no links left (Nlink == 0).
	Deleted bool
	// Renamed: the inode is still linked but Path names another inode or
	// nothing: the file was moved (or replaced) after it was mapped.
	Renamed bool
}

const deletedSuffix = " (deleted)"

// Resolve stats the file a VMA maps and decides whether it was deleted or
// renamed. hint is the maps path column; it names the VMA in errors when
// the link cannot be read.
//
// Shared anonymous memory ("/dev/zero") and memfd ("/memfd:NAME") objects
// are unlinked shmem inodes: they come back Deleted, and the caller tells
// them from deleted files by the VMA's kind (dev 0:1 is the shmem mount).
func Resolve(pid int, start, end uint64, hint string) (ResolvedFile, error) {
	var r ResolvedFile
	link, err := Readlink(pid, start, end)
	if err != nil {
		err.(*Error).Path = hint
		return r, err
	}
	r.Path = strings.TrimSuffix(link, deletedSuffix)
	if r.Identity, err = Stat(pid, start, end); err != nil {
		err.(*Error).Path = r.Path
		return r, err
	}
	if r.Nlink == 0 {
		r.Deleted = true
		return r, nil
	}
	own, err := StatPath(r.Path)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		r.Renamed = true
	case err != nil:
		return r, &Error{PID: pid, Start: start, End: end, Op: "resolve", Path: r.Path, Err: err}
	case !own.SameFile(r.Identity):
		r.Renamed = true
	}
	return r, nil
}
