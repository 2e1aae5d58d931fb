package procfs

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Threads lists /proc/PID/task, sorted; the leader (TID == PID) is among
// them while it lives.
func (fs FS) Threads(pid int) ([]int, error) {
	return readPidDir(fs.path(pid, "task"))
}

// readPidDir lists the numeric names of a directory, sorted.
func readPidDir(name string) ([]int, error) {
	d, err := openProc(name)
	if err != nil {
		return nil, err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// ThreadComm reads /proc/PID/task/TID/comm: a thread's own name, without
// the trailing newline.
func (fs FS) ThreadComm(pid, tid int) (string, error) {
	b, err := readFile(fs.path(pid, "task", strconv.Itoa(tid), "comm"))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Children reads /proc/PID/task/TID/children: the children that thread
// tid created (CONFIG_PROC_CHILDREN). A task's children are the union over
// its threads.
func (fs FS) Children(pid, tid int) ([]int, error) {
	name := fs.path(pid, "task", strconv.Itoa(tid), "children")
	b, err := readFile(name)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, s := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %w: %q", name, ErrParse, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// AllChildren returns the children of every thread of pid, sorted.
func (fs FS) AllChildren(pid int) ([]int, error) {
	tids, err := fs.Threads(pid)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, tid := range tids {
		c, err := fs.Children(pid, tid)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Auxv reads /proc/PID/auxv as 64-bit words: (type, value) pairs up to and
// including the AT_NULL pair.
func (fs FS) Auxv(pid int) ([]uint64, error) {
	name := fs.path(pid, "auxv")
	b, err := readAll(name)
	if err != nil {
		return nil, err
	}
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("%s: %w: %d bytes is not whole pairs", name, ErrParse, len(b))
	}
	var out []uint64
	for i := 0; i+16 <= len(b); i += 16 {
		typ := binary.LittleEndian.Uint64(b[i:])
		val := binary.LittleEndian.Uint64(b[i+8:])
		out = append(out, typ, val)
		if typ == 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s: %w: no AT_NULL", name, ErrParse)
}

// Personality reads /proc/PID/personality (hex).
func (fs FS) Personality(pid int) (uint32, error) {
	name := fs.path(pid, "personality")
	b, err := readFile(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %q", name, ErrParse, b)
	}
	return uint32(v), nil
}

// OomScoreAdj reads /proc/PID/oom_score_adj (decimal, -1000..1000).
func (fs FS) OomScoreAdj(pid int) (int, error) {
	name := fs.path(pid, "oom_score_adj")
	b, err := readFile(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < -1000 || v > 1000 {
		return 0, fmt.Errorf("%s: %w: %q", name, ErrParse, b)
	}
	return v, nil
}

// FDs lists the open descriptors of pid with their fdinfo, sorted by
// number. A descriptor closed between listing and reading is left out.
func (fs FS) FDs(pid int) ([]FD, error) {
	nums, err := readPidDir(fs.path(pid, "fd"))
	if err != nil {
		return nil, err
	}
	out := make([]FD, 0, len(nums))
	for _, n := range nums {
		fd, err := fs.FD(pid, n)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		out = append(out, fd)
	}
	return out, nil
}

// FD reads one descriptor: /proc/PID/fd/N and /proc/PID/fdinfo/N.
func (fs FS) FD(pid, num int) (FD, error) {
	fd := FD{Num: num}
	n := strconv.Itoa(num)
	var err error
	if fd.Target, err = os.Readlink(fs.path(pid, "fd", n)); err != nil {
		return FD{}, err
	}
	name := fs.path(pid, "fdinfo", n)
	b, err := readFile(name)
	if err != nil {
		return FD{}, err
	}
	if err := parseFdinfo(b, &fd); err != nil {
		return FD{}, fmt.Errorf("%s: %w", name, err)
	}
	return fd, nil
}

// parseFdinfo reads the pos, flags, mnt_id and ino lines of fdinfo, an
// eventfd's count and mode and an epoll's targets; the rest (inotify
// marks, ...) is per file type and skipped.
func parseFdinfo(b []byte, fd *FD) error {
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "eventfd-count":
			var n uint64
			n, err = strconv.ParseUint(val, 16, 64)
			if fd.Eventfd == nil {
				fd.Eventfd = &EventfdInfo{}
			}
			fd.Eventfd.Count = n
		case "inotify wd":
			var m InotifyMark
			m, err = parseInotifyMark(line)
			fd.Inotify = append(fd.Inotify, m)
		case "Pid":
			var pid int
			pid, err = strconv.Atoi(val)
			fd.PidfdPID = &pid
		case "sigmask":
			var m uint64
			m, err = strconv.ParseUint(val, 16, 64)
			fd.Signalfd = &m
		case "clockid", "ticks", "settime flags", "it_value", "it_interval":
			if fd.Timerfd == nil {
				fd.Timerfd = &TimerfdInfo{}
			}
			err = parseTimerfdLine(fd.Timerfd, key, val)
		case "eventfd-semaphore":
			if fd.Eventfd == nil {
				fd.Eventfd = &EventfdInfo{}
			}
			fd.Eventfd.Semaphore = val == "1"
		case "lock":
			var l FileLock
			var blocked bool
			if l, blocked, err = parseLock(val); err == nil && !blocked {
				fd.Locks = append(fd.Locks, l)
			}
		case "tfd":
			var tg EpollTarget
			tg, err = parseEpollTarget(line)
			fd.EpollTargets = append(fd.EpollTargets, tg)
		case "pos":
			fd.Pos, err = strconv.ParseInt(val, 10, 64)
			seen++
		case "flags":
			var v uint64
			v, err = strconv.ParseUint(val, 8, 32)
			fd.Flags = int(v)
			seen++
		case "mnt_id":
			fd.MntID, err = strconv.Atoi(val)
		case "ino":
			fd.Ino, err = strconv.ParseUint(val, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("%w: %s %q", ErrParse, key, val)
		}
	}
	if seen < 2 {
		return fmt.Errorf("%w: no pos or flags", ErrParse)
	}
	return nil
}

// parseInotifyMark parses an inotify fdinfo line.
func parseInotifyMark(line string) (InotifyMark, error) {
	var m InotifyMark
	var wd, sdev, mask, ignored, nbytes, typ uint64
	var handle string
	n, err := fmt.Sscanf(line, "inotify wd:%x ino:%x sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%s",
		&wd, &m.Ino, &sdev, &mask, &ignored, &nbytes, &typ, &handle)
	if n != 8 || err != nil || wd > 1<<31-1 || sdev > 1<<32-1 || mask > 1<<32-1 || ignored > 1<<32-1 || typ > 1<<31-1 {
		return m, fmt.Errorf("not an inotify watch line")
	}
	b, err := hex.DecodeString(handle)
	if err != nil || uint64(len(b)) != nbytes {
		return m, fmt.Errorf("file handle %q of %d bytes", handle, nbytes)
	}
	m.WD, m.Sdev, m.Mask, m.IgnoredMask, m.HandleType, m.Handle = int32(wd), uint32(sdev), uint32(mask), uint32(ignored), int32(typ), b
	return m, nil
}

// parseTimerfdLine parses one of a timerfd's fdinfo lines into t.
func parseTimerfdLine(t *TimerfdInfo, key, val string) error {
	switch key {
	case "clockid":
		c, err := strconv.ParseInt(val, 10, 32)
		t.Clock = int32(c)
		return err
	case "ticks":
		n, err := strconv.ParseUint(val, 10, 64)
		t.Ticks = n
		return err
	case "settime flags":
		f, err := strconv.ParseUint(val, 8, 32)
		t.SettimeFlags = uint32(f)
		return err
	}
	// "(SECONDS, NANOSECONDS)"
	var sec, nsec int64
	if n, err := fmt.Sscanf(val, "(%d, %d)", &sec, &nsec); n != 2 || err != nil || sec < 0 || nsec < 0 || nsec >= 1e9 {
		return fmt.Errorf("not (seconds, nanoseconds)")
	}
	if key == "it_value" {
		t.ValueNsec = sec*1e9 + nsec
	} else {
		t.IntervalNsec = sec*1e9 + nsec
	}
	return nil
}

// parseEpollTarget parses "tfd: 6 events: 19 data: 5a3e20  pos:0 ino:406 sdev:10".
func parseEpollTarget(line string) (EpollTarget, error) {
	var tg EpollTarget
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "tfd:" || f[2] != "events:" || f[4] != "data:" {
		return tg, fmt.Errorf("%w: epoll target %q", ErrParse, line)
	}
	n, err1 := strconv.Atoi(f[1])
	ev, err2 := strconv.ParseUint(f[3], 16, 32)
	data, err3 := strconv.ParseUint(f[5], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || n < 0 {
		return tg, fmt.Errorf("%w: epoll target %q", ErrParse, line)
	}
	tg.FD, tg.Events, tg.Data = n, uint32(ev), data
	for _, kv := range f[6:] {
		if v, ok := strings.CutPrefix(kv, "ino:"); ok {
			if tg.Ino, err1 = strconv.ParseUint(v, 16, 64); err1 != nil {
				return tg, fmt.Errorf("%w: epoll target %q", ErrParse, line)
			}
		}
	}
	return tg, nil
}

// Link reads the /proc/PID/NAME magic link ("exe", "cwd", "root"): the
// target's path as the kernel prints it, " (deleted)" included. Package
// mapfiles' ResolveLink gives the inode behind it.
func (fs FS) Link(pid int, name string) (string, error) {
	return os.Readlink(fs.path(pid, name))
}

// parseLock parses a "lock:" line's value, "1: FLOCK  ADVISORY  WRITE 526
// fe:00:10117177 0 EOF"; blocked is a request still waiting ("1: ->
// FLOCK ...").
func parseLock(val string) (l FileLock, blocked bool, err error) {
	f := strings.Fields(val)
	if len(f) > 1 && f[1] == "->" {
		return l, true, nil
	}
	if len(f) < 8 {
		return l, false, fmt.Errorf("%w: lock %q", ErrParse, val)
	}
	l.Kind, l.Write = f[1], f[3] == "WRITE"
	pid, err1 := strconv.Atoi(f[4])
	start, err2 := strconv.ParseInt(f[6], 10, 64)
	end, err3 := int64(-1), error(nil)
	if f[7] != "EOF" {
		end, err3 = strconv.ParseInt(f[7], 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || f[3] != "READ" && f[3] != "WRITE" {
		return l, false, fmt.Errorf("%w: lock %q", ErrParse, val)
	}
	l.PID, l.Start, l.End = pid, start, end
	return l, false, nil
}
