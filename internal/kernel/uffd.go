package kernel

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd ABI (include/uapi/linux/userfaultfd.h). mmcr does not use
// userfaultfd yet; `mmcr check` reports whether the write-protect async mode
// that dirty tracking would need (this kernel has no soft-dirty) is there.
const (
	uffdAPI            = 0xAA
	uffdUserModeOnly   = 1
	uffdioAPI          = 0xC018AA3F // _IOWR(0xAA, 0x3F, struct uffdio_api)
	UffdFeatureWPAsync = 1 << 15
)

type uffdioAPIArg struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// UserfaultfdFeatures opens a userfaultfd, handshakes the API and returns
// the feature bits the kernel offers.
func UserfaultfdFeatures() (uint64, error) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if errno != 0 {
		return 0, os.NewSyscallError("userfaultfd", errno)
	}
	defer unix.Close(int(fd))
	arg := uffdioAPIArg{API: uffdAPI}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return 0, os.NewSyscallError("ioctl(UFFDIO_API)", errno)
	}
	return arg.Features, nil
}
