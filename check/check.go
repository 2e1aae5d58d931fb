// Package check probes the kernel features mmcr relies on and gives a
// verdict, like `criu check`. Each probe exercises the feature for real
// where that is cheap (a seized child, an ioctl on our own pagemap), rather
// than trusting a version number.
package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/internal/kernel"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
)

// Probe is one feature check.
type Probe struct {
	Name string
	// Required probes fail the verdict; others only inform.
	Required bool
	Run      func() (detail string, err error)
}

// Probes lists what mmcr needs, in the order `mmcr check` prints them.
func Probes() []Probe {
	return []Probe{
		{"ptrace seize/interrupt", true, probePtrace},
		{"/proc/PID/map_files", true, probeMapFiles},
		{"PAGEMAP_SCAN ioctl", false, probePagemapScan},
		{"PROCMAP_QUERY ioctl", false, probeProcmapQuery},
		{"clone3 with set_tid", true, probeSetTID},
		{"vdso/vvar layout", true, probeVDSO},
		{"userfaultfd (write-protect async)", false, probeUserfaultfd},
		{"guard regions (MADV_GUARD_INSTALL)", false, probeGuardRegions},
		{"pidfd_getfd", false, probePidfdGetfd},
		{"POSIX timers with their ids", false, probeTimerIDs},
		{"membarrier registrations", false, probeMembarrier},
	}
}

// probeMembarrier asks whether membarrier can tell a task's registrations
// (MEMBARRIER_CMD_GET_REGISTRATIONS, Linux 6.3+): mmcr's own, here.
func probeMembarrier() (string, error) {
	const without = "dump cannot read a task's membarrier registrations: they are not restored"
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, kernel.MembarrierGetRegistrations, 0, 0); errno != 0 {
		return without, fmt.Errorf("membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): %w", errno)
	}
	return "dump reads each task's membarrier registrations", nil
}

// probeTimerIDs asks whether timer_create can be told the id to make
// (PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15+): prctl's GET answers where it
// can.
func probeTimerIDs() (string, error) {
	const without = "a task with POSIX timers (timer_create) cannot be restored"
	if _, err := unix.PrctlRetInt(kernel.PrTimerCreateRestoreIDs, kernel.PrTimerCreateRestoreIDsGet, 0, 0, 0); err != nil {
		return without, fmt.Errorf("prctl(PR_TIMER_CREATE_RESTORE_IDS): %w", err)
	}
	return "restore makes each POSIX timer with its dumped id", nil
}

// Run prints one line per probe to w and reports whether every required
// probe passed.
func Run(w io.Writer) bool {
	ok := true
	for _, p := range Probes() {
		detail, err := p.Run()
		switch {
		case err == nil:
			fmt.Fprintf(w, "%-36s ok  %s\n", p.Name, detail)
		case p.Required:
			ok = false
			fmt.Fprintf(w, "%-36s FAIL  %v\n", p.Name, err)
		default:
			fmt.Fprintf(w, "%-36s no  %v (optional: %s)\n", p.Name, err, detail)
		}
	}
	if ok {
		fmt.Fprintln(w, "Looks good.")
	}
	return ok
}

// probePtrace seizes a short-lived child, interrupts it and lets it go.
func probePtrace() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start a test child: %w", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := ptrace.Seize(pid); err != nil {
		return "", err
	}
	if _, err := ptrace.GetRegs(pid); err != nil {
		ptrace.Detach(pid)
		return "", err
	}
	if err := ptrace.Detach(pid); err != nil {
		return "", err
	}
	return "seized, read registers, detached a child", nil
}

// probeMapFiles opens and stats the map_files link of one of our own
// file-backed mappings.
func probeMapFiles() (string, error) {
	maps, err := procfs.Default.Mappings(os.Getpid())
	if err != nil {
		return "", err
	}
	for _, m := range maps {
		if m.Ino == 0 {
			continue
		}
		link := fmt.Sprintf("/proc/self/map_files/%x-%x", m.Start, m.End)
		f, err := os.Open(link)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", link, err)
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return "", os.NewSyscallError("fstat", err)
		}
		if st.Ino != m.Ino {
			return "", fmt.Errorf("%s: inode %d, maps says %d", link, st.Ino, m.Ino)
		}
		return "opened a mapping's inode through its link", nil
	}
	return "", errors.New("no file-backed mapping in our own process to test with")
}

