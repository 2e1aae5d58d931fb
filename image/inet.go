package image

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// TCP listeners and UDP sockets are written as CRIU writes inet sockets: a
// file_entry of type INETSK per socket in files.img, its inet_sk_entry
// holding family, type, protocol, state (TCP_LISTEN; a UDP socket's is
// TCP_ESTABLISHED when connected, else TCP_CLOSE), the port and address
// bound, the peer of a connected UDP socket, the backlog and the socket
// options restore sets again; the fds that share the socket (a dup, or
// inherited by fork) name that one entry.

const (
	fdTypeInetSk = 4 // fd_types INETSK
)

// InetSocket is a TCP socket listening on an IPv4 or IPv6 address, or a
// UDP socket, held by one or more fds of the tree (one open file
// description). Restore makes it in mmcr (socket, bind, listen or
// connect) and the fds take it. Nothing waits in it at dump: dump refuses
// a listener with connections not accepted (their clients would see a
// reset) and a UDP socket with datagrams not read.
type InetSocket struct {
	ID   uint32 // dense: InetSockets[i].ID == i+1, in order of first use
	Ino  uint32 // its inode at dump, socket:[Ino]
	UDP  bool   // a UDP socket; else a TCP listener
	Addr netip.AddrPort
	// Peer is what a connected UDP socket is connected to; not valid
	// for another.
	Peer    netip.AddrPort
	Backlog uint32 // a listener's, listen(2)'s as the kernel keeps it
	// The options of SOL_SOCKET and IPPROTO_IPV6 restore sets before bind.
	ReuseAddr, ReusePort bool
	V6Only               bool // an IPv6 socket that takes no IPv4 connections
	Opts                 InetOpts
}

// InetOpts are the socket options of an InetSocket restore sets again,
// as CRIU's sk_opts_entry has them. A listener's pass to the connections
// it accepts.
type InetOpts struct {
	// SndBuf and RcvBuf are SO_SNDBUF and SO_RCVBUF as getsockopt says
	// them (twice what setsockopt was given); BufLock (SO_BUF_LOCK) says
	// which were set (unix.SOCK_SNDBUF_LOCK, SOCK_RCVBUF_LOCK): only those
	// are set again, the others are the kernel's to tune.
	SndBuf, RcvBuf, BufLock uint32
	Broadcast, KeepAlive    bool // SO_BROADCAST, SO_KEEPALIVE
	OOBInline, DontRoute    bool // SO_OOBINLINE, SO_DONTROUTE
	Priority, RcvLowat      uint32
	// Linger is SO_LINGER's time in seconds when it is on.
	Linger *uint32
	// KeepCnt, KeepIdle and KeepIntvl are a TCP socket's TCP_KEEPCNT,
	// TCP_KEEPIDLE and TCP_KEEPINTVL (0 for UDP).
	KeepCnt, KeepIdle, KeepIntvl uint32
}

// Family is the socket's address family, AF_INET or AF_INET6.
func (s *InetSocket) Family() int {
	if s.Addr.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// InetByID returns the socket with the given ID, or nil.
func (t *Tree) InetByID(id uint32) *InetSocket {
	if id == 0 || int(id) > len(t.InetSockets) {
		return nil
	}
	return t.InetSockets[id-1]
}

// checkInetSockets checks the tree's TCP listeners and its fds on them:
// dense ids in order of first use, distinct inodes, an address of its
// family, each held by some fd, all fds of one socket on one open file
// description.
func checkInetSockets(t *Tree) error {
	inos := map[uint32]bool{}
	for i, s := range t.InetSockets {
		if s == nil || s.ID != uint32(i+1) || inos[s.Ino] || !validInetAddr(s.Addr) || s.V6Only && s.Addr.Addr().Is4() ||
			!s.UDP && (s.Addr.Port() == 0 || s.Peer.IsValid()) ||
			s.UDP && (s.Backlog != 0 || s.Peer.IsValid() && (!validInetAddr(s.Peer) || s.Peer.Port() == 0 ||
				s.Peer.Addr().Is4() != s.Addr.Addr().Is4())) ||
			s.Opts.BufLock&^(unix.SOCK_SNDBUF_LOCK|unix.SOCK_RCVBUF_LOCK) != 0 ||
			s.UDP && (s.Opts.KeepCnt != 0 || s.Opts.KeepIdle != 0 || s.Opts.KeepIntvl != 0) {
			return fmt.Errorf("inet socket %d of %d: %+v", i+1, len(t.InetSockets), s)
		}
		inos[s.Ino] = true
	}
	next := uint32(1)
	open := map[uint32]uint32{} // socket: OpenID
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if (fd.Kind == FDInet) != (fd.InetID != 0) {
				return fmt.Errorf("task %d: fd %d: inet socket %d on a %s fd", task.PID, fd.Num, fd.InetID, fd.Kind)
			}
			if fd.Kind != FDInet {
				continue
			}
			switch {
			case fd.InetID == next:
				next++
				open[fd.InetID] = fd.OpenID
			case fd.InetID > next:
				return fmt.Errorf("task %d: fd %d: inet socket %d out of order", task.PID, fd.Num, fd.InetID)
			case open[fd.InetID] == 0 || open[fd.InetID] != fd.OpenID:
				return fmt.Errorf("task %d: fd %d: inet socket %d held through another open file", task.PID, fd.Num, fd.InetID)
			}
		}
	}
	if next != uint32(len(t.InetSockets)+1) {
		return fmt.Errorf("%d inet sockets, %d held by fds", len(t.InetSockets), next-1)
	}
	return nil
}

