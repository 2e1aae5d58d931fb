package dump

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// posixTimers reads the POSIX timers (timer_create) of task pid from
// /proc/PID/timers: for each its id, signal and sigev_value, how it
// notifies (the process, no one, or a thread) and its clock. Their times
// come later, from the task itself (timerTimes).
func posixTimers(pid int) ([]image.PosixTimer, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timers", pid))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // a kernel without the file (CONFIG_CHECKPOINT_RESTORE)
	}
	if err != nil {
		return nil, err
	}
	var timers []image.PosixTimer
	bad := func(line string) error { return fmt.Errorf("/proc/%d/timers: line %q", pid, line) }
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if key == "ID" {
			id, err := strconv.ParseInt(val, 10, 32)
			if err != nil {
				return nil, bad(line)
			}
			timers = append(timers, image.PosixTimer{ID: int32(id)})
			continue
		}
		if len(timers) == 0 {
			return nil, bad(line)
		}
		pt := &timers[len(timers)-1]
		switch key {
		case "signal": // "10/0000000000000000": signal/sigev_value
			sig, value, ok := strings.Cut(val, "/")
			n, err1 := strconv.ParseInt(sig, 10, 32)
			v, err2 := strconv.ParseUint(value, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, bad(line)
			}
			pt.Signo, pt.SigValue = int32(n), v
		case "notify": // "signal/pid.31716", "none/pid.N", "signal/tid.N"
			how, who, ok := strings.Cut(val, "/")
			kind, id, ok2 := strings.Cut(who, ".")
			n, err := strconv.ParseInt(id, 10, 32)
			if !ok || !ok2 || err != nil {
				return nil, bad(line)
			}
			switch {
			case how == "signal" && kind == "pid":
				pt.Notify = image.SigevSignal
			case how == "none":
				pt.Notify = image.SigevNone
			case how == "signal" && kind == "tid":
				pt.Notify, pt.NotifyTID = image.SigevThreadID, int32(n)
			default:
				return nil, fmt.Errorf("POSIX timer %d notifies as %q: %w", pt.ID, val, ErrUnsupported)
			}
		case "ClockID":
			n, err := strconv.ParseInt(val, 10, 32)
			if err != nil {
				return nil, bad(line)
			}
			pt.Clock = int32(n)
		}
	}
	// The kernel lists them in its hash's order.
	slices.SortFunc(timers, func(a, b image.PosixTimer) int { return cmp.Compare(a.ID, b.ID) })
	return timers, nil
}

// timerTimes asks the task behind r, with the scratch area at scratch,
// each POSIX timer's interval and time left (timer_gettime) and the
// overrun count of its last expiry (timer_getoverrun).
func timerTimes(r *ptrace.Remote, pid int, scratch uint64, timers []image.PosixTimer) error {
	for i := range timers {
		pt := &timers[i]
		if _, err := r.Syscall(unix.SYS_TIMER_GETTIME, uint64(pt.ID), scratch+offData); err != nil {
			return fmt.Errorf("POSIX timer %d: %w", pt.ID, err)
		}
		var its [32]byte // struct itimerspec: interval, value
		if err := ptrace.ReadVMAt(pid, scratch+offData, its[:]); err != nil {
			return err
		}
		w := func(i int) int64 { return int64(binary.LittleEndian.Uint64(its[8*i:])) }
		pt.IntervalNsec, pt.ValueNsec = w(0)*1e9+w(1), w(2)*1e9+w(3)
		over, err := r.Syscall(unix.SYS_TIMER_GETOVERRUN, uint64(pt.ID))
		if err != nil {
			return fmt.Errorf("POSIX timer %d: %w", pt.ID, err)
		}
		pt.Overrun = int32(over)
	}
	return nil
}
