package restore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// Deleted ("ghost") files come back from the image for the restore only.
//
// A path from an image is never followed blindly. Each file is written
// inside a private directory (0700, random name) that mmcr makes next to
// the original path, on the same filesystem, through a descriptor of the
// parent opened without following any symbolic link on the way
// (openat2 RESOLVE_NO_SYMLINKS; O_NOFOLLOW on the last component where
// openat2 is missing). Only then is it hard-linked to its original name,
// relative to that same descriptor, and only if the name is free (linkat
// never replaces): the restored /proc/PID/maps then name the file as they
// did at dump. When the name is taken, or its directory is gone or
// reached through a link, the file stays in the private directory (a
// fresh one under $TMPDIR when the parent cannot be used) and the maps
// show that path instead. Every name is removed once all tasks have
// mapped or opened the file, so it reads "(deleted)" again.

// ghostSet holds the deleted files recreated for the restore.
type ghostSet struct {
	paths   map[uint32]string // file ID -> where it can be opened
	entries []*ghostEntry
	done    bool
}

// ghostEntry is one recreated file: base in the private directory tmp
// (inside the directory parent), and maybe a link at parent/base too.
type ghostEntry struct {
	parent    int // fd of the parent directory
	parentDir string
	tmp       string // private directory's name in parent
	tmpFD     int
	base      string
	published bool // linked at parent/base
	dev, ino  uint64
}

// path returns where file f can be opened during the restore.
func (g *ghostSet) path(f *image.File) string {
	if p, ok := g.paths[f.ID]; ok {
		return p
	}
	return f.Path
}

// recreateGhosts writes every deleted file back from the image.
func recreateGhosts(img *image.Reader, tree *image.Tree, log *slog.Logger) (*ghostSet, error) {
	g := &ghostSet{paths: make(map[uint32]string)}
	for _, f := range tree.Files {
		if !f.Deleted || isSharedObject(tree, f) {
			continue
		}
		p, err := g.recreate(img, f)
		if err != nil {
			g.remove()
			return nil, err
		}
		log.Debug("recreated deleted file", "path", f.Path, "at", p)
		g.paths[f.ID] = p
	}
	return g, nil
}

// openDirNoFollow opens directory path without following a symbolic link
// in any component.
func openDirNoFollow(path string) (int, error) {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// privateDir makes a fresh 0700 directory with a random name in the
// directory parent.
func privateDir(parent int) (string, int, error) {
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		name := ".mmcr-ghost-" + hex.EncodeToString(b[:])
		err := unix.Mkdirat(parent, name, 0o700)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", -1, err
		}
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
			return "", -1, err
		}
		return name, fd, nil
	}
	return "", -1, errors.New("no free private directory name")
}

func (g *ghostSet) recreate(img *image.Reader, f *image.File) (string, error) {
	if f.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s: deleted file of mode %#o: %w", f.Path, f.Mode, ErrUnsupported)
	}
	base := filepath.Base(f.Path)
	if !filepath.IsAbs(f.Path) || base == "/" || base == "." || base == ".." {
		return "", fmt.Errorf("deleted file %q: not an absolute file path", f.Path)
	}
	rc, size, err := img.Ghost(f.ID)
	if err != nil {
		return "", fmt.Errorf("%s: read deleted file from image: %w", f.Path, err)
	}
	defer rc.Close()

	e := &ghostEntry{parent: -1, tmpFD: -1, base: base, parentDir: filepath.Dir(f.Path)}
	nearby := true
	if e.parent, err = openDirNoFollow(e.parentDir); err != nil {
		nearby = false
		e.parentDir = os.TempDir()
		if e.parent, err = openDirNoFollow(e.parentDir); err != nil {
			return "", fmt.Errorf("recreate deleted %s: open %s: %w", f.Path, e.parentDir, err)
		}
	}
	g.entries = append(g.entries, e)
	if e.tmp, e.tmpFD, err = privateDir(e.parent); err != nil {
		// A read-only or foreign parent: the private place goes to $TMPDIR.
		unix.Close(e.parent)
		nearby = false
		e.parentDir = os.TempDir()
		if e.parent, err = openDirNoFollow(e.parentDir); err != nil {
			return "", fmt.Errorf("recreate deleted %s: open %s: %w", f.Path, e.parentDir, err)
		}
		if e.tmp, e.tmpFD, err = privateDir(e.parent); err != nil {
			return "", fmt.Errorf("recreate deleted %s: private dir in %s: %w", f.Path, e.parentDir, err)
		}
	}
	inTmp := filepath.Join(e.parentDir, e.tmp, base)
	fd, err := unix.Openat(e.tmpFD, base, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", fmt.Errorf("recreate deleted %s: %w", inTmp, err)
	}
	out := os.NewFile(uintptr(fd), inTmp)
	defer out.Close()
	if _, err := io.CopyN(out, rc, size); err != nil {
		return "", fmt.Errorf("write deleted %s: %w", inTmp, err)
	}
	// Identity as far as it can be made: owner, mode, mtime.
	unix.Fchown(fd, int(f.UID), int(f.GID))
	unix.Fchmod(fd, f.Mode&0o7777)
	ts := []unix.Timespec{unix.NsecToTimespec(f.MtimeNsec), unix.NsecToTimespec(f.MtimeNsec)}
	unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("stat recreated %s: %w", inTmp, err)
	}
	e.dev, e.ino = st.Dev, st.Ino
	if nearby {
		// linkat never replaces: a taken name fails with EEXIST.
		if err := unix.Linkat(e.tmpFD, base, e.parent, base, 0); err == nil {
			e.published = true
			return f.Path, nil
		}
	}
	return inTmp, nil
}

// unlink removes the recreated files once every task maps or holds them,
// so they read "(deleted)" again.
func (g *ghostSet) unlink() error {
	if g == nil || g.done {
		return nil
	}
	g.done = true
	var first error
	for _, e := range g.entries {
		if e.published {
			// Only our file: the name may have been replaced meanwhile.
			var st unix.Stat_t
			if err := unix.Fstatat(e.parent, e.base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == e.dev && st.Ino == e.ino {
				if err := unix.Unlinkat(e.parent, e.base, 0); err != nil && first == nil {
					first = fmt.Errorf("unlink recreated %s: %w", filepath.Join(e.parentDir, e.base), err)
				}
			}
		}
		if e.tmpFD >= 0 {
			if err := unix.Unlinkat(e.tmpFD, e.base, 0); err != nil && !errors.Is(err, unix.ENOENT) && first == nil {
				first = fmt.Errorf("unlink recreated %s: %w", filepath.Join(e.parentDir, e.tmp, e.base), err)
			}
			unix.Close(e.tmpFD)
			unix.Unlinkat(e.parent, e.tmp, unix.AT_REMOVEDIR)
		}
		if e.parent >= 0 {
			unix.Close(e.parent)
		}
	}
	g.entries = nil
	return first
}

// remove is unlink on failure: best effort.
func (g *ghostSet) remove() { g.unlink() }
