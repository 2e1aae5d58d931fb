package restore

import (
	"errors"
	"fmt"
	"os"
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
