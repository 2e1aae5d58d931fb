package kernel

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes and request numbers from include/uapi/linux/fs.h on x86-64.
func TestLayouts(t *testing.T) {
	if got := unsafe.Sizeof(PmScanArg{}); got != 96 {
		t.Errorf("sizeof(pm_scan_arg) = %d, want 96", got)
	}
	if got := unsafe.Sizeof(PageRegion{}); got != 24 {
		t.Errorf("sizeof(page_region) = %d, want 24", got)
	}
	if got := unsafe.Sizeof(ProcmapQuery{}); got != 104 {
		t.Errorf("sizeof(procmap_query) = %d, want 104", got)
	}
	if got := unsafe.Offsetof(ProcmapQuery{}.DevMajor); got != 72 {
		t.Errorf("offsetof(dev_major) = %d, want 72", got)
	}
	if PAGEMAP_SCAN != 0xc0606610 {
		t.Errorf("PAGEMAP_SCAN = %#x, want 0xc0606610", PAGEMAP_SCAN)
	}
	if PROCMAP_QUERY != 0xc0686611 {
		t.Errorf("PROCMAP_QUERY = %#x, want 0xc0686611", PROCMAP_QUERY)
	}
}

func TestPagemapScanSelf(t *testing.T) {
	if !HavePagemapScan() {
		t.Skip("kernel lacks PAGEMAP_SCAN (Linux 6.7+)")
	}
	mem, err := unix.Mmap(-1, 0, 8*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[2*4096] = 1
	mem[3*4096] = 1
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arg := PmScanArg{Start: start, End: start + 8*4096, CategoryMask: PageIsPresent, ReturnMask: PageIsPresent}
	vec := make([]PageRegion, 4)
	n, err := PagemapScan(f, &arg, vec)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || vec[0].Start != start+2*4096 || vec[0].End != start+4*4096 {
		t.Fatalf("got %d regions %+v, want one [+2p, +4p)", n, vec[:n])
	}
	if arg.WalkEnd != start+8*4096 {
		t.Errorf("walk_end = %#x, want %#x", arg.WalkEnd, start+8*4096)
	}
}

func TestProcmapQuerySelf(t *testing.T) {
	if !HaveProcmapQuery() {
		t.Skip("kernel lacks PROCMAP_QUERY (Linux 6.11+)")
	}
	mem, err := unix.Mmap(-1, 0, 3*4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q := ProcmapQuery{QueryAddr: start + 4096}
	name := make([]byte, 256)
	if err := ProcmapQueryIoctl(f, &q, name); err != nil {
		t.Fatal(err)
	}
	if q.VMAStart > start || q.VMAEnd < start+3*4096 || q.VMAFlags&ProcmapQueryVMAReadable == 0 || q.VMAFlags&ProcmapQueryVMAWritable != 0 {
		t.Fatalf("got %+v", q)
	}
}

func TestForceFallback(t *testing.T) {
	prev := ForcePagemapFallback(true)
	defer ForcePagemapFallback(prev)
	if HavePagemapScan() {
		t.Fatal("HavePagemapScan true while forced off")
	}
}

func TestRestartCode(t *testing.T) {
	for rax, want := range map[uint64]int{
		uint64(1<<64 - 512): ERESTARTSYS,
		uint64(1<<64 - 516): ERESTART_RESTARTBLOCK,
		uint64(1<<64 - 4):   0, // -EINTR
		0:                   0,
		512:                 0,
	} {
		if got := RestartCode(rax); got != want {
			t.Errorf("RestartCode(%#x) = %d, want %d", rax, got, want)
		}
	}
}
