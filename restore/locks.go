package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// restoreLocks takes again the file locks the task held through its fds,
// in the batch right after restoreFDs has put them in place: flock and
// OFD locks on the open file description, POSIX ones as the task's own.
// None waits: a lock another process holds now fails the restore, naming
// the file.
func (rs *restorer) restoreLocks(tk *task, c *calls) error {
	for _, fd := range tk.t.FDs {
		for _, l := range fd.Locks {
			what := fmt.Sprintf("lock fd %d", fd.Num)
			if f := rs.tree.FileByID(fd.FileID); f != nil {
				what = fmt.Sprintf("lock %s (fd %d)", f.Path, fd.Num)
			}
			if l.Kind == image.LockFlock {
				op := uint64(unix.LOCK_SH)
				if l.Write {
					op = unix.LOCK_EX
				}
				c.add(what, unix.SYS_FLOCK, uint64(fd.Num), op|unix.LOCK_NB)
				continue
			}
			// struct flock: l_type, l_whence (SEEK_SET), l_start, l_len, l_pid.
			fl := make([]byte, 32)
			typ := uint16(unix.F_RDLCK)
			if l.Write {
				typ = unix.F_WRLCK
			}
			binary.LittleEndian.PutUint16(fl[0:], typ)
			binary.LittleEndian.PutUint64(fl[8:], uint64(l.Start))
			binary.LittleEndian.PutUint64(fl[16:], uint64(l.Len))
			cmd := uint64(unix.F_SETLK)
			if l.Kind == image.LockOFD {
				cmd = unix.F_OFD_SETLK
			}
			p, err := c.arg(fl)
			if err != nil {
				return err
			}
			c.add(what, unix.SYS_FCNTL, uint64(fd.Num), cmd, p)
		}
	}
	return nil
}
