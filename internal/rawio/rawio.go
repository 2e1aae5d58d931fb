// Package rawio makes the data-moving syscalls of the page copies of dump
// and restore (process_vm_readv/writev, pread, pwritev) without telling the
// Go scheduler, and hands chunks between their goroutines without parking
// them (Recv).
//
// A goroutine in an ordinary syscall that lasts longer than a sysmon tick
// (20 µs) loses its P: sysmon hands the P to another thread, and when the
// call returns the goroutine must get a P back, often by waking a thread
// and parking its own. The page copy makes thousands of calls of 50-150 µs
// each (512 KiB at a time) on exactly as many goroutines as there are Ps,
// so every call paid that hand-off in futex wakes, context switches and,
// on a paravirtualised guest, interrupts between CPUs. Measured on the
// 2-vCPU guest of the README: a Go pipeline of process_vm_readv and pwrite
// copying 1 GiB took 1.3-1.45x dd with ordinary syscalls and 1.0-1.1x
// with raw ones and Recv, as a C pipeline does.
//
// A raw call keeps its P (and so its CPU) for its whole length: it must be
// short and bounded, it must not wait for anything another goroutine of
// mmcr has to do, and the goroutines that make such calls must be no more
// than GOMAXPROCS, or the others wait for preemption (10 ms) to run.
package rawio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProcessVMReadv is process_vm_readv(2) with flags 0: it returns the bytes
// copied.
func ProcessVMReadv(pid int, local []unix.Iovec, remote []unix.RemoteIovec) (int, error) {
	return processVM(unix.SYS_PROCESS_VM_READV, pid, local, remote)
}

// ProcessVMWritev is process_vm_writev(2) with flags 0.
func ProcessVMWritev(pid int, local []unix.Iovec, remote []unix.RemoteIovec) (int, error) {
	return processVM(unix.SYS_PROCESS_VM_WRITEV, pid, local, remote)
}

func processVM(nr uintptr, pid int, local []unix.Iovec, remote []unix.RemoteIovec) (int, error) {
	if len(local) == 0 || len(remote) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(nr, uintptr(pid),
		uintptr(unsafe.Pointer(&local[0])), uintptr(len(local)),
		uintptr(unsafe.Pointer(&remote[0])), uintptr(len(remote)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Pread is pread64(2). Offsets above 2^63 (addresses in /proc/PID/mem)
// pass as they are: the kernel takes them unsigned there.
func Pread(fd int, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd),
		uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(off), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Pwritev is pwritev(2) of iov at off (on 64-bit the whole offset is the
// low word; the high word is 0).
func Pwritev(fd int, iov []unix.Iovec, off int64) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_PWRITEV, uintptr(fd),
		uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), uintptr(off), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
