package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// minFreeMsPath is a knob of the free page reporting of some guest kernels
// (the README's Firecracker/PVM guests): how long a page must have been
// free before the guest hands it back to the host (virtio-balloon free
// page reporting). With 0 there, memory a run frees (a dd reference's
// file, a dumped tree) goes back to the host within about two seconds,
// and the next 1 GiB that the kernel hands out costs up to 2 s of host
// faults instead of ~0.3: whichever of dd and the dump happens to get that
// memory is slow, and the median of five ratios swung from 1.1 to 2.1
// between runs of the same code. Upstream kernels have only
// page_reporting_order there.
const minFreeMsPath = "/sys/module/page_reporting/parameters/min_free_ms"

// holdFreeMs is how long the benchmark has the guest keep its free pages:
// the most the knob takes (5 minutes), longer than any case's gap between
// two of its runs, so that memory the benchmark used once stays the
// guest's until it ends.
const holdFreeMs = 300000

// warmBytes is how much memory warmFreeMemory has the host fault in before
// the first run: about the most one run of the 1 GiB case holds at once
// (the workload, its image, the restored tree, the references' files).
const warmBytes = 4 << 30

// freePageHold is the benchmark's change to minFreeMsPath, if any.
type freePageHold struct {
	was  string // the value found, put back by release
	once sync.Once
}

// holdFreePages sets minFreeMsPath to holdFreeMs for the run. It returns
// nil, nil where the guest has no such knob (nothing to hold).
func holdFreePages() (*freePageHold, error) {
	b, err := os.ReadFile(minFreeMsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("free page reporting: %w", err)
	}
	h := &freePageHold{was: strings.TrimSpace(string(b))}
	if err := os.WriteFile(minFreeMsPath, []byte(fmt.Sprint(holdFreeMs)), 0); err != nil {
		return nil, fmt.Errorf("free page reporting: hold free pages %d ms: %w", holdFreeMs, err)
	}
	return h, nil
}

// warmFreeMemory has dd write n bytes into a file in dir and removes it:
// the host faults in (at up to ~2.5 s per GiB on the README's guest)
// memory that the runs then take from the free lists, instead of the
// first runs of each case paying for it. It is dd, not the harness's own
// memory, because a child's peak RSS (what the report gives for mmcr)
// starts from its parent's at exec (Go forks with CLONE_VM). It returns
// how long that took.
func warmFreeMemory(dd, dir string, n int64) (time.Duration, error) {
	f := filepath.Join(dir, "warm.dat")
	defer os.Remove(f)
	start := time.Now()
	out, err := exec.Command(dd, "if=/dev/zero", "of="+f, "bs=1M", "count="+itoa(n), "iflag=count_bytes", "status=none").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("warm free memory: dd of %d bytes: %v %s", n, err, out)
	}
	return time.Since(start), nil
}

// release puts back the value holdFreePages found; once, whoever calls it
// first (the run's end or an interrupt).
func (h *freePageHold) release() error {
	if h == nil {
		return nil
	}
	var err error
	h.once.Do(func() {
		if werr := os.WriteFile(minFreeMsPath, []byte(h.was), 0); werr != nil {
			err = fmt.Errorf("free page reporting: put back %s=%s: %w", minFreeMsPath, h.was, werr)
		}
	})
	return err
}

// describe is the line the report prints about it.
func (h *freePageHold) describe(asked bool) string {
	switch {
	case h != nil:
		return fmt.Sprintf("Free pages were held %d s before the guest reports them to the host (%s was %s; put back at the end); a full run first has the host fault in %d GiB.",
			holdFreeMs/1000, minFreeMsPath, h.was, warmBytes>>30)
	case !asked:
		if _, err := os.Stat(minFreeMsPath); err == nil {
			return "Free page reporting to the host left as it was (-hold-free-pages=false): expect noisy ratios."
		}
	default:
		if _, err := os.Stat(minFreeMsPath); err == nil {
			return "Free page reporting to the host left as it was (" + minFreeMsPath + " could not be set): expect noisy ratios."
		}
	}
	return ""
}
