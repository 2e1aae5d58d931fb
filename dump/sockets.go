package dump

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// socketEnd is a socket descriptor met while collecting fds; what it
// becomes is decided once every task's fds are known (resolveSockets).
type socketEnd struct {
	openEnd
	ino uint64
}

// maxSocketMessage bounds a message mmcr peeks at in a socket's queue.
const maxSocketMessage = 4 << 20

// resolveSockets decides what each socket descriptor of the tree is. A
// unix socket is the tree's when it is one end of a connection whose
// other end the tree holds too (a socketpair between its tasks, or a
// stream or seqpacket connection accepted from a listener) or has closed,
// was never connected, or is bound to a name (a path or an abstract one),
// listening or not, with nothing waiting at it: it is dumped, with what
// waits to be read at it, its shutdown state, buffer sizes, name (not a
// connected one's), backlog and socket file's mode and owner; its fds
// share its one open file description. Any other socket (a network one,
// a bound datagram socket connected to another, one whose peer is
// outside the tree) is not
// the tree's: as fd 0-2 it is the task's stdio, for which restore hands its
// own (external); as another fd it is refused, saying why.
func (d *dumper) resolveSockets() error {
	if len(d.socketEnds) == 0 {
		return nil
	}
	held := map[uint32]bool{}
	for _, e := range d.socketEnds {
		held[uint32(e.ino)] = true
	}
	diag, err := kernel.UnixSockets(held)
	if err != nil {
		return fmt.Errorf("list unix sockets: %w", err)
	}
	notOurs := func(ino uint32) string {
		s, ok := diag[ino]
		switch {
		case !ok:
			return "that is not a unix socket"
		case s.Named && s.State == stateListen && s.RQueue != 0:
			return fmt.Sprintf("listening on %q with %d connections not accepted", s.Name, s.RQueue)
		case s.Named && s.State != stateListen && s.State != stateClose && s.Type == unix.SOCK_DGRAM:
			return fmt.Sprintf("bound to %q and connected", s.Name)
		case s.Named && s.Name[0] != 0 && s.Name[0] != '/':
			return fmt.Sprintf("bound to a relative path (%q)", s.Name)
		case s.Peer == 0 && s.State != stateEstablished && s.State != stateClose && s.State != stateListen:
			return fmt.Sprintf("in state %d", s.State)
		case s.Peer != 0 && !held[s.Peer]:
			return fmt.Sprintf("whose peer socket:[%d] is not the tree's", s.Peer)
		}
		return ""
	}
	sockets := map[uint32]*image.UnixSocket{}
	inets := map[uint32]*image.InetSocket{}
	firsts := map[uint64][]openEnd{}
	for _, e := range d.socketEnds {
		ino := uint32(e.ino)
		if _, isUnix := diag[ino]; !isUnix {
			s := inets[ino]
			if s == nil {
				var why string
				if s, why, err = readInetSocket(e); err != nil {
					return taskErr(e.pid, "dump fds", err)
				}
				if why != "" {
					if e.fd.Num <= 2 {
						e.fd.Kind, e.fd.ExternalType = image.FDExternal, "socket"
						continue
					}
					return taskErr(e.pid, "dump fds", fmt.Errorf("fd %d is a socket (%s) %s: %w", e.fd.Num, e.target, why, ErrUnsupported))
				}
				s.ID = uint32(len(d.tree.InetSockets) + 1)
				d.tree.InetSockets = append(d.tree.InetSockets, s)
				inets[ino] = s
			}
			e.fd.Kind, e.fd.InetID = image.FDInet, s.ID
			if err := d.joinOpen(firsts, e.ino, e.openEnd); err != nil {
				return err
			}
			continue
		}
		if why := notOurs(ino); why != "" {
			if e.fd.Num <= 2 {
				e.fd.Kind, e.fd.ExternalType = image.FDExternal, "socket"
				continue
			}
			return taskErr(e.pid, "dump fds", fmt.Errorf("fd %d is a socket (%s) %s: %w", e.fd.Num, e.target, why, ErrUnsupported))
		}
		s := sockets[ino]
		if s == nil {
			if s, err = readSocket(e, diag[ino]); err != nil {
				return taskErr(e.pid, "dump fds", err)
			}
			s.ID = uint32(len(d.tree.Sockets) + 1)
			d.tree.Sockets = append(d.tree.Sockets, s)
			sockets[ino] = s
		}
		e.fd.SocketID = s.ID
		if err := d.joinOpen(firsts, e.ino, e.openEnd); err != nil {
			return err
		}
	}
	for _, s := range d.tree.Sockets {
		if p := diag[s.Ino].Peer; p != 0 {
			s.Peer = sockets[p].ID // held, and so the tree's too
		}
	}
	return nil
}

// The unix socket states (the kernel's TCP_* names) of an unnamed socket:
// connected, its peer maybe closed since; never connected.
const (
	stateEstablished = 1
	stateClose       = 7
	stateListen      = 10
)