// validInetAddr reports an IPv4 or IPv6 address without a zone (an IPv6
// socket's IPv4-mapped address, ::ffff:a.b.c.d, is IPv6 here as there).
func validInetAddr(a netip.AddrPort) bool {
	return a.IsValid() && a.Addr().Zone() == ""
}

// inetSkFileEntry: file_entry {type INETSK, inet_sk_entry}. Addresses are
// 32-bit words in network order (one for IPv4, four for IPv6), as CRIU
// has them.
func inetSkFileEntry(id, flags uint32, s *InetSocket, own *FDOwner) []byte {
	addr := s.Addr.Addr().AsSlice()
	dst := make([]byte, len(addr)) // none but a connected UDP socket's
	if s.Peer.IsValid() {
		dst = s.Peer.Addr().AsSlice()
	}
	typ, proto, state := uint32(unix.SOCK_STREAM), uint32(unix.IPPROTO_TCP), uint32(tcpListen)
	if s.UDP {
		typ, proto, state = unix.SOCK_DGRAM, unix.IPPROTO_UDP, tcpClose
		if s.Peer.IsValid() {
			state = tcpEstablish
		}
	}
	var e protoEnc
	e.int32(1, fdTypeInetSk)
	e.uint32(2, id)
	e.message(4, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, s.Ino)
		e.uint32(3, uint32(s.Family()))
		e.uint32(4, typ)
		e.uint32(5, proto)
		e.uint32(6, state)
		e.uint32(7, uint32(s.Addr.Port()))
		e.uint32(8, uint32(s.Peer.Port()))
		e.uint32(9, flags)
		e.uint32(10, s.Backlog)
		for i := 0; i < len(addr); i += 4 {
			e.uint32(11, binary.LittleEndian.Uint32(addr[i:])) // the bytes as they are in memory
		}
		for i := 0; i < len(dst); i += 4 {
			e.uint32(12, binary.LittleEndian.Uint32(dst[i:]))
		}
		e.message(13, fownOf(own))
		o := &s.Opts
		e.message(14, func(e *protoEnc) {
			e.uint32(1, o.SndBuf)
			e.uint32(2, o.RcvBuf)
			for num := protowire.Number(3); num <= 6; num++ {
				e.uint64(num, 0) // no send or receive timeout
			}
			e.bool(7, s.ReuseAddr)
			e.uint32(8, o.Priority)
			e.uint32(9, o.RcvLowat)
			e.bool(13, o.DontRoute)
			e.bool(17, s.ReusePort)
			e.bool(18, o.Broadcast)
			e.bool(19, o.KeepAlive)
			if !s.UDP {
				e.uint32(20, o.KeepCnt)
				e.uint32(21, o.KeepIdle)
				e.uint32(22, o.KeepIntvl)
			}
			e.bool(23, o.OOBInline)
			if o.Linger != nil {
				e.uint32(24, *o.Linger)
			}
			e.uint32(25, o.BufLock)
		})
		if s.Family() == unix.AF_INET6 {
			e.bool(15, s.V6Only)
		}
	})
	return e.b
}

// inetSkMsg: inet_sk_entry, what mmcr reads of it.
type inetSkMsg struct {
	ino, family, typ, proto, state, port, dstPort, flags, backlog uint32
	addr, dst                                                     []uint32
	reuseAddr, reusePort, v6only                                  bool
	opts                                                          InetOpts
}

