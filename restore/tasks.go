package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/procfs"
	"github.com/mmcr/mmcr/ptrace"
)

// scratch builds syscall arguments (structs, strings) to be written in one
// go into a task's restorer area after the `syscall` instruction.
type scratch struct {
	base uint64
	buf  []byte
}

func (rs *restorer) newScratch() *scratch { return &scratch{base: rs.area + scratchOff} }

// add appends b (8-byte aligned) and returns its address in the task.
func (s *scratch) add(b []byte) uint64 {
	for len(s.buf)%8 != 0 {
		s.buf = append(s.buf, 0)
	}
	addr := s.base + uint64(len(s.buf))
	s.buf = append(s.buf, b...)
	return addr
}

// str appends a NUL-terminated string.
func (s *scratch) str(v string) uint64 { return s.add(append([]byte(v), 0)) }

// u64s appends 64-bit words.
func (s *scratch) u64s(words ...uint64) uint64 {
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return s.add(b)
}

// write puts the scratch contents into task pid.
func (s *scratch) write(pid int) error {
	if len(s.buf) > batchTableOff-scratchOff {
		return fmt.Errorf("task %d: %d bytes of syscall arguments do not fit the restorer area", pid, len(s.buf))
	}
	if err := ptrace.WriteMem(pid, s.base, s.buf); err != nil {
		return fmt.Errorf("write syscall arguments: %w", err)
	}
	return nil
}

// sys runs a remote syscall in tk's leader; its error names the syscall
// and the pid.
func (tk *task) sys(nr uintptr, args ...uint64) (uint64, error) {
	return tk.r.Syscall(nr, args...)
}

// startStub starts the helper stub and gives it the restorer area.
func (rs *restorer) startStub() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find mmcr binary: %w", err)
	}
	exe = stubPath(exe)
	wanted := make(map[int]bool)
	for _, t := range rs.tree.Tasks {
		for _, th := range t.Threads {
			wanted[th.TID] = true
		}
	}
	for range 5 {
		pid, err := ptrace.StartStub(exe, []string{StubArg})
		if err != nil {
			return err
		}
		rs.stub = pid
		if !wanted[pid] {
			break
		}
		// The stub took a pid the tree needs: start another one.
		unix.Kill(pid, unix.SIGKILL)
		reap(pid)
		rs.stub = 0
	}
	if rs.stub == 0 {
		return errors.New("the helper stub keeps getting a pid the tree needs")
	}
	maps, err := procfs.Default.Mappings(rs.stub)
	if err != nil {
		return fmt.Errorf("read maps of stub %d: %w", rs.stub, err)
	}
	var vdso *procfs.Mapping
	for i := range maps {
		if maps[i].Path == "[vdso]" {
			vdso = &maps[i]
		}
	}
	if vdso == nil {
		return fmt.Errorf("stub %d has no [vdso] to find a syscall instruction in", rs.stub)
	}
	insn, err := ptrace.FindSyscallInsn(rs.stub, vdso.Start, vdso.End)
	if err != nil {
		return err
	}
	r, err := ptrace.NewRemote(rs.stub, insn)
	if err != nil {
		return err
	}
	rs.area, err = pickArea(maps, rs.tree, restorerSize)
	if err != nil {
		return err
	}
	rs.log.Debug("restorer area", "addr", fmt.Sprintf("%#x", rs.area), "stub", rs.stub)
	_, err = r.Syscall(unix.SYS_MMAP, rs.area, restorerSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return fmt.Errorf("map restorer area at %#x in stub: %w", rs.area, err)
	}
	code := make([]byte, batchCodeOff+len(batchCode))
	copy(code, []byte{0x0f, 0x05, 0xcc}) // syscall; int3
	copy(code[batchCodeOff:], batchCode)
	if err := ptrace.WriteMem(rs.stub, rs.area, code); err != nil {
		return err
	}
	r.Insn = rs.area
	rs.stubR = r
	return nil
}

// stubPath returns the exe path as the kernel can exec it: a binary that
// was replaced since mmcr started reads "... (deleted)"; keep using it
// through /proc/self/exe then.
func stubPath(exe string) string {
	if strings.HasSuffix(exe, " (deleted)") {
		return "/proc/self/exe"
	}
	return exe
}

