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
	if err := setInetOpts(fd, s); err != nil {
		return 0, err
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

// setInetOpts sets s's options on socket fd, before bind: SO_REUSEADDR
// and SO_REUSEPORT when on, an IPv6 socket's IPV6_V6ONLY either way (this
// machine's default, net.ipv6.bindv6only, may not be the dumping one's),
// the buffer sizes that were set (half what getsockopt said: the kernel
// doubles them again), the flags that are on, the priority and low-water
// mark when not the defaults, linger, and a TCP socket's keepalive
// parameters.
func setInetOpts(fd int, s *image.InetSocket) error {
	o, udp := &s.Opts, s.UDP
	type setting struct {
		level, opt int
		v          int
		name       string
	}
	var ss []setting
	if s.ReuseAddr {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"})
	}
	if s.ReusePort {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT"})
	}
	if s.Family() == unix.AF_INET6 {
		v6only := 0
		if s.V6Only {
			v6only = 1
		}
		ss = append(ss, setting{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only, "IPV6_V6ONLY"})
	}
	if o.BufLock&unix.SOCK_SNDBUF_LOCK != 0 && o.SndBuf != 0 {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_SNDBUF, int(o.SndBuf / 2), "SO_SNDBUF"})
	}
	if o.BufLock&unix.SOCK_RCVBUF_LOCK != 0 && o.RcvBuf != 0 {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_RCVBUF, int(o.RcvBuf / 2), "SO_RCVBUF"})
	}
	for _, f := range []struct {
		on   bool
		opt  int
		name string
	}{{o.Broadcast, unix.SO_BROADCAST, "SO_BROADCAST"}, {o.KeepAlive, unix.SO_KEEPALIVE, "SO_KEEPALIVE"},
		{o.OOBInline, unix.SO_OOBINLINE, "SO_OOBINLINE"}, {o.DontRoute, unix.SO_DONTROUTE, "SO_DONTROUTE"}} {
		if f.on {
			ss = append(ss, setting{unix.SOL_SOCKET, f.opt, 1, f.name})
		}
	}
	if o.Priority != 0 {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_PRIORITY, int(o.Priority), "SO_PRIORITY"})
	}
	if o.RcvLowat > 1 {
		ss = append(ss, setting{unix.SOL_SOCKET, unix.SO_RCVLOWAT, int(o.RcvLowat), "SO_RCVLOWAT"})
	}
	if !udp {
		for _, k := range []struct {
			v    uint32
			opt  int
			name string
		}{{o.KeepCnt, unix.TCP_KEEPCNT, "TCP_KEEPCNT"}, {o.KeepIdle, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE"},
			{o.KeepIntvl, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL"}} {
			if k.v != 0 {
				ss = append(ss, setting{unix.IPPROTO_TCP, k.opt, int(k.v), k.name})
			}
		}
	}
	for _, st := range ss {
		if err := unix.SetsockoptInt(fd, st.level, st.opt, st.v); err != nil {
			return fmt.Errorf("setsockopt %s %d: %w", st.name, st.v, err)
		}
	}
	if o.Linger != nil {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(*o.Linger)}); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER %d: %w", *o.Linger, err)
		}
	}
	return nil
}

// sockaddr is a as the socket calls take it.
func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}
