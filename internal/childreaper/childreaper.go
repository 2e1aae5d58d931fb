// Package childreaper reaps every child of the process at once and keeps
// their exit statuses, for test drivers and the benchmark that make
// themselves child subreapers: pid 1 reaps orphans slowly here, and a
// restore needs the dumped pids free.
//
// A dumped task and its restored copy share a pid, so exits are numbered:
// Mark returns a point in time and Exited(pid, mark) sees only later exits.
// Reaping and recording happen under one lock, so once a pid is gone from
// /proc its exit is recorded: a Mark taken after that never counts it as
// a later exit.
package childreaper

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is one reaped child.
type Exit struct {
	Seq    uint64
	Status unix.WaitStatus
	Rusage unix.Rusage
	At     time.Time
}

// Reaper collects exits. Nothing else in the process may wait for its
// children (os/exec's Wait would lose the race) once Start ran.
type Reaper struct {
	mu     sync.Mutex
	seq    uint64
	events map[int][]Exit
	once   sync.Once
}

// New returns a reaper; Start begins reaping.
func New() *Reaper { return &Reaper{events: map[int][]Exit{}} }

// Start begins reaping in a goroutine; later calls do nothing.
func (r *Reaper) Start() { r.once.Do(func() { go r.loop() }) }

func (r *Reaper) loop() {
	for {
		if !r.reapOne() {
			// Nothing to reap (or no children): poll again soon. Exit
			// times are measured here, so keep the period short.
			time.Sleep(time.Millisecond)
		}
	}
}

// reapOne reaps one exited child, if any, and records it before anybody
// can take a mark: the lock is held across wait4 (which never blocks here).
func (r *Reaper) reapOne() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws unix.WaitStatus
	var ru unix.Rusage
	pid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, &ru)
	if err != nil || pid <= 0 {
		return false
	}
	r.seq++
	r.events[pid] = append(r.events[pid], Exit{Seq: r.seq, Status: ws, Rusage: ru, At: time.Now()})
	return true
}

// Mark returns the current point in time.
func (r *Reaper) Mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Exited reports pid's first exit after since.
func (r *Reaper) Exited(pid int, since uint64) (Exit, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events[pid] {
		if e.Seq > since {
			return e, true
		}
	}
	return Exit{}, false
}

// WaitExit waits up to timeout for pid to exit after since.
func (r *Reaper) WaitExit(pid int, since uint64, timeout time.Duration) (Exit, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if e, ok := r.Exited(pid, since); ok {
			return e, true
		}
		if time.Now().After(deadline) {
			return Exit{}, false
		}
		time.Sleep(500 * time.Microsecond)
	}
}
