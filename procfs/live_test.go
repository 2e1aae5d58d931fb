package procfs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a helper child when this variable
// is set: it maps 64 anonymous pages, writes pages 3, 4 and 10, reads page
// 20, prints the mapping's address and waits for stdin to close.
const helperEnv = "MMCR_PROCFS_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		mem, addr := touchPattern()
		fmt.Printf("%x\n", addr)
		bufio.NewReader(os.Stdin).ReadString('\n')
		unix.Munmap(mem)
		os.Exit(0)
	}
	code := m.Run()
	// Every helper child must be gone (exited and reaped) by now.
	if kids, err := Default.AllChildren(os.Getpid()); err == nil && len(kids) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "leaked child processes: %v\n", kids)
		code = 1
	}
	os.Exit(code)
}

// touchPattern maps 64 pages and touches them in the pattern the tests expect.
func touchPattern() ([]byte, uint64) {
	mem, err := unix.Mmap(-1, 0, 64*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	// Keep THP out: a huge page would make every page present.
	unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	mem[3*pageSize] = 1
	mem[4*pageSize+100] = 2
	mem[10*pageSize+4095] = 3
	if *(*byte)(unsafe.Pointer(&mem[20*pageSize])) != 0 {
		panic("fresh page not zero")
	}
	return mem, uint64(uintptr(unsafe.Pointer(&mem[0])))
}

// checkPattern compares AnonPages' answer with the touched pages. Page 20
// was only read: it is the zero page and left out, unless the kernel has no
// zero page (pvm_no_zero_page=1) and gave it a real page.
func checkPattern(t *testing.T, got []PageRange, base uint64) {
	t.Helper()
	want := []PageRange{{base + 3*pageSize, base + 5*pageSize}, {base + 10*pageSize, base + 11*pageSize}}
	if reflect.DeepEqual(got, want) {
		return
	}
	if ZeroPFN() == 0 {
		want = append(want, PageRange{base + 20*pageSize, base + 21*pageSize})
		if reflect.DeepEqual(got, want) {
			return
		}
	}
	t.Errorf("got %x, want %x", got, want)
}

// bothPaths runs fn with PAGEMAP_SCAN (when the kernel has it) and with the
// forced pagemap fallback.
func bothPaths(t *testing.T, fn func(t *testing.T)) {
	t.Run("scan", func(t *testing.T) {
		if !kernel.HavePagemapScan() {
			t.Skip("kernel lacks PAGEMAP_SCAN (Linux 6.7+)")
		}
		fn(t)
	})
	t.Run("fallback", func(t *testing.T) {
		prev := kernel.ForcePagemapFallback(true)
		defer kernel.ForcePagemapFallback(prev)
		fn(t)
	})
}

func TestAnonPagesSelf(t *testing.T) {
	mem, base := touchPattern()
	defer unix.Munmap(mem)
	bothPaths(t, func(t *testing.T) {
		got, err := Default.AnonPages(os.Getpid(), base, base+64*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		checkPattern(t, got, base)
	})
}

// TestPagemapAnonPages scans the pattern through one open pagemap, in
// pieces and whole, as dump does VMA by VMA.
func TestPagemapAnonPages(t *testing.T) {
	mem, base := touchPattern()
	defer unix.Munmap(mem)
	bothPaths(t, func(t *testing.T) {
		p, err := Default.OpenPagemap(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var pieces []PageRange
		for _, cut := range [][2]uint64{{0, 17}, {17, 17}, {17, 40}, {40, 64}} {
			got, err := p.AnonPages(base+cut[0]*pageSize, base+cut[1]*pageSize)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				pieces = appendRange(pieces, r.Start, r.End)
			}
		}
		checkPattern(t, pieces, base)
		whole, err := p.AnonPages(base, base+64*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		checkPattern(t, whole, base)
		if _, err := p.AnonPages(base+1, base+pageSize); err == nil {
			t.Error("unaligned range accepted")
		}
	})
}

// startHelper starts the helper child and returns its pid; it exits at the
// end of the test.
func startHelper(t *testing.T) int {
	pid, _ := startHelperAt(t)
	return pid
}

// startHelperAt starts the helper child and returns its pid and the base
// of its 64-page mapping. The child exits (and is reaped) when the test ends.
func startHelperAt(t *testing.T) (int, uint64) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	base, err := strconv.ParseUint(strings.TrimSpace(line), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, base
}

func TestAnonPagesChild(t *testing.T) {
	pid, base := startHelperAt(t)
	if kids, err := Default.AllChildren(os.Getpid()); err != nil || !contains(kids, pid) {
		t.Errorf("children of the test %v %v, want %d among them", kids, err, pid)
	}
	bothPaths(t, func(t *testing.T) {
		got, err := Default.AnonPages(pid, base, base+64*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		checkPattern(t, got, base)
	})
	t.Run("pfns", func(t *testing.T) {
		pfns, err := Default.PagePFNs(pid, base, base+64*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(pfns) != 64 {
			t.Fatalf("%d pfns", len(pfns))
		}
		if os.Geteuid() != 0 {
			t.Skip("PFNs hidden without CAP_SYS_ADMIN")
		}
		for i, p := range pfns {
			switch i {
			case 3, 4, 10:
				if p == 0 || p == ZeroPFN() {
					t.Errorf("page %d: pfn %#x", i, p)
				}
			case 20:
				if ZeroPFN() == 0 {
					if p == 0 {
						t.Errorf("page 20 not present")
					}
				} else if p != ZeroPFN() {
					t.Errorf("page 20: pfn %#x, want zero page %#x", p, ZeroPFN())
				}
			default:
				if p != 0 {
					t.Errorf("page %d: pfn %#x, want not present", i, p)
				}
			}
		}
	})
	t.Run("mappings", func(t *testing.T) {
		ms, err := Default.Mappings(pid)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ms {
			if m.Start <= base && base+64*pageSize <= m.End {
				// The kernel may have merged it with a neighbour of the Go
				// runtime's: only a lower bound on its anon pages holds.
				found = true
				if m.Prot != unix.PROT_READ|unix.PROT_WRITE || m.Shared || m.Anonymous < 3*pageSize {
					t.Errorf("helper mapping %+v", m)
				}
			}
		}
		if !found {
			t.Errorf("helper mapping at %x not in smaps", base)
		}
	})
}

// AnonPages must skip page-cache pages of a private file mapping but report
// the ones the task wrote (its COW copies).
func TestAnonPagesPrivateFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "priv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 8*pageSize)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 8*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	var sum byte
	for i := 0; i < 8; i++ {
		sum += mem[i*pageSize] // page-cache pages mapped read-only
	}
	_ = sum
	mem[5*pageSize] = 9 // COW copy
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	bothPaths(t, func(t *testing.T) {
		got, err := Default.AnonPages(os.Getpid(), base, base+8*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		want := []PageRange{{base + 5*pageSize, base + 6*pageSize}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %x, want %x", got, want)
		}
	})
}

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	ms, err := Default.Mappings(pid)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := Default.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || len(maps) == 0 {
		t.Fatal("no mappings")
	}
	var sawStack, sawVdso bool
	for _, m := range ms {
		sawStack = sawStack || m.Path == "[stack]"
		sawVdso = sawVdso || m.Path == "[vdso]"
		if len(m.VmFlags) == 0 {
			t.Errorf("no VmFlags: %+v", m)
		}
	}
	if !sawStack || !sawVdso {
		t.Errorf("stack %v vdso %v", sawStack, sawVdso)
	}
	st, err := Default.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.StartBrk == 0 || st.ArgStart == 0 || st.NumThreads < 1 {
		t.Errorf("stat %+v", st)
	}
	status, err := Default.Status(pid)
	if err != nil {
		t.Fatal(err)
	}
	if status.Tgid != pid || status.UID[0] != uint32(os.Getuid()) || status.Threads != st.NumThreads && status.Threads < 1 {
		t.Errorf("status %+v", status)
	}
	if exe, err := Default.Link(pid, "exe"); err != nil || !strings.HasSuffix(exe, "procfs.test") {
		t.Errorf("exe %q %v", exe, err)
	}
	ts, err := Default.ThreadStatus(pid, pid)
	if err != nil || ts.Tgid != pid {
		t.Errorf("thread status %+v %v", ts, err)
	}
	th, err := Default.Threads(pid)
	if err != nil || len(th) < 1 || th[0] != pid && !contains(th, pid) {
		t.Errorf("threads %v %v", th, err)
	}
	auxv, err := Default.Auxv(pid)
	if err != nil || len(auxv) < 4 || auxv[len(auxv)-2] != 0 {
		t.Errorf("auxv %v %v", auxv, err)
	}
	if _, err := Default.Personality(pid); err != nil {
		t.Error(err)
	}
	if _, err := Default.OomScoreAdj(pid); err != nil {
		t.Error(err)
	}
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds, err := Default.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, fd := range fds {
		if fd.Num == int(f.Fd()) {
			found = true
			if fd.Target != "/dev/null" || fd.Flags&unix.O_ACCMODE != unix.O_RDONLY || fd.Flags&unix.O_CLOEXEC == 0 || fd.MntID == 0 {
				t.Errorf("fd %+v", fd)
			}
		}
	}
	if !found {
		t.Errorf("fd %d not listed in %+v", f.Fd(), fds)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// More runs than one PAGEMAP_SCAN call's vector holds: the scan must go on
// from walk_end.
func TestAnonPagesManyRuns(t *testing.T) {
	const n = 3000
	mem, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	var written [n]bool
	for i := 0; i < n; i += 2 {
		written[i] = true
	}
	// Pages 1000-1099 all written: one longer run in the middle.
	for i := 1000; i < 1100; i++ {
		written[i] = true
	}
	var merged []PageRange
	for i, w := range written {
		if !w {
			continue
		}
		mem[i*pageSize] = 1
		merged = appendRange(merged, base+uint64(i)*pageSize, base+uint64(i+1)*pageSize)
	}
	if len(merged) < 1200 {
		t.Fatalf("only %d runs", len(merged))
	}
	bothPaths(t, func(t *testing.T) {
		got, err := Default.AnonPages(os.Getpid(), base, base+n*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, merged) {
			t.Errorf("got %d runs, want %d", len(got), len(merged))
		}
	})
}

// TestPrivatePagesGuards installs a guard region among touched pages and
// scans them both ways: the guard pages come back as guards, not as
// (swapped) anonymous pages to copy.
func TestPrivatePagesGuards(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 8*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for i := range 8 {
		mem[i*pageSize] = 1
	}
	if err := unix.Madvise(mem[2*pageSize:4*pageSize], kernel.MADV_GUARD_INSTALL); err != nil {
		t.Skipf("madvise(MADV_GUARD_INSTALL) needs Linux 6.13: %v", err)
	}
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	bothPaths(t, func(t *testing.T) {
		if kernel.HavePagemapScan() && !kernel.HavePagemapGuard() {
			t.Skip("PAGEMAP_SCAN lacks PAGE_IS_GUARD (Linux 6.15+)")
		}
		p, err := Default.OpenPagemap(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		anon, guards, err := p.PrivatePages(base, base+8*pageSize)
		if err != nil {
			t.Fatal(err)
		}
		wantAnon := []PageRange{{base, base + 2*pageSize}, {base + 4*pageSize, base + 8*pageSize}}
		wantGuards := []PageRange{{base + 2*pageSize, base + 4*pageSize}}
		if !reflect.DeepEqual(anon, wantAnon) || !reflect.DeepEqual(guards, wantGuards) {
			t.Errorf("anon %x guards %x, want %x and %x", anon, guards, wantAnon, wantGuards)
		}
	})
}
