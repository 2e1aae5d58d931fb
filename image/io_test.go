package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sampleTree is a hand-built tree with every kind and field set.
func sampleTree() *Tree {
	xsave := make([]byte, 2696)
	for i := range xsave {
		xsave[i] = byte(i*7 + 3)
	}
	binary.LittleEndian.PutUint64(xsave[512:], 0x2e7) // x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM PKRU
	var si SigInfo
	for i := range si {
		si[i] = byte(i)
	}
	si2 := si
	si2[0] = 10
	// Thread 105 (salt 2) has no scheduling state, as in an image written
	// before mmcr kept it; thread 100's is all zero but present.
	scheds := []*Sched{{}, {Policy: SchedFIFO | SchedResetOnFork, Prio: 10, Nice: -3}, nil, {Policy: SchedIdle, Nice: 19}}
	mkThread := func(tid int, salt uint64) *Thread {
		return &Thread{
			TID: tid,
			Regs: unix.PtraceRegs{R15: 1 + salt, R14: 2, R13: 3, R12: 4, Rbp: 5, Rbx: 6, R11: 7, R10: 8, R9: 9, R8: 10,
				Rax: 0xfffffffffffffe00, Rcx: 12, Rdx: 13, Rsi: 14, Rdi: 15, Orig_rax: 230, Rip: 0x401000, Cs: 0x33,
				Eflags: 0x246, Rsp: 0x7ffd0000, Ss: 0x2b, Fs_base: 0x7f0000001000, Gs_base: 0x99, Ds: 1, Es: 2, Fs: 3, Gs: 4},
			Xsave:    append([]byte(nil), xsave...),
			SigMask:  0x8000000000000001 ^ salt,
			AltStack: SigAltStack{SP: 0x7f0000200000, Flags: 2, Size: 8192},
			Pending:  []SigInfo{si},
			Rseq:     Rseq{Addr: 0x7f0000003000 + salt, Len: 32, Sig: 0x53053053},
			Comm:     fmt.Sprintf("worker-%d", salt),
			ClearTID: 0x7f00000052d0 + salt<<12, RobustList: 0x7f00000052e0 + salt<<12, RobustListLen: 24,
			PdeathSig: uint32(salt) * 9, // 0, SIGKILL, SIGUSR2
			Sched:     scheds[salt],
			// 0 (salt 0: an older image), then 50 µs (the default), ...
			TimerSlackNs: salt * 50000,
		}
	}
	sas := make([]SigAction, 64)
	for i := range sas {
		sas[i] = SigAction{Handler: uint64(i), Flags: 0x4000000, Restorer: 0x7f00000040, Mask: uint64(i) << 3}
	}
	rl := make([]unix.Rlimit, 16)
	for i := range rl {
		rl[i] = unix.Rlimit{Cur: uint64(i), Max: ^uint64(0)}
	}
	files := []*File{
		{ID: 1, Path: "/usr/bin/prog", Dev: 0x803, Ino: 12345, Mode: 0o100755, Size: 40960, MtimeNsec: 1700000000123456789, UID: 0, GID: 0},
		{ID: 2, Path: "/tmp/deleted file", Dev: 0x2a, Ino: 77, Mode: 0o100600, Size: 5000, MtimeNsec: 1, UID: 1000, GID: 1000, Deleted: true},
		{ID: 3, Path: "/tmp/renamed", Dev: 0x2a, Ino: 78, Mode: 0o100644, Size: 8192, Renamed: true},
		{ID: 4, Path: "/", Dev: 0x803, Ino: 2, Mode: 0o40755, Size: 4096},
		{ID: 5, Path: "/dev/null", Dev: 5, Ino: 4, Mode: 0o20666},
	}
	shm := []*SharedObject{
		{ID: 1, Dev: 1, Ino: 1000, Size: 3 * PageSize},
		{ID: 2, Dev: 1, Ino: 1001, Size: PageSize, Memfd: true, Name: "my memfd"},
	}
	vmas := []*VMA{
		{Start: 0x400000, End: 0x401000, Prot: 5, Flags: unix.MAP_PRIVATE, Kind: KindPrivateFile, FileID: 1, Name: "/usr/bin/prog", VmFlags: []string{"rd", "ex"}},
		{Start: 0x401000, End: 0x403000, Pgoff: 4096, Prot: 3, Flags: unix.MAP_PRIVATE, Kind: KindPrivateFile, FileID: 1, Name: "/usr/bin/prog"},
		{Start: 0x500000, End: 0x510000, Prot: 3, Flags: unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, Kind: KindHeap, Name: "[heap]"},
		{Start: 0x600000, End: 0x603000, Prot: 3, Flags: unix.MAP_SHARED | unix.MAP_ANONYMOUS, Kind: KindSharedAnon, ShmID: 1, Name: "/dev/zero (deleted)"},
		{Start: 0x603000, End: 0x604000, Prot: 3, Flags: unix.MAP_SHARED, Kind: KindMemfd, ShmID: 2, Name: "/memfd:my memfd (deleted)"},
		{Start: 0x700000, End: 0x702000, Prot: 1, Flags: unix.MAP_SHARED, Kind: KindSharedFile, FileID: 2, Name: "/tmp/deleted file (deleted)"},
		{Start: 0x702000, End: 0x704000, Pgoff: 8192, Prot: 1, Flags: unix.MAP_PRIVATE, Kind: KindPrivateFile, FileID: 3},
		{Start: 0x7f0000000000, End: 0x7f0000100000, Prot: 3, Flags: unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, Kind: KindPrivateAnon,
			Madv: 1<<unix.MADV_DONTFORK | 1<<unix.MADV_HUGEPAGE, Name: "[anon:buf]", VmFlags: []string{}},
		{Start: 0x7f1000000000, End: 0x7f1000003000, Prot: 3, Flags: unix.MAP_SHARED, Kind: KindAIORing, Name: "/[aio] (deleted)"},
		{Start: 0x7ffd00000000, End: 0x7ffd00021000, Prot: 3, Flags: unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_GROWSDOWN, Kind: KindStack, Name: "[stack]"},
		{Start: 0x7ffd00100000, End: 0x7ffd00104000, Prot: 1, Flags: unix.MAP_PRIVATE, Kind: KindVVAR, Name: "[vvar]"},
		{Start: 0x7ffd00104000, End: 0x7ffd00106000, Prot: 1, Flags: unix.MAP_PRIVATE, Kind: KindVVARVclock, Name: "[vvar_vclock]"},
		{Start: 0x7ffd00106000, End: 0x7ffd00108000, Prot: 5, Flags: unix.MAP_PRIVATE, Kind: KindVDSO, Name: "[vdso]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: 4, Flags: unix.MAP_PRIVATE, Kind: KindVsyscall, Name: "[vsyscall]"},
	}
	root := &Task{
		PID: 100, PPID: 1, PGID: 100, SID: 90, Comm: "prog",
		Threads:        []*Thread{mkThread(100, 0), mkThread(101, 1), mkThread(105, 2)},
		ChildSubreaper: true,
		Mm: Mm{StartCode: 0x400000, EndCode: 0x401000, StartData: 0x401000, EndData: 0x402000, StartBrk: 0x500000,
			Brk: 0x510000, StartStack: 0x7ffd00020000, ArgStart: 1, ArgEnd: 2, EnvStart: 3, EnvEnd: 4,
			Auxv: []uint64{33, 0x7ffd00106000, 6, 4096, 0, 0}, ExeFileID: 1, Dumpable: 1, THPDisabled: true, MDWE: 1, MergeAny: true,
			AIORings: []AIORing{{Addr: 0x7f1000000000, Len: 0x3000, NrReq: 190}}},
		VMAs: vmas,
		FDs: []*FD{
			{Num: 0, Kind: FDExternal, Flags: unix.O_RDWR, ExternalType: "tty"},
			{Num: 1, Kind: FDExternal, Flags: unix.O_WRONLY | unix.O_APPEND, Pos: 3, ExternalType: "pipe"},
			{Num: 3, Kind: FDRegular, FileID: 2, Flags: unix.O_RDWR | unix.O_CLOEXEC, Pos: 1234},
			{Num: 4, Kind: FDDir, FileID: 4, Flags: unix.O_RDONLY | unix.O_DIRECTORY},
			{Num: 7, Kind: FDCharDev, FileID: 5, Flags: unix.O_WRONLY | unix.O_CLOEXEC},
			{Num: 9, Kind: FDRegular, FileID: 2, Flags: unix.O_RDONLY, Pos: 1 << 40},
			{Num: 10, Kind: FDEpoll, Flags: unix.O_RDWR | unix.O_CLOEXEC, Epoll: []EpollTarget{
				{FD: 11, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP | unix.EPOLLET, Data: 0x5a3e20},
				{FD: 3, Events: unix.EPOLLOUT, Data: 1 << 63}}},
			{Num: 11, Kind: FDEventfd, Flags: unix.O_RDWR | unix.O_NONBLOCK, Eventfd: &Eventfd{Count: 1 << 40, Semaphore: true}},
		},
		CwdFileID: 4, RootFileID: 4,
		Creds: Creds{UID: 1, EUID: 2, SUID: 3, FSUID: 4, GID: 5, EGID: 6, SGID: 7, FSGID: 8, Groups: []uint32{10, 20},
			CapInh: 1, CapPrm: 0x1ffffffffff, CapEff: 0x1ffffffffff, CapBnd: 0x1ffffffffff, CapAmb: 0x400, NoNewPrivs: true, Securebits: 0x15},
		Umask: 0o22, Personality: 0x0040000, Rlimits: rl, SigActions: sas,
		Itimers:       [3]Itimer{{IntervalUsec: 1500000, ValueUsec: 2999999}, {IntervalUsec: 0, ValueUsec: 10}, {IntervalUsec: 7, ValueUsec: 0}},
		SharedPending: []SigInfo{si, si2},
		OomScoreAdj:   new(0), // present though zero; the child's is absent
	}
	child := &Task{
		PID: 102, PPID: 100, PGID: 100, SID: 90, Comm: "child",
		Stopped: true, // in a job-control stop at dump
		Threads: []*Thread{mkThread(102, 3)},
		Mm:      Mm{ExeFileID: 1},
		VMAs: []*VMA{
			{Start: 0x600000, End: 0x601000, Pgoff: 2 * PageSize, Prot: 1, Flags: unix.MAP_SHARED | unix.MAP_ANONYMOUS, Kind: KindSharedAnon, ShmID: 1},
		},
		CwdFileID: 4, RootFileID: 4,
	}
	return &Tree{Tasks: []*Task{root, child}, Files: files, SharedObjects: shm}
}

// pagesOf makes n pages of deterministic content.
func pagesOf(n int, seed uint64) []byte {
	b := make([]byte, n*PageSize)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

type pageAdd struct {
	addr  uint64
	pages int
}

// writeSample writes sampleTree with pages and a ghost, returns the dir.
func writeSample(t testing.TB) (string, *Tree) {
	t.Helper()
	dir, tree, _ := writeSampleWriter(t)
	return dir, tree
}

// writeSampleWriter is writeSample that also returns the committed writer
// (its created list is the order the files were written in).
func writeSampleWriter(t testing.TB) (string, *Tree, *Writer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	tree := sampleTree()
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := w.Pages(100)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range []pageAdd{{0x401000, 1}, {0x402000, 1}, {0x500000, 3}, {0x7f0000000000, 16}} {
		if err := pw.Add(a.addr, pagesOf(a.pages, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	sp, err := w.ShmemPages(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(0, pagesOf(1, 50)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(2*PageSize, pagesOf(1, 51)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	addGhost(t, w, 2, bytes.Repeat([]byte("ghost!"), 1000), 5000)
	if err := w.Commit(tree); err != nil {
		t.Fatal(err)
	}
	return dir, tree, w
}

func TestTreeRoundTrip(t *testing.T) {
	dir, want := writeSample(t)
	r, got := openTree(t, dir)
	// Empty slices come back nil (documented normalization).
	want.Tasks[0].VMAs[7].VmFlags = nil
	if !reflect.DeepEqual(got, want) {
		for i := range want.Tasks {
			if i < len(got.Tasks) && !reflect.DeepEqual(got.Tasks[i], want.Tasks[i]) {
				g, w := got.Tasks[i], want.Tasks[i]
				t.Errorf("task %d differs", w.PID)
				for j := range w.VMAs {
					if j < len(g.VMAs) && !reflect.DeepEqual(g.VMAs[j], w.VMAs[j]) {
						t.Errorf("vma %d: got %+v want %+v", j, *g.VMAs[j], *w.VMAs[j])
					}
				}
				for j := range w.Threads {
					if j < len(g.Threads) && !reflect.DeepEqual(g.Threads[j], w.Threads[j]) {
						t.Errorf("thread %d differs", j)
					}
				}
			}
		}
		if !reflect.DeepEqual(got.Files, want.Files) {
			t.Errorf("files differ")
		}
		if !reflect.DeepEqual(got.SharedObjects, want.SharedObjects) {
			t.Errorf("shared objects differ")
		}
		t.Fatal("tree differs")
	}

	runs, pf, err := r.Pages(100)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	wantRuns := []PageRun{{0x401000, 2 * PageSize, 0}, {0x500000, 3 * PageSize, 2 * PageSize}, {0x7f0000000000, 16 * PageSize, 5 * PageSize}}
	if !reflect.DeepEqual(runs, wantRuns) {
		t.Fatalf("runs %+v, want %+v", runs, wantRuns)
	}
	buf := make([]byte, 16*PageSize)
	if _, err := pf.ReadAt(buf, 5*PageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, pagesOf(16, 3)) {
		t.Fatal("page content differs")
	}
	sruns, sf, err := r.ShmemPages(1)
	if err != nil {
		t.Fatal(err)
	}
	sf.Close()
	if want := []PageRun{{0, PageSize, 0}, {2 * PageSize, PageSize, PageSize}}; !reflect.DeepEqual(sruns, want) {
		t.Fatalf("shmem runs %+v, want %+v", sruns, want)
	}
	// Tasks and objects without pages get empty pagemaps.
	for _, f := range []func() ([]PageRun, *os.File, error){
		func() ([]PageRun, *os.File, error) { return r.Pages(102) },
		func() ([]PageRun, *os.File, error) { return r.ShmemPages(2) },
	} {
		runs, f, err := f()
		if err != nil || len(runs) != 0 {
			t.Fatalf("empty pagemap: %v %v", runs, err)
		}
		f.Close()
	}

	rc, size, err := r.Ghost(2)
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || size != 5000 || !bytes.Equal(content, bytes.Repeat([]byte("ghost!"), 1000)[:5000]) {
		t.Fatalf("ghost: size %d, %d bytes, %v", size, len(content), err)
	}
	if _, _, err := r.Ghost(3); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("ghost of a file without one: %v", err)
	}
}

func TestCreateRefusesFinishedImage(t *testing.T) {
	dir, _ := writeSample(t)
	if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "already holds an image") {
		t.Fatalf("Create over an image: %v", err)
	}
}

func TestAbort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := w.Pages(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Add(0, pagesOf(2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(sampleTree()); err == nil {
		t.Fatal("commit with an open page writer succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir left behind: %v", err)
	}
	// Abort in a pre-existing dir keeps the dir and foreign files.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600)
	w, err = Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ = w.Pages(1)
	pw.Add(0, pagesOf(1, 1))
	pw.Close()
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Fatalf("after abort: %v", ents)
	}
}

func TestFileModes(t *testing.T) {
	dir, _ := writeSample(t)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", e.Name(), info.Mode())
		}
	}
}

func TestAbortAfterCommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(sampleTree()); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir left behind: %v", err)
	}
}

// BenchmarkLargeTree writes and reads back a tree of 200 tasks with 500
// VMAs each (metadata only).
func BenchmarkLargeTree(b *testing.B) {
	base := sampleTree()
	tree := &Tree{Files: base.Files, SharedObjects: base.SharedObjects}
	for i := range 200 {
		task := *base.Tasks[1]
		task.PID = 1000 + i
		th := *task.Threads[0]
		th.TID = task.PID
		task.Threads = []*Thread{&th}
		task.VMAs = nil
		for k := range 500 {
			task.VMAs = append(task.VMAs, &VMA{Start: uint64(0x10000000 + k*0x2000), End: uint64(0x10001000 + k*0x2000),
				Prot: 3, Flags: unix.MAP_PRIVATE, Kind: KindPrivateFile, FileID: 1, Name: "/usr/bin/prog", VmFlags: []string{"rd", "wr"}})
		}
		tree.Tasks = append(tree.Tasks, &task)
	}
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "img")
		w, err := Create(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(tree); err != nil {
			b.Fatal(err)
		}
		r, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Tree(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCommitRejectsBadTree: a tree the reader would refuse is refused at
// dump time, naming the problem.
func TestCommitRejectsBadTree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"file id gap", func(tr *Tree) { tr.Files[2].ID = 9 }, "Files[2] has a wrong ID"},
		{"fd to unknown file", func(tr *Tree) { tr.Tasks[0].FDs[2].FileID = 99 }, "fd 3 refers to unknown file 99"},
		{"vma to unknown object", func(tr *Tree) { tr.Tasks[1].VMAs[0].ShmID = 7 }, "unknown shared object 7"},
		{"overlapping vmas", func(tr *Tree) { tr.Tasks[0].VMAs[1].Start = 0x400000 }, "out of order"},
		{"memfd vma on shmem", func(tr *Tree) { tr.Tasks[0].VMAs[4].ShmID = 1 }, "not a memfd"},
		{"leader not first", func(tr *Tree) {
			th := tr.Tasks[0].Threads
			th[0], th[1] = th[1], th[0]
		}, "Threads[0] must be the leader"},
		{"unknown exe", func(tr *Tree) { tr.Tasks[1].Mm.ExeFileID = 42 }, "unknown file 42"},
		{"epoll of a missing fd", func(tr *Tree) { tr.Tasks[0].FDs[6].Epoll[1].FD = 5 }, "watches fd 5"},
		{"eventfd without state", func(tr *Tree) { tr.Tasks[0].FDs[7].Eventfd = nil }, "eventfd state"},
		{"deadline policy", func(tr *Tree) { tr.Tasks[0].Threads[1].Sched = &Sched{Policy: 6} }, "thread 101: scheduling policy 0x6"},
		{"oom_score_adj out of range", func(tr *Tree) { tr.Tasks[1].OomScoreAdj = new(1001) }, "task 102: oom_score_adj 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := sampleTree()
			tc.mangle(tree)
			w, err := Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if err := w.Commit(tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

// addGhost stores the first size bytes of data as ghost file id of w.
func addGhost(t testing.TB, w *Writer, id uint32, data []byte, size int64) {
	t.Helper()
	gf := filepath.Join(t.TempDir(), "ghost")
	if err := os.WriteFile(gf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(gf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := w.Ghost(id, f, size); err != nil {
		t.Fatal(err)
	}
}