func (m *inetSkMsg) decode(b []byte) error {
	d := protoDec{msg: "inet_sk_entry", b: b}
	var opts []byte
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 2:
			d.uint32(&m.ino)
		case 3:
			d.uint32(&m.family)
		case 4:
			d.uint32(&m.typ)
		case 5:
			d.uint32(&m.proto)
		case 6:
			d.uint32(&m.state)
		case 7:
			d.uint32(&m.port)
		case 8:
			d.uint32(&m.dstPort)
		case 9:
			d.uint32(&m.flags)
		case 10:
			d.uint32(&m.backlog)
		case 11:
			d.uint32s(&m.addr)
		case 12:
			d.uint32s(&m.dst)
		case 13:
			d.note(protowire.BytesType) // fown: required, not read
		case 14:
			d.singular(&opts)
		case 15:
			d.bool(&m.v6only)
		}
	}
	d.sub("opts", opts, func(b []byte) error {
		o := protoDec{msg: "sk_opts_entry", b: b}
		op := &m.opts
		for o.next() {
			switch o.num {
			case 1:
				o.uint32(&op.SndBuf)
			case 2:
				o.uint32(&op.RcvBuf)
			case 3, 4, 5, 6:
				o.note(protowire.VarintType) // timeouts: required, not kept
			case 7:
				o.bool(&m.reuseAddr)
			case 8:
				o.uint32(&op.Priority)
			case 9:
				o.uint32(&op.RcvLowat)
			case 13:
				o.bool(&op.DontRoute)
			case 17:
				o.bool(&m.reusePort)
			case 18:
				o.bool(&op.Broadcast)
			case 19:
				o.bool(&op.KeepAlive)
			case 20:
				o.uint32(&op.KeepCnt)
			case 21:
				o.uint32(&op.KeepIdle)
			case 22:
				o.uint32(&op.KeepIntvl)
			case 23:
				o.bool(&op.OOBInline)
			case 24:
				op.Linger = new(uint32)
				o.uint32(op.Linger)
			case 25:
				o.uint32(&op.BufLock)
			}
		}
		return o.end("so_sndbuf so_rcvbuf so_snd_tmo_sec so_snd_tmo_usec so_rcv_tmo_sec so_rcv_tmo_usec")
	})
	if err := d.end("id ino family type proto state src_port dst_port flags backlog - - fown opts"); err != nil {
		return err
	}
	tcp := m.typ == unix.SOCK_STREAM && m.proto == unix.IPPROTO_TCP && m.state == tcpListen && m.dstPort == 0
	udp := m.typ == unix.SOCK_DGRAM && m.proto == unix.IPPROTO_UDP && (m.state == tcpEstablish) == (m.dstPort != 0) &&
		(m.state == tcpEstablish || m.state == tcpClose)
	if !tcp && !udp {
		return fmt.Errorf("inet_sk_entry: socket:[%d] of type %d, protocol %d, state %d, peer port %d: only TCP listeners and UDP sockets are restored",
			m.ino, m.typ, m.proto, m.state, m.dstPort)
	}
	return nil
}

// socket makes the InetSocket m describes.
func (m *inetSkMsg) socket() (*InetSocket, error) {
	addrOf := func(words []uint32, port uint32) (netip.AddrPort, bool) {
		var raw []byte
		for _, w := range words {
			raw = binary.LittleEndian.AppendUint32(raw, w)
		}
		a, ok := netip.AddrFromSlice(raw)
		ok = ok && port <= 0xffff && (m.family == unix.AF_INET && a.Is4() || m.family == unix.AF_INET6 && a.Is6())
		return netip.AddrPortFrom(a, uint16(port)), ok
	}
	addr, ok := addrOf(m.addr, m.port)
	peer, pok := addrOf(m.dst, m.dstPort)
	if !ok || !pok {
		return nil, fmt.Errorf("socket:[%d]: family %d, addresses of %d and %d words, ports %d and %d",
			m.ino, m.family, len(m.addr), len(m.dst), m.port, m.dstPort)
	}
	s := &InetSocket{Ino: m.ino, UDP: m.typ == unix.SOCK_DGRAM, Addr: addr, Backlog: m.backlog,
		ReuseAddr: m.reuseAddr, ReusePort: m.reusePort, V6Only: m.v6only, Opts: m.opts}
	if m.dstPort != 0 {
		s.Peer = peer
	}
	return s, nil
}

// readInetSockets turns the inodes fdFromEntry left in FDInet fds'
// InetID into the tree's InetSockets.
func readInetSockets(t *Tree, byID map[uint32]*fileMsg) error {
	byIno := map[uint32]*InetSocket{}
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDInet {
				continue
			}
			s := byIno[fd.InetID]
			if s == nil {
				var err error
				if s, err = byID[fd.OpenID].isk.socket(); err != nil { // fdFromEntry left the file entry id there
					return fileErr(filesName, ErrCorrupt, "%v", err)
				}
				s.ID = uint32(len(t.InetSockets) + 1)
				t.InetSockets = append(t.InetSockets, s)
				byIno[s.Ino] = s
			}
			fd.InetID = s.ID
		}
	}
	return nil
}
