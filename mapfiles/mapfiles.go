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
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
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
	r, err := ResolveLink(Path(pid, start, end))
	if err != nil {
		op, path := "resolve", r.Path
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == Path(pid, start, end) {
			op = pe.Op // the link itself failed: name the VMA by its hint
			if path == "" {
				path = hint
			}
			err = pe.Err
		}
		return r, &Error{PID: pid, Start: start, End: end, Op: op, Path: path, Err: err}
	}
	return r, nil
}

// ResolveLink is Resolve for any /proc magic link: a map_files entry, or
// exe, cwd, root, fd/N. Link text that is no absolute path (pipe:[...],
// socket:[...], anon_inode:...) is never Renamed. On error, r.Path holds
// the link text when it was read.
func ResolveLink(link string) (r ResolvedFile, err error) {
	text, err := os.Readlink(link)
	if err != nil {
		return r, err
	}
	r.Path = strings.TrimSuffix(text, deletedSuffix)
	if r.Identity, err = StatPath(link); err != nil {
		return r, err
	}
	if r.Nlink == 0 {
		r.Deleted = true
		return r, nil
	}
	if !strings.HasPrefix(r.Path, "/") {
		return r, nil
	}
	own, err := StatPath(r.Path)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		r.Renamed = true
	case err != nil:
		return r, fmt.Errorf("stat %s (behind %s): %w", r.Path, link, err)
	case !own.SameFile(r.Identity):
		r.Renamed = true
	}
	return r, nil
}

// Range is one map_files entry: a VMA [Start, End) that maps a file.
type Range struct{ Start, End uint64 }

// List reads /proc/PID/map_files: every file-backed VMA (shmem and memfd
// included), sorted by Start.
func List(pid int) ([]Range, error) {
	dir := Root + "/" + strconv.Itoa(pid) + "/map_files"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Range, 0, len(ents))
	for _, e := range ents {
		lo, hi, ok := strings.Cut(e.Name(), "-")
		s, err1 := strconv.ParseUint(lo, 16, 64)
		t, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || t <= s {
			return nil, fmt.Errorf("%s: unexpected entry %q", dir, e.Name())
		}
		out = append(out, Range{s, t})
	}
	// ReadDir sorts by name; hex names of one width sort by value, but
	// widths differ (0x400000 vs 0x7f...): sort by number.
	slices.SortFunc(out, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	return out, nil
}
