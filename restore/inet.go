package restore

import (
	"errors"
	"fmt"
	"os"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// newInetListener makes in mmcr the TCP listener s, its options set before
// bind as the dump found them, bound to its address and port and listening
// with its backlog, O_NONBLOCK from the fd's flags; its fds take it. The
// port must be free: a listener still running (a dump with
// --leave-running) holds it.
func newInetListener(s *image.InetSocket, flags int) (_ int, err error) {
	if s == nil {
		return 0, errors.New("no inet socket")
	}
	fd, err := unix.Socket(s.Family(), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return 0, os.NewSyscallError("socket", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	set := func(level, opt int, on bool, name string) error {
		v := 0
		if on {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", name, err)
		}
		return nil
	}
	if s.ReuseAddr {
		if err := set(unix.SOL_SOCKET, unix.SO_REUSEADDR, true, "SO_REUSEADDR"); err != nil {
			return 0, err
		}
	}
	if s.ReusePort {
		if err := set(unix.SOL_SOCKET, unix.SO_REUSEPORT, true, "SO_REUSEPORT"); err != nil {
			return 0, err
		}
	}
	if s.Family() == unix.AF_INET6 {
		// Set either way: this machine's default (net.ipv6.bindv6only)
		// may not be the dumping one's.
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, s.V6Only, "IPV6_V6ONLY"); err != nil {
			return 0, err
		}
	}
	var sa unix.Sockaddr
	if a := s.Addr.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(s.Addr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(s.Addr.Port()), Addr: a.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return 0, fmt.Errorf("bind %s: %w (is the dumped listener still running?)", s.Addr, err)
		}
		return 0, fmt.Errorf("bind %s: %w", s.Addr, err)
	}
	if err := unix.Listen(fd, int(s.Backlog)); err != nil {
		return 0, fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		if err := unix.SetNonblock(fd, true); err != nil {
			return 0, fmt.Errorf("%s: set O_NONBLOCK: %w", s.Addr, err)
		}
	}
	return fd, nil
}
