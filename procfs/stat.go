package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Stat reads /proc/PID/stat.
func (fs FS) Stat(pid int) (Stat, error) {
	name := fs.path(pid, "stat")
	b, err := readFile(name)
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b, name)
}

// ThreadStat reads /proc/PID/task/TID/stat.
func (fs FS) ThreadStat(pid, tid int) (Stat, error) {
	name := fs.path(pid, "task", strconv.Itoa(tid), "stat")
	b, err := readFile(name)
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b, name)
}

// ParseStat parses the text of /proc/PID/stat. The comm field may hold
// spaces and parentheses, so it runs from the first '(' to the last ')'.
func ParseStat(b []byte, name string) (Stat, error) {
	var st Stat
	open := bytes.IndexByte(b, '(')
	cls := bytes.LastIndexByte(b, ')')
	if open < 0 || cls < open {
		return Stat{}, fmt.Errorf("%s: %w: no (comm)", name, ErrParse)
	}
	st.Comm = string(b[open+1 : cls])
	// f[0] is field 3 (state); field N is f[N-3].
	f := strings.Fields(string(b[cls+1:]))
	if len(f) < 1 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%s: %w: no state", name, ErrParse)
	}
	st.State = f[0][0]
	var firstErr error
	num := func(n int) uint64 {
		if n-3 >= len(f) {
			// Old kernels end early (fields 45+ came in 3.3/3.5).
			return 0
		}
		v, err := strconv.ParseUint(f[n-3], 10, 64)
		if err != nil {
			// Signed fields (ppid of pid 0, tty) parse as int.
			s, err2 := strconv.ParseInt(f[n-3], 10, 64)
			if err2 != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w: field %d %q", name, ErrParse, n, f[n-3])
				}
				return 0
			}
			v = uint64(s)
		}
		return v
	}
	if len(f) < 38-2 { // every kernel mmcr runs on has exit_signal (38)
		return Stat{}, fmt.Errorf("%s: %w: only %d fields", name, ErrParse, len(f)+2)
	}
	st.PPID = int(num(4))
	st.PGID = int(num(5))
	st.SID = int(num(6))
	st.Flags = uint32(num(9))
	st.NumThreads = int(num(20))
	st.StartTime = num(22)
	st.StartCode = num(26)
	st.EndCode = num(27)
	st.StartStack = num(28)
	st.ExitSignal = int(num(38))
	st.StartData = num(45)
	st.EndData = num(46)
	st.StartBrk = num(47)
	st.ArgStart = num(48)
	st.ArgEnd = num(49)
	st.EnvStart = num(50)
	st.EnvEnd = num(51)
	st.ExitCode = int(num(52))
	if firstErr != nil {
		return Stat{}, firstErr
	}
	return st, nil
}
