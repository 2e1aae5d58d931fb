// Package ptrace stops, inspects and drives other processes: seize and
// interrupt, registers and xstate, signal state, remote syscalls and remote
// memory access.
//
// Precondition for every function that issues a ptrace request: it runs on
// the OS thread that attached the tracee (runtime.LockOSThread in the
// caller, held for the whole dump or restore). wait4 is the exception: the
// kernel lets any thread of the tracer process collect a tracee's stops, so
// Wait and the reaping of killed tracees may run anywhere, but keeping them
// on the same goroutine is simplest.
//
// If the locked goroutine ends without unlocking, Go kills its thread; the
// kernel then detaches every tracee that thread held (and kills those
// started by StartStub, which sets PTRACE_O_EXITKILL).
//
// Files: sys.go (raw requests and errors), seize.go (attach, detach, wait),
// regs.go (registers, xstate, signal state, rseq), remote.go (remote
// syscalls), batch.go (many remote syscalls in one round trip), mem.go
// (remote memory), stub.go (traced children).
package ptrace
