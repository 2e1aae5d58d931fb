package ptrace

import (
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// StubOptions are the ptrace options StartStub sets: syscall stops marked
// for Remote, children made by remote clone/fork/vfork auto-attached, and
// the stub killed if the tracer thread goes away.
const StubOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE |
	unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_EXITKILL

// StartStub starts path with args (argv[1:]; argv[0] is path) as a traced
// child stopped right after execve (PTRACE_TRACEME via os/exec), with
// StubOptions set, and returns its pid. Its stdio is /dev/null.
//
// The caller must hold runtime.LockOSThread: the thread that forks the
// child becomes its tracer, and every later request must come from it.
// The child is the caller's to reap with Wait (wait4); no exec.Cmd.Wait
// is pending on it.
func StartStub(path string, args []string) (int, error) {
	return StartStubCmd(exec.Command(path, args...))
}

// StartStubCmd is StartStub for a prepared command (files, env, dir). It
// sets cmd.SysProcAttr.Ptrace. After it returns, cmd.Process is released:
// do not call cmd.Wait; reap the pid with Wait.
func StartStubCmd(cmd *exec.Cmd) (int, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Ptrace = true
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start stub %s: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	// Drop os.Process's pidfd; the pid stays ours until wait4 reaps it.
	_ = cmd.Process.Release()
	st, err := Wait(pid)
	if err != nil {
		return 0, fmt.Errorf("start stub %s: %w", cmd.Path, err)
	}
	if !st.IsSignalDelivery() || st.Signal() != unix.SIGTRAP {
		err := unexpectedStop(pid, st)
		_ = Kill(pid)
		_, _ = Wait(pid)
		return 0, fmt.Errorf("start stub %s: %w", cmd.Path, err)
	}
	if err := SetOptions(pid, StubOptions); err != nil {
		_ = Kill(pid)
		_, _ = Wait(pid)
		return 0, fmt.Errorf("start stub %s: %w", cmd.Path, err)
	}
	return pid, nil
}
