package dump

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// onlineCPUs is the machine's online CPUs (/sys/devices/system/cpu/online,
// "0-1,4"); nil when it cannot be read.
var onlineCPUs = sync.OnceValue(func() *unix.CPUSet {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil
	}
	var set unix.CPUSet
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		z, err2 := a, error(nil)
		if isRange {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a > z || z >= 1024 {
			return nil
		}
		for c := a; c <= z; c++ {
			set.Set(c)
		}
	}
	return &set
})

// cpuAffinity returns thread tid's CPU mask when it keeps the thread off
// some online CPU (taskset, sched_setaffinity), nil when it allows them
// all, as a fresh task's does.
func cpuAffinity(tid int) ([]uint64, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	online := onlineCPUs()
	all := online != nil
	for i := range set {
		if online != nil && online[i]&^set[i] != 0 {
			all = false
		}
	}
	if all {
		return nil, nil
	}
	words := make([]uint64, len(set))
	for i, w := range set {
		words[i] = uint64(w)
	}
	for len(words) > 1 && words[len(words)-1] == 0 {
		words = words[:len(words)-1]
	}
	return words, nil
}

// ioPrio returns thread tid's I/O priority (ioprio_get), 0 when it has
// none of its own (class IOPRIO_CLASS_NONE: it follows its nice value).
func ioPrio(tid int) (uint32, error) {
	v, err := kernel.IOPrioGet(tid)
	if err != nil {
		return 0, err
	}
	if v>>13 == 0 {
		return 0, nil
	}
	return uint32(v), nil
}

// coredumpFilter returns task pid's /proc/PID/coredump_filter when it
// differs from mmcr's own (the default a fresh task inherits), else nil.
func coredumpFilter(pid int) (*uint32, error) {
	read := func(p string) (uint32, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
		return uint32(v), err
	}
	v, err := read(fmt.Sprintf("/proc/%d/coredump_filter", pid))
	if err != nil {
		return nil, fmt.Errorf("coredump_filter: %w", err)
	}
	if own, err := read("/proc/self/coredump_filter"); err == nil && own == v {
		return nil, nil
	}
	return &v, nil
}
