package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sock_diag netlink interface for unix sockets
// (include/uapi/linux/unix_diag.h): what no /proc file says of a unix
// socket, its peer above all.

// unixDiagReq is struct unix_diag_req.
type unixDiagReq struct {
	Family   uint8
	Protocol uint8
	Pad      uint16
	States   uint32
	Ino      uint32
	Show     uint32
	Cookie   [2]uint32
}

// unixDiagMsg is struct unix_diag_msg.
type unixDiagMsg struct {
	Family uint8
	Type   uint8
	State  uint8
	Pad    uint8
	Ino    uint32
	Cookie [2]uint32
}

const (
	udiagShowName     = 0x01
	udiagShowPeer     = 0x04
	udiagShowRQLen    = 0x10
	unixDiagName      = 0
	unixDiagPeer      = 2
	unixDiagRQLen     = 4
	unixDiagShutdown  = 6
	sizeofUnixDiagReq = 24
	sizeofUnixDiagMsg = 16
)

// UnixSocket is what sock_diag says of one unix socket.
type UnixSocket struct {
	Ino   uint32
	Type  int   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	State uint8 // TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE...
	Peer  uint32
	// Named: bound to a path or an abstract name (Name: sun_path as
	// bound, an abstract one starting with a NUL byte).
	Named bool
	Name  []byte
	// RQueue: the bytes waiting to be read (stream, seqpacket), the
	// length of the first datagram, or a listener's connections waiting to
	// be accepted; WQueue: the bytes sent and not yet read by the peer, or
	// a listener's backlog.
	RQueue, WQueue uint32
	// Shutdown: the kernel's sk_shutdown (1 receiving, 2 sending).
	Shutdown uint8
}

// UnixSockets asks sock_diag about each unix socket of the inodes in want
// (of the caller's network namespace), one exact lookup each, and returns
// those it knows, by inode: an inode it does not know is no unix socket
// (or gone).
func UnixSockets(want map[uint32]bool) (map[uint32]UnixSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket(NETLINK_SOCK_DIAG)", err)
	}
	defer unix.Close(fd)
	out := map[uint32]UnixSocket{}
	req := make([]byte, unix.SizeofNlMsghdr+sizeofUnixDiagReq)
	buf := make([]byte, 8<<10)
	seq := uint32(0)
	for ino, ok := range want {
		if !ok {
			continue
		}
		seq++
		*(*unix.NlMsghdr)(unsafe.Pointer(&req[0])) = unix.NlMsghdr{Len: uint32(len(req)), Type: unix.SOCK_DIAG_BY_FAMILY,
			Flags: unix.NLM_F_REQUEST, Seq: seq}
		// The cookie ~0 asks for the socket of that inode, whichever.
		*(*unixDiagReq)(unsafe.Pointer(&req[unix.SizeofNlMsghdr])) = unixDiagReq{Family: unix.AF_UNIX, States: ^uint32(0),
			Ino: ino, Show: udiagShowName | udiagShowPeer | udiagShowRQLen, Cookie: [2]uint32{^uint32(0), ^uint32(0)}}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, os.NewSyscallError("sendto(sock_diag)", err)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, os.NewSyscallError("recvfrom(sock_diag)", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) >= 4 {
					if e := unix.Errno(-int32(binary.NativeEndian.Uint32(m.Data))); e != 0 && e != unix.ENOENT {
						return nil, fmt.Errorf("sock_diag of socket:[%d]: %w", ino, e)
					}
				}
				continue // not a unix socket
			}
			if s, ok := parseUnixDiag(m.Data); ok && s.Ino == ino {
				out[ino] = s
			}
		}
	}
	return out, nil
}

// parseUnixDiag reads a unix_diag_msg and its attributes.
func parseUnixDiag(b []byte) (UnixSocket, bool) {
	if len(b) < sizeofUnixDiagMsg {
		return UnixSocket{}, false
	}
	m := *(*unixDiagMsg)(unsafe.Pointer(&b[0]))
	s := UnixSocket{Ino: m.Ino, Type: int(m.Type), State: m.State}
	for a := b[sizeofUnixDiagMsg:]; len(a) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:])
		if l < unix.SizeofRtAttr || l > len(a) {
			break
		}
		v := a[unix.SizeofRtAttr:l]
		switch {
		case typ == unixDiagName:
			// A path ends at its NUL (the kernel keeps the terminator);
			// an abstract name is every byte.
			if i := bytes.IndexByte(v, 0); i > 0 {
				v = v[:i]
			}
			s.Named, s.Name = true, append([]byte{}, v...)
		case typ == unixDiagPeer && len(v) >= 4:
			s.Peer = binary.NativeEndian.Uint32(v)
		case typ == unixDiagRQLen && len(v) >= 8:
			s.RQueue, s.WQueue = binary.NativeEndian.Uint32(v), binary.NativeEndian.Uint32(v[4:])
		case typ == unixDiagShutdown && len(v) >= 1:
			s.Shutdown = v[0]
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return s, true
}
