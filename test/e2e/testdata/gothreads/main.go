// Command gothreads is the Go workload of the e2e suite (see common.h for
// the protocol): goroutines computing, sleeping and sending on channels
// over a few hundred MiB of heap, under the Go runtime's own threads,
// timers, netpoller and preemption signals.
//
// It opens no file but ./pidfile and ./result (closed at once), and it
// runs one child, /bin/sleep, which the runtime holds a pidfd of (Go
// 1.23+). On SIGTERM it checks that every goroutine kept working, stops
// them, verifies the heap and every result, and kills and waits for the
// child through the os.Process (through that pidfd).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// heapMiB is how much heap the workload holds (first argument).
var heapMiB = 256

func pat(seed, i uint64) uint64 {
	z := seed*0x9E3779B97F4A7C15 + i + 1
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

type job struct {
	chunk int
	want  uint64
}

var (
	heap     [][]uint64 // chunks of 1 MiB
	stop     atomic.Bool
	errMu    sync.Mutex
	errs     []string
	progress [8]atomic.Uint64
)

func fail(format string, args ...any) {
	errMu.Lock()
	defer errMu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if len(errs) == 0 {
		fmt.Printf("[gothreads %d] FAIL: %s\n", os.Getpid(), msg)
	}
	errs = append(errs, msg)
}

func chunkSum(c []uint64) uint64 {
	var s uint64
	for _, w := range c {
		s = s*31 + w
	}
	return s
}

func main() {
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil && n > 0 {
			heapMiB = n
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	sums := make([]uint64, heapMiB)
	heap = make([][]uint64, heapMiB)
	for i := range heap {
		c := make([]uint64, 1<<17)
		for j := range c {
			c[j] = pat(uint64(i), uint64(j))
		}
		heap[i] = c
		sums[i] = chunkSum(c)
	}

	child := exec.Command("/bin/sleep", "100000")
	if err := child.Start(); err != nil {
		fmt.Println("SETUP ERROR:", err)
		os.Exit(3)
	}

	var wg sync.WaitGroup
	jobs := make(chan job)
	done := make(chan int, 16)
	// Two workers: checksum chunks of the heap against the sums.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if got := chunkSum(heap[j.chunk]); got != j.want {
					fail("chunk %d: sum %#x, want %#x", j.chunk, got, j.want)
				}
				progress[w].Add(1)
				done <- j.chunk
			}
		}()
	}
	// The feeder sends jobs; the collector counts what comes back.
	var sent, received atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for i := 0; !stop.Load(); i++ {
			jobs <- job{chunk: i % heapMiB, want: sums[i%heapMiB]}
			sent.Add(1)
			progress[2].Add(1)
		}
	}()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for range done {
			received.Add(1)
			progress[3].Add(1)
		}
	}()
	// A sleeper and a ticker: timers.
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			time.Sleep(5 * time.Millisecond)
			progress[4].Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for !stop.Load() {
			<-t.C
			progress[5].Add(1)
		}
	}()
	// A tight loop with no function calls: only asynchronous preemption
	// (SIGURG) lets the scheduler take its thread back for the GC.
	var spinVal atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		x := uint64(1)
		for !stop.Load() {
			for k := 0; k < 1<<20; k++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
			spinVal.Store(x)
			progress[6].Add(1)
		}
	}()
	// Forced GC cycles: each needs every goroutine (the spinner too) to
	// stop at a safe point. Nothing allocates once set up, so the heap
	// and the process's maps stay as they are (the driver compares them).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
			progress[7].Add(1)
		}
	}()

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		ready := true
		for i := range progress {
			ready = ready && progress[i].Load() > 0
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("SETUP ERROR: goroutines made no progress")
			os.Exit(3)
		}
	}
	// The runtime starts threads (Ms) as it needs them and keeps them
	// idle afterwards. Start a pool now, with goroutines blocked in
	// syscalls at once (each takes a thread), so that later needs find
	// an idle one; then wait until the number has held for a second: the
	// driver's snapshot of the threads must be the one the dump sees.
	var pool sync.WaitGroup
	for range 8 {
		pool.Add(1)
		go func() {
			defer pool.Done()
			ts := syscall.Timespec{Nsec: 100e6}
			syscall.Nanosleep(&ts, nil)
		}()
	}
	pool.Wait()
	for n, same, deadline := threadCount(), 0, time.Now().Add(15*time.Second); same < 10 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if m := threadCount(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	if err := os.WriteFile("pidfile.tmp", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fmt.Println("SETUP ERROR:", err)
		os.Exit(3)
	}
	if err := os.Rename("pidfile.tmp", "pidfile"); err != nil {
		fmt.Println("SETUP ERROR:", err)
		os.Exit(3)
	}

	select {
	case <-term:
	case <-time.After(15 * time.Minute):
		fail("no SIGTERM within 15 minutes")
	}
	var before [len(progress)]uint64
	for i := range progress {
		before[i] = progress[i].Load()
	}
	// Every goroutine must move on within 10 s (a forced GC cycle over
	// the whole heap may hold some back for a while on a busy machine).
	names := []string{"worker0", "worker1", "feeder", "collector", "sleeper", "ticker", "spinner", "gc"}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var stuck []int
		for i := range progress {
			if progress[i].Load() == before[i] {
				stuck = append(stuck, i)
			}
		}
		if len(stuck) == 0 {
			break
		}
		if time.Now().After(end) {
			for _, i := range stuck {
				fail("goroutine %s stuck at %d for 10 s after SIGTERM", names[i], before[i])
			}
			break
		}
	}
	stop.Store(true)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(done); <-collected; close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		fail("goroutines did not stop within 20 s")
	}
	if s, r := sent.Load(), received.Load(); s != r {
		fail("sent %d jobs, %d came back", s, r)
	}
	for i, c := range heap {
		for j, w := range c {
			if w != pat(uint64(i), uint64(j)) {
				fail("heap chunk %d word %d: %#x, want %#x", i, j, w, pat(uint64(i), uint64(j)))
				break
			}
		}
	}
	if err := child.Process.Kill(); err != nil {
		fail("kill the child %d: %v", child.Process.Pid, err)
	}
	if err := child.Wait(); err == nil || err.Error() != "signal: killed" {
		fail("wait for the child %d: %v, want signal: killed", child.Process.Pid, err)
	}
	fmt.Printf("[gothreads %d] jobs %d, spin %#x, %d threads\n", os.Getpid(), sent.Load(), spinVal.Load(), threadCount())
	verdict := "PASS"
	if len(errs) > 0 {
		verdict = fmt.Sprintf("FAIL: %s (%d failures)", errs[0], len(errs))
	}
	os.WriteFile("result.tmp", []byte(verdict+"\n"), 0o644)
	os.Rename("result.tmp", "result")
	if len(errs) > 0 {
		os.Exit(1)
	}
}

func threadCount() int {
	ents, _ := os.ReadDir("/proc/self/task")
	return len(ents)
}