func probePagemapScan() (string, error) {
	if !kernel.HavePagemapScan() {
		return "falls back to reading /proc/PID/pagemap", errors.New("not supported")
	}
	return "page ranges by category in one call", nil
}

func probeProcmapQuery() (string, error) {
	if !kernel.HaveProcmapQuery() {
		return "falls back to parsing /proc/PID/smaps", errors.New("not supported")
	}
	return "binary VMA queries", nil
}

// probeGuardRegions checks that guard regions can be installed (Linux
// 6.13+) and seen in PAGEMAP_SCAN (6.15+): without the latter a task with
// guard regions fails to dump (its guard pages cannot be read).
func probeGuardRegions() (string, error) {
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return "", err
	}
	defer unix.Munmap(m)
	if err := unix.Madvise(m, kernel.MADV_GUARD_INSTALL); err != nil {
		return "tasks cannot have any", fmt.Errorf("madvise: %w", err)
	}
	if kernel.HavePagemapScan() && !kernel.HavePagemapGuard() {
		return "a task with guard regions fails to dump", errors.New("PAGEMAP_SCAN does not report them (Linux 6.15+)")
	}
	return "dumped and installed again at restore", nil
}

// probePidfdGetfd checks pidfd_getfd (Linux 5.6+), by which restored
// tasks take the pipes, shared open files and stdio mmcr opened for them:
// mmcr takes a copy of one of its own fds.
func probePidfdGetfd() (string, error) {
	const without = "pipes, shared open files and stdio cannot be restored"
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return without, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return without, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	fd, err := unix.PidfdGetfd(pidfd, p[1], 0)
	if err != nil {
		return without, fmt.Errorf("pidfd_getfd: %w", err)
	}
	unix.Close(fd)
	return "tasks take their pipes, shared open files and stdio from mmcr", nil
}

// probeSetTID checks the pieces clone3's set_tid needs: the syscall
// (Linux 5.5+: an invalid call must fail with EINVAL, not ENOSYS) and the
// capability to choose pids in our pid namespace.
func probeSetTID() (string, error) {
	// A zero-sized clone_args is rejected with EINVAL when clone3 exists.
	_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	if errno == unix.ENOSYS {
		return "", errors.New("clone3 is missing (Linux 5.3+ needed, 5.5+ for set_tid)")
	}
	if _, err := os.Stat("/proc/sys/kernel/ns_last_pid"); err != nil {
		return "", errors.New("kernel lacks CONFIG_CHECKPOINT_RESTORE (no /proc/sys/kernel/ns_last_pid)")
	}
	caps, err := effectiveCaps()
	if err != nil {
		return "", err
	}
	const capSysAdmin, capCheckpointRestore = 21, 40
	if caps&(1<<capSysAdmin|1<<capCheckpointRestore) == 0 {
		return "", errors.New("need CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN to restore original pids")
	}
	return "clone3 present, pid choice allowed", nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			var caps uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &caps); err != nil {
				return 0, fmt.Errorf("parse CapEff %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, errors.New("/proc/self/status has no CapEff line")
}

// probeVDSO checks that [vvar], [vvar_vclock] (when present) and [vdso] sit
// next to each other, which restore relies on to move them as one block.
func probeVDSO() (string, error) {
	maps, err := procfs.Default.Mappings(os.Getpid())
	if err != nil {
		return "", err
	}
	var names []string
	var start, end uint64
	for _, m := range maps {
		switch m.Path {
		case "[vvar]", "[vvar_vclock]", "[vdso]":
			if len(names) > 0 && m.Start != end {
				return "", fmt.Errorf("%s at %#x is not next to %s ending at %#x", m.Path, m.Start, names[len(names)-1], end)
			}
			if len(names) == 0 {
				start = m.Start
			}
			names = append(names, m.Path)
			end = m.End
		}
	}
	if len(names) == 0 || names[len(names)-1] != "[vdso]" {
		return "", fmt.Errorf("unexpected special mappings %v", names)
	}
	return fmt.Sprintf("%s contiguous, %d KiB", strings.Join(names, " "), (end-start)>>10), nil
}

func probeUserfaultfd() (string, error) {
	features, err := kernel.UserfaultfdFeatures()
	if err != nil {
		return "needed only for dirty tracking", err
	}
	if features&kernel.UffdFeatureWPAsync == 0 {
		return "needed only for dirty tracking", errors.New("no UFFD_FEATURE_WP_ASYNC")
	}
	return "write-protect async mode available", nil
}