// readSocket reads one end of a unix socket pair: mmcr takes a copy of
// the task's fd (pidfd_getfd) and peeks at each message waiting in its
// queue (MSG_PEEK from a peek offset, SO_PEEK_OFF, put back as it was),
// so that the task keeps them.
func readSocket(e socketEnd, diag kernel.UnixSocket) (*image.UnixSocket, error) {
	fail := func(what string, err error) (*image.UnixSocket, error) {
		return nil, fmt.Errorf("fd %d is a socket (%s): %s: %w", e.fd.Num, e.target, what, err)
	}
	mine, err := takeFD(e.pid, e.fd.Num)
	if err != nil {
		return fail("take a copy", err)
	}
	defer unix.Close(mine)
	s := &image.UnixSocket{Ino: diag.Ino, Type: diag.Type, State: diag.State, Shutdown: diag.Shutdown}
	for _, o := range []struct {
		opt int
		to  *uint32
	}{{unix.SO_SNDBUF, &s.SndBuf}, {unix.SO_RCVBUF, &s.RcvBuf}} {
		v, err := unix.GetsockoptInt(mine, unix.SOL_SOCKET, o.opt)
		if err != nil {
			return fail("getsockopt", err)
		}
		*o.to = uint32(v)
	}
	if v, err := unix.GetsockoptInt(mine, unix.SOL_SOCKET, unix.SO_PASSCRED); err != nil || v != 0 {
		return fail("SO_PASSCRED", errors.Join(err, fmt.Errorf("credentials passed with its messages are not kept: %w", ErrUnsupported)))
	}
	if diag.State != stateListen {
		if s.Queue, err = peekQueue(mine, s.Type, s.Shutdown&1 != 0); err != nil {
			return fail("peek at its queue", err)
		}
	}
	if !diag.Named || diag.State == stateEstablished {
		// A connection made through a name (accepted from a listener,
		// or made by a socket bound first) comes back as a socket pair
		// (or an end whose peer closed): its ends' names are not kept.
		return s, nil
	}
	// Bound: its name, a listener's backlog, a path's file.
	s.Name = diag.Name
	if diag.State == stateListen {
		s.Backlog = diag.WQueue
	}
	if len(s.Queue) > 0 {
		return fail("bound to "+strconv.Quote(string(s.Name)), fmt.Errorf("%d messages from others wait at it (their senders are not kept): %w", len(s.Queue), ErrUnsupported))
	}
	if s.Name[0] == '/' {
		var st unix.Stat_t
		if err := unix.Lstat(string(s.Name), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return fail("bound to "+string(s.Name), fmt.Errorf("its socket file is gone or replaced (%v): %w", err, ErrUnsupported))
		}
		s.Perms = &image.SocketPerms{Mode: st.Mode, UID: st.Uid, GID: st.Gid}
	}
	return s, nil
}

// takeFD returns mmcr's copy of fd num of task pid (pidfd_getfd).
func takeFD(pid, num int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, num, 0)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_getfd", err)
	}
	return fd, nil
}

