package kernel

import (
	"os"

	"golang.org/x/sys/unix"
)

// PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15): while on for a process,
// timer_create makes the timer with the id its timer_t holds.
const (
	PrTimerCreateRestoreIDs    = 77
	PrTimerCreateRestoreIDsOff = 0
	PrTimerCreateRestoreIDsOn  = 1
	PrTimerCreateRestoreIDsGet = 2
)

// membarrier(2) commands (linux/membarrier.h), which x/sys lacks. A
// REGISTER command's bit is its barrier's shifted left by one.
const (
	MembarrierRegisterGlobalExpedited          = 1 << 2
	MembarrierRegisterPrivateExpedited         = 1 << 4
	MembarrierRegisterPrivateExpeditedSyncCore = 1 << 6
	MembarrierRegisterPrivateExpeditedRseq     = 1 << 8
	// MembarrierGetRegistrations (Linux 6.3) returns the REGISTER
	// commands the caller's mm issued.
	MembarrierGetRegistrations = 1 << 9

	MembarrierRegisterCmds = MembarrierRegisterGlobalExpedited | MembarrierRegisterPrivateExpedited |
		MembarrierRegisterPrivateExpeditedSyncCore | MembarrierRegisterPrivateExpeditedRseq
)

// SoBufLock is SO_BUF_LOCK (Linux 5.14): which of a socket's buffer
// sizes were set by setsockopt (unix.SOCK_SNDBUF_LOCK, SOCK_RCVBUF_LOCK),
// and so no longer tuned by the kernel.
const SoBufLock = 72

// The owner types of fcntl F_GETOWN_EX/F_SETOWN_EX (struct f_owner_ex),
// and the struct itself.
const (
	FOwnerTID  = 0
	FOwnerPID  = 1
	FOwnerPGRP = 2
)

// FGetOwnerUIDs is F_GETOWNER_UIDS (CONFIG_CHECKPOINT_RESTORE): the uid
// and euid of whoever set an open file description's owner.
const FGetOwnerUIDs = 17

// FOwnerEx is struct f_owner_ex.
type FOwnerEx struct {
	Type int32
	PID  int32
}

// TfdIocSetTicks is TFD_IOC_SET_TICKS (_IOW('T', 0, u64)): sets a
// timerfd's expirations not read yet (CONFIG_CHECKPOINT_RESTORE).
const TfdIocSetTicks = 0x40085400

// ioprioWhoProcess is IOPRIO_WHO_PROCESS: one thread, by its tid.
const ioprioWhoProcess = 1

// IOPrioGet returns thread tid's I/O priority (class << 13 | level).
func IOPrioGet(tid int) (uint32, error) {
	v, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return 0, os.NewSyscallError("ioprio_get", errno)
	}
	return uint32(v), nil
}

// IOPrioSet sets thread tid's I/O priority.
func IOPrioSet(tid int, v uint32) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(v)); errno != 0 {
		return os.NewSyscallError("ioprio_set", errno)
	}
	return nil
}
