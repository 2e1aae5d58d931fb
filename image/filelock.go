package image

import (
	"fmt"
)

// fileLocksName is CRIU's filelocks.img: a file_lock_entry per lock, naming
// the task (pid) and the fd it was taken through; its type is F_RDLCK (0)
// or F_WRLCK (1) for a POSIX or OFD lock, LOCK_SH (1) or LOCK_EX (2) for
// a flock, as CRIU writes them.
const fileLocksName = "filelocks.img"

const (
	lockRd = 0 // F_RDLCK
	lockWr = 1 // F_WRLCK
	lockSh = 1 // LOCK_SH
	lockEx = 2 // LOCK_EX
)

// fileLockEntries encodes the locks of every task's fds.
func fileLockEntries(t *Tree) [][]byte {
	var entries [][]byte
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			for _, l := range fd.Locks {
				typ := uint32(lockRd)
				switch {
				case l.Kind == LockFlock && l.Write:
					typ = lockEx
				case l.Kind == LockFlock:
					typ = lockSh
				case l.Write:
					typ = lockWr
				}
				var e protoEnc // file_lock_entry
				e.uint32(1, uint32(l.Kind))
				e.uint32(2, typ)
				e.int32(3, int32(task.PID))
				e.int32(4, int32(fd.Num))
				e.uint64(5, uint64(l.Start))
				e.uint64(6, uint64(l.Len))
				entries = append(entries, e.b)
			}
		}
	}
	return entries
}

// checkLocks checks the locks of task's fds: on regular files only, of a
// known kind, a flock whole.
func checkLocks(task *Task) error {
	for _, fd := range task.FDs {
		for _, l := range fd.Locks {
			if fd.Kind != FDRegular {
				return fmt.Errorf("fd %d (%s) holds a file lock", fd.Num, fd.Kind)
			}
			if l.Kind != LockPOSIX && l.Kind != LockFlock && l.Kind != LockOFD || l.Start < 0 || l.Len < 0 ||
				l.Kind == LockFlock && (l.Start != 0 || l.Len != 0) {
				return fmt.Errorf("fd %d: lock of kind %d on %d+%d", fd.Num, l.Kind, l.Start, l.Len)
			}
		}
	}
	return nil
}

// readFileLocks decodes filelocks.img and gives each lock to its fd.
func (r *Reader) readFileLocks(t *Tree) error {
	data, err := r.readMeta(fileLocksName)
	if err != nil {
		return err
	}
	byPID := map[int]*Task{}
	for _, task := range t.Tasks {
		byPID[task.PID] = task
	}
	d, err := newImgDecoder(fileLocksName, data, "FILE_LOCKS")
	if err != nil {
		return err
	}
	decode := func(b []byte) error {
		var flag, typ uint32
		var pid, num int32
		var start, length uint64
		m := protoDec{msg: "file_lock_entry", b: b}
		for m.next() {
			switch m.num {
			case 1:
				m.uint32(&flag)
			case 2:
				m.uint32(&typ)
			case 3:
				m.int32(&pid)
			case 4:
				m.int32(&num)
			case 5:
				m.uint64(&start)
			case 6:
				m.uint64(&length)
			}
		}
		if err := m.end("flag type pid fd start len"); err != nil {
			return fileErr(fileLocksName, ErrCorrupt, "%v", err)
		}
		l := FileLock{Kind: LockKind(flag), Start: int64(start), Len: int64(length)}
		switch {
		case l.Kind == LockFlock && (typ == lockSh || typ == lockEx):
			l.Write = typ == lockEx
		case l.Kind != LockFlock && (typ == lockRd || typ == lockWr):
			l.Write = typ == lockWr
		default:
			return fileErr(fileLocksName, ErrUnsupported, "lock of kind %d and type %d", flag, typ)
		}
		var fd *FD
		if task := byPID[int(pid)]; task != nil {
			for _, f := range task.FDs {
				if f.Num == int(num) {
					fd = f
				}
			}
		}
		if fd == nil {
			return fileErr(fileLocksName, ErrCorrupt, "lock of task %d fd %d, which the image does not have", pid, num)
		}
		fd.Locks = append(fd.Locks, l)
		return nil
	}
	for {
		more, err := d.next(decode)
		if err != nil || !more {
			return err
		}
	}
}