// readInetSocket reads what restore needs of a TCP socket listening on an
// IPv4 or IPv6 address, or of a UDP socket, through mmcr's copy of the
// task's fd (pidfd_getfd): the address and port it is bound to, a UDP
// socket's peer, a listener's backlog and the options set before bind.
// why says what else the socket is (not TCP nor UDP, TCP not listening,
// bound to a device, connections or datagrams waiting), for the caller to
// refuse it or take it as stdio.
func readInetSocket(e socketEnd) (s *image.InetSocket, why string, err error) {
	fail := func(what string, err error) (*image.InetSocket, string, error) {
		return nil, "", fmt.Errorf("fd %d is a socket (%s): %s: %w", e.fd.Num, e.target, what, err)
	}
	fd, err := takeFD(e.pid, e.fd.Num)
	if err != nil {
		return fail("take a copy", err)
	}
	defer unix.Close(fd)
	get := func(level, opt int) int {
		v, gerr := unix.GetsockoptInt(fd, level, opt)
		if gerr != nil && err == nil {
			err = gerr
		}
		return v
	}
	family, typ, proto, listening := get(unix.SOL_SOCKET, unix.SO_DOMAIN), get(unix.SOL_SOCKET, unix.SO_TYPE),
		get(unix.SOL_SOCKET, unix.SO_PROTOCOL), get(unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	udp := typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP
	switch {
	case err != nil:
		return fail("getsockopt", err)
	case family != unix.AF_INET && family != unix.AF_INET6:
		return nil, fmt.Sprintf("of family %d, neither a unix nor an IP socket", family), nil
	case !udp && (typ != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP):
		return nil, fmt.Sprintf("of IP protocol %d, type %d: of IP sockets only TCP listeners and UDP sockets are dumped", proto, typ), nil
	case !udp && listening == 0:
		return nil, "that is a TCP socket not listening (a connection, or not yet listening): of TCP sockets only listeners are dumped", nil
	}
	s = &image.InetSocket{Ino: uint32(e.ino), UDP: udp}
	s.ReuseAddr, s.ReusePort = get(unix.SOL_SOCKET, unix.SO_REUSEADDR) != 0, get(unix.SOL_SOCKET, unix.SO_REUSEPORT) != 0
	if family == unix.AF_INET6 {
		s.V6Only = get(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY) != 0
	}
	o := &s.Opts
	o.SndBuf, o.RcvBuf = uint32(get(unix.SOL_SOCKET, unix.SO_SNDBUF)), uint32(get(unix.SOL_SOCKET, unix.SO_RCVBUF))
	o.Broadcast, o.KeepAlive = get(unix.SOL_SOCKET, unix.SO_BROADCAST) != 0, get(unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 0
	o.OOBInline, o.DontRoute = get(unix.SOL_SOCKET, unix.SO_OOBINLINE) != 0, get(unix.SOL_SOCKET, unix.SO_DONTROUTE) != 0
	o.Priority, o.RcvLowat = uint32(get(unix.SOL_SOCKET, unix.SO_PRIORITY)), uint32(get(unix.SOL_SOCKET, unix.SO_RCVLOWAT))
	if !udp {
		o.KeepCnt, o.KeepIdle = uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)), uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE))
		o.KeepIntvl = uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL))
	}
	if err != nil {
		return fail("getsockopt", err)
	}
	// SO_BUF_LOCK (5.14): without it every size counts as set.
	if lock, lerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, kernel.SoBufLock); lerr == nil {
		o.BufLock = uint32(lock)
	} else {
		o.BufLock = unix.SOCK_SNDBUF_LOCK | unix.SOCK_RCVBUF_LOCK
	}
	if l, lerr := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER); lerr != nil {
		return fail("getsockopt SO_LINGER", lerr)
	} else if l.Onoff != 0 {
		o.Linger = new(uint32(l.Linger))
	}
	addrOf := func(sa unix.Sockaddr) (netip.AddrPort, string) {
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), ""
		case *unix.SockaddrInet6:
			if a.ZoneId != 0 {
				return netip.AddrPort{}, fmt.Sprintf("on a link-local address (interface %d)", a.ZoneId)
			}
			return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), ""
		}
		return netip.AddrPort{}, fmt.Sprintf("with an address of type %T", sa)
	}
	kind := "that is a TCP listener"
	if udp {
		kind = "that is a UDP socket"
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	if s.Addr, why = addrOf(sa); why != "" {
		return nil, kind + " " + why, nil
	}
	if dev, _ := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); dev != "" {
		return nil, fmt.Sprintf("%s on %s bound to device %s", kind, s.Addr, dev), nil
	}
	if udp {
		if sa, err := unix.Getpeername(fd); err == nil {
			if s.Peer, why = addrOf(sa); why != "" {
				return nil, kind + " connected " + why, nil
			}
		} else if !errors.Is(err, unix.ENOTCONN) {
			return fail("getpeername", err)
		}
		// A peek that does not say EAGAIN found a datagram (maybe empty).
		var b [1]byte
		if _, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT); !errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Sprintf("that is a UDP socket on %s with datagrams not read (their senders are not kept)", s.Addr), nil
		}
		return s, "", nil
	}
	// For a listener TCP_INFO gives the accept queue: the connections
	// waiting (tcpi_unacked) and the backlog (tcpi_sacked).
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return fail("getsockopt TCP_INFO", err)
	}
	if info.Unacked != 0 {
		return nil, fmt.Sprintf("listening on %s with %d connection(s) not accepted (their clients would be reset)", s.Addr, info.Unacked), nil
	}
	s.Backlog = info.Sacked
	return s, "", nil
}

// peekQueue returns the messages (the stream's bytes, in runs) waiting in
// socket fd's receive queue without taking them. A peek that returns
// nothing ends the queue when the socket is shut down for receiving (it
// then reads as EOF); before, it is an empty datagram.
func peekQueue(fd, typ int, rcvShut bool) ([][]byte, error) {
	old, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, err
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, old)
	buf := make([]byte, maxSocketMessage)
	oob := make([]byte, unix.CmsgSpace(64*4))
	var queue [][]byte
	for {
		n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			return queue, nil
		}
		if err != nil {
			return nil, os.NewSyscallError("recvmsg", err)
		}
		if oobn > 0 || flags&unix.MSG_CTRUNC != 0 {
			closeRights(oob[:oobn])
			return nil, fmt.Errorf("a message carries control data (fds or credentials): %w", ErrUnsupported)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("a message of over %d bytes: %w", maxSocketMessage, ErrUnsupported)
		}
		if n == 0 && (typ == unix.SOCK_STREAM || rcvShut) {
			return queue, nil
		}
		queue = append(queue, append([]byte{}, buf[:n]...))
	}
}

// closeRights closes the fds a peek at an SCM_RIGHTS message gave mmcr.
func closeRights(oob []byte) {
	msgs, _ := unix.ParseSocketControlMessage(oob)
	for _, m := range msgs {
		fds, _ := unix.ParseUnixRights(&m)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}