// createTasks makes every task with its original pid, in tree order, and
// its memory (restoreMemory) before any child of it, then rebuilds
// sessions and process groups. A child is a fork of its restored parent:
// the VMAs it shared with the parent at dump (VMA.FromParent) it inherits
// with their pages still shared copy-on-write.
func (rs *restorer) createTasks() error {
	for i, t := range rs.tree.Tasks {
		if err := rs.canceled(); err != nil {
			return err
		}
		if t.Zombie {
			if err := rs.makeZombie(t); err != nil {
				return err
			}
			continue
		}
		var in *ptrace.Remote
		var flags uint64
		var parent *task
		if i == 0 {
			// CLONE_PARENT: the root is mmcr's child, not the stub's.
			in, flags = rs.stubR, unix.CLONE_PARENT
		} else {
			parent = rs.byPID[t.PPID]
			in = parent.r
		}
		tk := &task{t: t, parent: parent}
		if parent != nil {
			tk.exe = parent.exe // a fork's exe link is its parent's
		}
		if err := rs.clone(in, t.PID, flags); err != nil {
			return err
		}
		rs.created = append(rs.created, t.PID)
		st, err := ptrace.Wait(t.PID)
		if err != nil {
			return fmt.Errorf("first stop of new task %d: %w", t.PID, err)
		}
		rs.log.Debug("task created", "pid", t.PID, "stop", st.String())
		if tk.r, err = ptrace.NewRemote(t.PID, rs.area); err != nil {
			return err
		}
		tk.threads = []*thread{{tid: t.PID, th: t.Threads[0], r: tk.r}}
		rs.tasks = append(rs.tasks, tk)
		rs.byPID[t.PID] = tk
		if i == 0 {
			unix.Kill(rs.stub, unix.SIGKILL)
			reap(rs.stub)
			rs.stub, rs.stubR = 0, nil
		}
		// A session or group made now is inherited by the task's children;
		// it goes in the first batch of restoreMemory.
		b := &batch{}
		switch {
		case t.SID == t.PID:
			b.add("new session", unix.SYS_SETSID)
		case t.PGID == t.PID:
			b.add("new process group", unix.SYS_SETPGID, 0, 0)
		}
		if err := rs.restoreMemory(tk, b); err != nil {
			return err
		}
	}
	// Joining a group whose leader came later in tree order.
	for _, tk := range rs.tasks {
		t := tk.t
		if t.PGID == t.PID || t.SID == t.PID {
			continue
		}
		if pgid, _ := unix.Getpgid(t.PID); pgid == t.PGID {
			continue
		}
		if _, err := tk.sys(unix.SYS_SETPGID, 0, uint64(t.PGID)); err != nil {
			rs.log.Warn("cannot restore process group", "pid", t.PID, "pgid", t.PGID, "err", err)
		}
	}
	for _, tk := range rs.tasks {
		if sid, _ := unix.Getsid(tk.t.PID); sid != tk.t.SID {
			rs.log.Warn("session differs from the dump", "pid", tk.t.PID, "sid", sid, "dumped", tk.t.SID)
		}
	}
	return nil
}

// threadFlags make a thread as pthread_create does.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM

// createThreads makes tk's other threads with their original tids, by
// clone3 in the leader, once the leader has the task's name and
// personality. They start as copies of the leader in its stop and get
// their own registers only at release.
func (rs *restorer) createThreads(tk *task) error {
	if len(tk.t.Threads) == 1 {
		return nil
	}
	if err := rs.restoreIdentity(tk); err != nil {
		return err
	}
	for _, th := range tk.t.Threads[1:] {
		if err := rs.clone(tk.r, th.TID, threadFlags); err != nil {
			return err
		}
		rs.createdThreads = append(rs.createdThreads, th.TID)
		if _, err := ptrace.Wait(th.TID); err != nil {
			return fmt.Errorf("first stop of new thread %d of %d: %w", th.TID, tk.t.PID, err)
		}
		r, err := ptrace.NewRemote(th.TID, rs.area)
		if err != nil {
			return err
		}
		tk.threads = append(tk.threads, &thread{tid: th.TID, th: th, r: r})
	}
	return nil
}

// cloneArgsSize is sizeof(struct clone_args) up to set_tid_size (VER1: 80),
// plus cgroup (VER2: 88).
const cloneArgsSize = 88

// clone makes task pid by clone3 with set_tid = [pid], run in the task
// behind in. The child is auto-attached (TRACECLONE/TRACEFORK).
func (rs *restorer) clone(in *ptrace.Remote, pid int, flags uint64) error {
	// clone3 refuses an exit_signal with CLONE_PARENT (the child takes
	// the stub's own: SIGCHLD, from its fork by mmcr) or CLONE_THREAD.
	exitSignal := uint64(unix.SIGCHLD)
	if flags&(unix.CLONE_PARENT|unix.CLONE_THREAD) != 0 {
		exitSignal = 0
	}
	s := rs.newScratch()
	var tid [8]byte
	binary.LittleEndian.PutUint32(tid[:], uint32(pid))
	tidAddr := s.add(tid[:])
	args := s.u64s(
		flags,      // flags
		0,          // pidfd
		0,          // child_tid
		0,          // parent_tid
		exitSignal, // exit_signal
		0, 0,       // stack, stack_size
		0,          // tls
		tidAddr, 1, // set_tid, set_tid_size
		0, // cgroup
	)
	if err := s.write(in.TID); err != nil {
		return err
	}
	ret, err := in.Syscall(unix.SYS_CLONE3, args, cloneArgsSize)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("pid %d is already in use", pid)
	}
	if err != nil {
		return fmt.Errorf("create task %d: %w", pid, err)
	}
	if int(ret) != pid {
		// The kernel gave another pid: kill that stray child.
		unix.Kill(int(ret), unix.SIGKILL)
		reap(int(ret))
		return fmt.Errorf("create task %d: got pid %d", pid, ret)
	}
	return nil
}

// pickArea chooses where the restorer area goes: free in the stub and in
// every task's dumped layout, with a guard around, scanning down from
// just below the usual stack region.
func pickArea(stub []procfs.Mapping, tree *image.Tree, size uint64) (uint64, error) {
	type span struct{ start, end uint64 }
	var used []span
	for _, m := range stub {
		used = append(used, span{m.Start, m.End})
	}
	for _, t := range tree.Tasks {
		for _, v := range t.VMAs {
			used = append(used, span{v.Start, v.End})
		}
	}
	const (
		top   = 0x7ff000000000
		low   = 0x10000000
		guard = 4 << 20
	)
	addr := uint64(top) - size
	for addr > low {
		moved := false
		for _, u := range used {
			if u.start < addr+size+guard && addr < u.end+guard {
				if u.start < size+guard+low {
					return 0, errors.New("no room for the restorer area")
				}
				addr = (u.start - size - guard) &^ (image.PageSize - 1)
				moved = true
			}
		}
		if !moved {
			return addr, nil
		}
	}
	return 0, errors.New("no room for the restorer area")
}
