package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUntrusted is wrapped by CheckTrusted's refusals: an image directory
// someone else could have written.
var ErrUntrusted = errors.New("untrusted image directory")

// ErrLocked is wrapped by LockDir's refusal: another mmcr works on the dir.
var ErrLocked = errors.New("image directory in use")

// CheckTrusted refuses an image directory that someone other than uid (or
// root) could have written: the directory or a file in it owned by another
// user, or writable by group or others, or a symbolic link or anything but
// a regular file inside it. An image is a process's memory and
// credentials: restoring a planted one runs the planter's code with the
// restorer's rights.
func CheckTrusted(dir string, uid int) error {
	trusted := func(what string, st *unix.Stat_t) error {
		if st.Uid != uint32(uid) && st.Uid != 0 {
			return fmt.Errorf("%w: %s is owned by uid %d, not by uid %d or root", ErrUntrusted, what, st.Uid, uid)
		}
		if st.Mode&0o022 != 0 {
			return fmt.Errorf("%w: %s is writable by group or others (mode %#o)", ErrUntrusted, what, st.Mode&0o7777)
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("image: %w", &os.PathError{Op: "lstat", Path: dir, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%w: %s is not a directory (a symbolic link?)", ErrUntrusted, dir)
	}
	if err := trusted("image dir "+dir, &st); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("image: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
		case unix.S_IFLNK:
			return fmt.Errorf("%w: %s is a symbolic link", ErrUntrusted, p)
		default:
			return fmt.Errorf("%w: %s is not a regular file (mode %#o)", ErrUntrusted, p, st.Mode)
		}
		if err := trusted(p, &st); err != nil {
			return err
		}
	}
	return nil
}

// LockDir takes an exclusive flock on the directory itself (no lock file:
// restore may not be allowed to create one) and returns its release. A
// second mmcr dumping into or restoring from the same directory fails
// at once instead of mixing its files with the first one's.
func LockDir(dir string) (release func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image: lock %s: %w", dir, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("%w: %s is locked by another mmcr (a dump or restore of it is running)", ErrLocked, dir)
		}
		return nil, fmt.Errorf("image: lock %s: %w", dir, os.NewSyscallError("flock", err))
	}
	return func() { unix.Close(fd) }, nil
}

// openNoFollow opens a file of the image for reading, refusing a symbolic
// link in its place (O_NOFOLLOW) and not blocking on a FIFO.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
