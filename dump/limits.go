package dump

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// limitNames are /proc/PID/limits' row names, indexed by RLIMIT_* number
// (fs/proc/base.c lnames).
var limitNames = [numRlimits]string{
	"Max cpu time", "Max file size", "Max data size", "Max stack size",
	"Max core file size", "Max resident set", "Max processes", "Max open files",
	"Max locked memory", "Max address space", "Max file locks", "Max pending signals",
	"Max msgqueue size", "Max nice priority", "Max realtime priority", "Max realtime timeout",
}

// errLimits is wrapped by every parse error of a limits file.
var errLimits = errors.New("bad /proc limits file")

// readRlimits reads a task's resource limits from /proc/PID/limits rather
// than with prlimit: prlimit on a task of another uid needs
// CAP_SYS_RESOURCE, which root may lack (it does in containers), while
// the file is readable by whoever may ptrace the task.
func readRlimits(pid int) ([]unix.Rlimit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return nil, err
	}
	return parseLimits(b)
}

// parseLimits parses a /proc/PID/limits file: a header line, then one row
// per limit, "%-25s %-20s %-20s %-10s" (name, soft, hard, units), soft and
// hard a number or "unlimited". Every one of the 16 limits must be there.
func parseLimits(b []byte) ([]unix.Rlimit, error) {
	lims := make([]unix.Rlimit, numRlimits)
	var seen [numRlimits]bool
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if i == 0 || strings.TrimSpace(line) == "" {
			continue // header
		}
		if len(line) < 26 {
			return nil, fmt.Errorf("%w: line %d too short: %q", errLimits, i+1, line)
		}
		name := strings.TrimSpace(line[:25])
		res := -1
		for r, n := range limitNames {
			if n == name {
				res = r
			}
		}
		if res < 0 {
			continue // a limit newer than this mmcr: ignore
		}
		f := strings.Fields(line[25:])
		if len(f) < 2 {
			return nil, fmt.Errorf("%w: line %d: no soft and hard values: %q", errLimits, i+1, line)
		}
		var err error
		if lims[res].Cur, err = parseLimit(f[0]); err != nil {
			return nil, fmt.Errorf("%w: %s soft: %v", errLimits, name, err)
		}
		if lims[res].Max, err = parseLimit(f[1]); err != nil {
			return nil, fmt.Errorf("%w: %s hard: %v", errLimits, name, err)
		}
		seen[res] = true
	}
	for r, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("%w: no %q line", errLimits, limitNames[r])
		}
	}
	return lims, nil
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return unix.RLIM_INFINITY, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
