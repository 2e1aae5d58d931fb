package restore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// validate checks, before anything is created, that the tree can be
// restored here: supported shape, every mapped file unchanged, every
// original pid free.
func (rs *restorer) validate() error {
	tree := rs.tree
	if len(tree.Tasks) == 0 {
		return errors.New("image holds no task")
	}
	seen := make(map[int]bool)
	for i, t := range tree.Tasks {
		if len(t.Threads) == 0 {
			return fmt.Errorf("task %d has no thread in the image", t.PID)
		}
		if t.Threads[0].TID != t.PID {
			return fmt.Errorf("task %d: thread 0 is %d, not the leader", t.PID, t.Threads[0].TID)
		}
		if i > 0 && !seen[t.PPID] {
			return fmt.Errorf("task %d: parent %d not restored before it", t.PID, t.PPID)
		}
		if seen[t.PID] {
			return fmt.Errorf("pid %d appears twice in the image", t.PID)
		}
		seen[t.PID] = true
	}
	// Files whose contents are mapped must be the very files of the dump.
	strict := make(map[uint32]bool)
	for _, t := range tree.Tasks {
		for _, v := range t.VMAs {
			if v.Kind == image.KindPrivateFile || v.Kind == image.KindSharedFile {
				if tree.FileByID(v.FileID) == nil {
					return fmt.Errorf("task %d vma %#x-%#x: no file %d in the image", t.PID, v.Start, v.End, v.FileID)
				}
				strict[v.FileID] = true
			}
		}
		if t.Mm.ExeFileID != 0 {
			strict[t.Mm.ExeFileID] = true
		}
	}
	for _, f := range tree.Files {
		if f.Deleted || isSharedObject(tree, f) {
			continue // recreated from the image
		}
		if err := checkFile(f, strict[f.ID]); err != nil {
			return err
		}
	}
	for _, t := range tree.Tasks {
		for _, th := range t.Threads {
			if err := checkPidFree(th.TID); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFile compares the file at f.Path with its dumped identity: all of it
// when strict (its pages are mapped), only existence and type otherwise
// (open files may legitimately grow after the dump).
func checkFile(f *image.File, strict bool) error {
	if f.Renamed && strict {
		return fmt.Errorf("%s: file was renamed after it was mapped: %w", f.Path, ErrUnsupported)
	}
	var st unix.Stat_t
	if err := unix.Stat(f.Path, &st); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if st.Mode&unix.S_IFMT != f.Mode&unix.S_IFMT {
		return fmt.Errorf("%s: file type %#o != dumped %#o", f.Path, st.Mode&unix.S_IFMT, f.Mode&unix.S_IFMT)
	}
	if !strict {
		return nil
	}
	switch {
	case st.Size != f.Size:
		return fmt.Errorf("%s: size %d != dumped %d", f.Path, st.Size, f.Size)
	case st.Mode != f.Mode:
		return fmt.Errorf("%s: mode %#o != dumped %#o", f.Path, st.Mode, f.Mode)
	case st.Mtim.Nano() != f.MtimeNsec:
		return fmt.Errorf("%s: mtime %d != dumped %d", f.Path, st.Mtim.Nano(), f.MtimeNsec)
	case st.Dev != f.Dev || st.Ino != f.Ino:
		return fmt.Errorf("%s: inode %d:%d != dumped %d:%d (file replaced)", f.Path, st.Dev, st.Ino, f.Dev, f.Ino)
	}
	return nil
}

// isSharedObject says whether f is the inode of a shared object (a memfd
// mapped MAP_PRIVATE too): restore makes it from the shared object's pages.
func isSharedObject(tree *image.Tree, f *image.File) bool {
	for _, o := range tree.SharedObjects {
		if o.Dev == f.Dev && o.Ino == f.Ino {
			return true
		}
	}
	return false
}

// checkPidFree fails when pid is taken (a live task or a zombie not reaped yet).
func checkPidFree(pid int) error {
	err := unix.Kill(pid, 0)
	if err == nil || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("pid %d is already in use", pid)
	}
	if _, err := os.Lstat("/proc/" + strconv.Itoa(pid)); err == nil {
		return fmt.Errorf("pid %d is already in use", pid)
	}
	return nil
}

// ghostSet holds the deleted files recreated for the restore.
type ghostSet struct {
	paths map[uint32]string // file ID -> where it was recreated
	dirs  []string          // private temp dirs made when the path was taken
	done  bool
}

// path returns where file f can be opened during the restore.
func (g *ghostSet) path(f *image.File) string {
	if p, ok := g.paths[f.ID]; ok {
		return p
	}
	return f.Path
}

// recreateGhosts writes every deleted file back from the image, at its
// original path when it is free, in a private temp dir next to it otherwise.
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

func (g *ghostSet) recreate(img *image.Reader, f *image.File) (string, error) {
	if f.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s: deleted file of mode %#o: %w", f.Path, f.Mode, ErrUnsupported)
	}
	rc, size, err := img.Ghost(f.ID)
	if err != nil {
		return "", fmt.Errorf("%s: read deleted file from image: %w", f.Path, err)
	}
	defer rc.Close()
	path := f.Path
	out, err := createExcl(path, f.Mode&0o7777)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOENT) {
		dir := filepath.Dir(path)
		if errors.Is(err, unix.ENOENT) {
			dir = os.TempDir()
		}
		tmp, terr := os.MkdirTemp(dir, ".mmcr-ghost-")
		if terr != nil {
			return "", fmt.Errorf("%s: path taken and no temp dir: %w", f.Path, terr)
		}
		g.dirs = append(g.dirs, tmp)
		path = filepath.Join(tmp, filepath.Base(f.Path))
		out, err = createExcl(path, f.Mode&0o7777)
	}
	if err != nil {
		return "", fmt.Errorf("recreate deleted %s: %w", path, err)
	}
	g.paths[f.ID] = path
	defer out.Close()
	if _, err := io.CopyN(out, rc, size); err != nil {
		return "", fmt.Errorf("write deleted %s: %w", path, err)
	}
	// Identity as far as it can be made: mode (umask aside), owner, mtime.
	out.Chmod(os.FileMode(f.Mode & 0o777))
	unix.Fchmod(int(out.Fd()), f.Mode&0o7777)
	unix.Fchown(int(out.Fd()), int(f.UID), int(f.GID))
	ts := []unix.Timespec{unix.NsecToTimespec(f.MtimeNsec), unix.NsecToTimespec(f.MtimeNsec)}
	unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
	return path, nil
}

func createExcl(path string, mode uint32) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// unlink removes the recreated files once every task maps or holds them,
// so they read "(deleted)" again.
func (g *ghostSet) unlink() error {
	if g == nil || g.done {
		return nil
	}
	g.done = true
	var first error
	for _, p := range g.paths {
		if err := os.Remove(p); err != nil && first == nil {
			first = fmt.Errorf("unlink recreated %s: %w", p, err)
		}
	}
	for _, d := range g.dirs {
		os.Remove(d)
	}
	return first
}

// remove is unlink on failure: best effort.
func (g *ghostSet) remove() { g.unlink() }
