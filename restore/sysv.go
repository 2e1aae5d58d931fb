package restore

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// A SysV segment lives in the IPC namespace, not in a task. One that is
// still there at restore (same id, key and size: the tree's tasks were
// killed, the segment was not removed) is attached again as it is, like a
// shared file whose data stays in the file. One that is gone (removed with
// IPC_RMID, it ended with the dumped tasks) is made again with its id
// (kernel.shm_next_id), key, mode and owner, filled with the dumped pages,
// attached by every task that had it, and removed again once they all
// have. Tasks attach it with shmat at the dumped address.

const (
	shmNextID  = "/proc/sys/kernel/shm_next_id"
	shmExec    = 0o100000 // SHM_EXEC of linux/shm.h (x/sys lacks it)
	shmHugetlb = 0o4000   // SHM_HUGETLB
	shmLock    = 11       // shmctl's SHM_LOCK (x/sys lacks it)
)

// createSysV makes the SysV segments of the image that are gone and
// checks that those still there are the dumped ones.
func (rs *restorer) createSysV() error {
	for _, o := range rs.tree.SharedObjects {
		s := o.SysV
		if s == nil {
			continue
		}
		var desc unix.SysvShmDesc
		_, err := unix.SysvShmCtl(int(s.ID), unix.IPC_STAT, &desc)
		switch {
		case err == nil && !s.Removed() && desc.Perm.Key == s.Key && desc.Segsz == s.Size && desc.Perm.Mode&0o1000 == 0:
			continue // still there: attached as it is
		case err == nil:
			return fmt.Errorf("SysV segment %d (key %#x, %d bytes) is another segment now (key %#x, %d bytes)",
				s.ID, uint32(s.Key), s.Size, uint32(desc.Perm.Key), desc.Segsz)
		case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM):
			return fmt.Errorf("SysV segment %d: %w", s.ID, err)
		}
		if err := rs.makeSysV(o); err != nil {
			return fmt.Errorf("make SysV segment %d (key %#x) again: %w", s.ID, uint32(s.Key), err)
		}
	}
	return nil
}

// makeSysV makes o's segment with its dumped id and fills it.
func (rs *restorer) makeSysV(o *image.SharedObject) error {
	s := o.SysV
	if err := os.WriteFile(shmNextID, []byte(strconv.Itoa(int(s.ID))), 0); err != nil {
		return fmt.Errorf("ask for id %d: %w", s.ID, err)
	}
	flags := unix.IPC_CREAT | unix.IPC_EXCL | int(s.Mode&0o777)
	if h := o.HugePageSize; h != 0 {
		flags |= shmHugetlb | bits.TrailingZeros64(h)<<unix.MAP_HUGE_SHIFT // SHM_HUGE_SHIFT is the same
	}
	id, err := unix.SysvShmGet(int(s.Key), int(s.Size), flags)
	if err != nil {
		os.WriteFile(shmNextID, []byte("-1"), 0) // the kernel clears it only once it is used
		return err
	}
	rs.sysvMade = append(rs.sysvMade, id)
	if id != int(s.ID) {
		return fmt.Errorf("got id %d", id)
	}
	desc := unix.SysvShmDesc{Perm: unix.SysvIpcPerm{Uid: s.UID, Gid: s.GID, Mode: s.Mode & 0o777}}
	if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &desc); err != nil {
		return fmt.Errorf("set its owner and mode: %w", err)
	}
	if s.Locked() {
		// Before it is filled: its pages stay in memory from the first.
		if _, err := unix.SysvShmCtl(id, shmLock, nil); err != nil {
			return fmt.Errorf("lock it in memory (SHM_LOCK): %w", err)
		}
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("attach it to fill it: %w", err)
	}
	defer unix.SysvShmDetach(mem)
	return rs.fillMapped(o.ID, mem)
}

// attachSysV attaches o's segment in tk at v, a whole attachment.
func (rs *restorer) attachSysV(tk *task, v *image.VMA, o *image.SharedObject) error {
	var flags uint64
	if v.Prot&unix.PROT_WRITE == 0 {
		flags |= unix.SHM_RDONLY
	}
	if v.Prot&unix.PROT_EXEC != 0 {
		flags |= shmExec
	}
	got, err := tk.sys(unix.SYS_SHMAT, uint64(o.SysV.ID), v.Start, flags)
	if err == nil && got != v.Start {
		err = fmt.Errorf("attached at %#x", got)
	}
	if err != nil {
		return fmt.Errorf("attach SysV segment %d: %w", o.SysV.ID, err)
	}
	return nil
}

// finishSysV removes again the segments made that were removed at dump:
// every task has attached its own by now. They leave sysvMade (their ids
// may serve another segment once they are gone); the others stay in it
// until the restore is through.
func (rs *restorer) finishSysV() error {
	for _, o := range rs.tree.SharedObjects {
		if s := o.SysV; s != nil && s.Removed() {
			if _, err := unix.SysvShmCtl(int(s.ID), unix.IPC_RMID, nil); err != nil {
				return fmt.Errorf("remove SysV segment %d again: %w", s.ID, err)
			}
			rs.sysvMade = slices.DeleteFunc(rs.sysvMade, func(id int) bool { return id == int(s.ID) })
		}
	}
	return nil
}

// abortSysV removes the segments restore made and still holds.
func (rs *restorer) abortSysV() {
	for _, id := range rs.sysvMade {
		unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	rs.sysvMade = nil
}
