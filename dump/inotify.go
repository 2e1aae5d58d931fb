package dump

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"golang.org/x/sys/unix"
)

// inotifyWatches turns the marks of an inotify fd into watches, each with
// a path of its inode for restore to watch again: fdinfo names the inode
// only by its file handle, which open_by_handle_at opens through a mount
// of its filesystem (CAP_DAC_READ_SEARCH). A watched inode no path leads
// to any more (deleted, or on a filesystem mmcr does not see) is refused.
func inotifyWatches(fd procfs.FD) ([]image.InotifyWatch, error) {
	var ws []image.InotifyWatch
	mounts := map[uint32]int{} // sdev -> an O_PATH fd of one of its mounts
	defer func() {
		for _, m := range mounts {
			unix.Close(m)
		}
	}()
	for _, m := range fd.Inotify {
		mfd, ok := mounts[m.Sdev]
		if !ok {
			var err error
			if mfd, err = openMountOf(m.Sdev); err != nil {
				return nil, fmt.Errorf("inotify fd %d, watch %d: %w", fd.Num, m.WD, err)
			}
			mounts[m.Sdev] = mfd
		}
		path, err := pathOfHandle(mfd, m)
		if err != nil {
			return nil, fmt.Errorf("inotify fd %d, watch %d (inode %d): %w", fd.Num, m.WD, m.Ino, err)
		}
		ws = append(ws, image.InotifyWatch{WD: m.WD, Mask: m.Mask, IgnoredMask: m.IgnoredMask, Ino: m.Ino,
			Sdev: m.Sdev, HandleType: m.HandleType, Handle: m.Handle, Path: path})
	}
	slices.SortFunc(ws, func(a, b image.InotifyWatch) int { return int(a.WD - b.WD) })
	return ws, nil
}

// openMountOf opens the mount point (a directory; open_by_handle_at
// refuses an O_PATH one) of a mount of the filesystem
// whose kernel dev_t is sdev (major<<20 | minor), from mmcr's mountinfo.
func openMountOf(sdev uint32) (int, error) {
	want := fmt.Sprintf("%d:%d", sdev>>20, sdev&0xfffff)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return -1, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[2] != want {
			continue
		}
		point, err := unquoteMountPath(fields[4])
		if err != nil {
			continue
		}
		if fd, err := unix.Open(point, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			return fd, nil
		}
	}
	return -1, fmt.Errorf("no mount of device %s: %w", want, ErrUnsupported)
}

// unquoteMountPath undoes mountinfo's octal escapes (\040 for a space...).
func unquoteMountPath(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// pathOfHandle opens m's inode by its file handle through mfd and
// returns the path /proc gives that open, checked to lead back to the
// very inode.
func pathOfHandle(mfd int, m procfs.InotifyMark) (string, error) {
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(m.HandleType, m.Handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("open by its file handle: %w", os.NewSyscallError("open_by_handle_at", err))
	}
	defer unix.Close(fd)
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	var st unix.Stat_t
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, deletedSuffix) || unix.Stat(path, &st) != nil || st.Ino != m.Ino {
		return "", fmt.Errorf("no path leads to it (%q): %w", path, ErrUnsupported)
	}
	return path, nil
}
