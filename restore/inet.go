package restore

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// newInetSocket makes in mmcr the TCP listener or UDP socket s, its
// options set before bind as the dump found them, bound to its address
// and port (a UDP socket never bound stays so) and listening with its
// backlog, or connected to its peer; O_NONBLOCK from the fd's flags; its
// fds take it. The port must be free: the socket still open (a dump with
// --leave-running) holds it.
func newInetSocket(s *image.InetSocket, flags int) (_ int, err error) {
	if s == nil {
		return 0, errors.New("no inet socket")
	}
	typ, proto := unix.SOCK_STREAM, unix.IPPROTO_TCP
	if s.UDP {
		typ, proto = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	}
	fd, err := unix.Socket(s.Family(), typ|unix.SOCK_CLOEXEC, proto)
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
	if !s.UDP || s.Addr.Port() != 0 {
		if err := unix.Bind(fd, sockaddr(s.Addr)); err != nil {
			if errors.Is(err, unix.EADDRINUSE) {
				return 0, fmt.Errorf("bind %s: %w (is the dumped socket still open?)", s.Addr, err)
			}
			return 0, fmt.Errorf("bind %s: %w", s.Addr, err)
		}
	}
	if !s.UDP {
		if err := unix.Listen(fd, int(s.Backlog)); err != nil {
			return 0, fmt.Errorf("listen on %s: %w", s.Addr, err)
		}
	}
	if s.Peer.IsValid() {
		if err := unix.Connect(fd, sockaddr(s.Peer)); err != nil {
			return 0, fmt.Errorf("connect %s to %s: %w", s.Addr, s.Peer, err)
		}
	}
	if flags&unix.O_NONBLOCK != 0 {
		if err := unix.SetNonblock(fd, true); err != nil {
			return 0, fmt.Errorf("%s: set O_NONBLOCK: %w", s.Addr, err)
		}
	}
	return fd, nil
}

// sockaddr is a as the socket calls take it.
func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}
