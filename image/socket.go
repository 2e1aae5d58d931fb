package image

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// Unix socket pairs are written as CRIU writes unix sockets: a file_entry
// of type UNIXSK per socket in files.img (a socket has one open file
// description: sockets are never opened again), its peer named by inode,
// and what waits in each socket's receive queue in sk-queues.img, a
// sk_packet_entry per message (for a stream socket, per run of bytes)
// followed by its bytes, naming the receiving socket's file entry.

const (
	skQueuesName  = "sk-queues.img"
	fdTypeUnixSk  = 5  // fd_types UNIXSK
	tcpEstablish  = 1  // the state of a connected unix socket (and of one whose peer closed)
	tcpClose      = 7  // that of one never connected
	tcpListen     = 10 // that of a listening one
	maxSocketData = 1 << 30
)

// UnixSocket is a unix socket held by the tree: one end of a connected
// unnamed pair (a socketpair) whose other end the tree holds too, or
// closed; a socket never connected; or a socket bound to a name, listening
// or not, with nothing waiting at it.
type UnixSocket struct {
	ID    uint32 // dense: Sockets[i].ID == i+1
	Ino   uint32 // its inode at dump, socket:[Ino]
	Type  int    // unix.SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET
	State uint8  // the kernel's sk_state: established (connected, its peer maybe closed), or closed (never connected)
	// Peer is the ID of the other end; 0 when it was closed (State
	// established) or there is none (closed).
	Peer uint32
	// Shutdown is what is shut down at this end: bit 1 receiving, bit 2
	// sending (the kernel's RCV_SHUTDOWN, SEND_SHUTDOWN; CRIU's
	// sk_shutdown READ, WRITE).
	Shutdown uint8
	// SndBuf and RcvBuf are SO_SNDBUF and SO_RCVBUF as getsockopt says
	// them (twice what setsockopt was given).
	SndBuf, RcvBuf uint32
	// Queue is what waits to be read at this end, sent by the peer: each
	// message (datagram, seqpacket), or the bytes of a stream in runs.
	Queue [][]byte
	// Name is what a socket not connected is bound to: sun_path, a file
	// system path or an abstract name (a NUL byte first); Backlog a
	// listener's (listen(2)). A path's socket file had Perms.
	Name    []byte
	Backlog uint32
	Perms   *SocketPerms
}

// SocketPerms are the mode and owner of a bound socket's file.
type SocketPerms struct{ Mode, UID, GID uint32 }

// SocketByID returns the socket with the given ID, or nil.
func (t *Tree) SocketByID(id uint32) *UnixSocket {
	if id == 0 || int(id) > len(t.Sockets) {
		return nil
	}
	return t.Sockets[id-1]
}

// checkSockets checks the tree's sockets and its fds on them: dense ids
// in order of first use (tasks in tree order, fds in order), distinct
// inodes, known types, peers that name each other, every socket held by
// some fd, each fd of one socket on one open file description.
func checkSockets(t *Tree) error {
	inos := map[uint32]bool{}
	for i, s := range t.Sockets {
		if s == nil || s.ID != uint32(i+1) {
			return fmt.Errorf("socket %d: missing or misnumbered", i+1)
		}
		if inos[s.Ino] {
			return fmt.Errorf("socket %d: inode %d twice", s.ID, s.Ino)
		}
		inos[s.Ino] = true
		if p := t.SocketByID(s.Peer); s.Peer != 0 && (p == nil || p == s || p.Peer != s.ID || p.Type != s.Type || s.State != tcpEstablish) {
			return fmt.Errorf("socket %d: peer %d does not name it back", s.ID, s.Peer)
		}
		if s.State != tcpEstablish && len(s.Queue) > 0 {
			return fmt.Errorf("socket %d: not connected, %d messages queued", s.ID, len(s.Queue))
		}
		if s.State == tcpListen && len(s.Name) == 0 || len(s.Name) != 0 && (s.Peer != 0 || s.State == tcpEstablish) ||
			s.Backlog != 0 && s.State != tcpListen || len(s.Name) > 108 || len(s.Name) == 0 && s.Perms != nil ||
			len(s.Name) != 0 && s.Name[0] != 0 && s.Name[0] != '/' {
			return fmt.Errorf("socket %d: state %d with name %q, backlog %d", s.ID, s.State, s.Name, s.Backlog)
		}
		if s.Type != unix.SOCK_STREAM && s.Type != unix.SOCK_DGRAM && s.Type != unix.SOCK_SEQPACKET ||
			s.State != tcpEstablish && s.State != tcpClose && s.State != tcpListen || s.Shutdown > 3 {
			return fmt.Errorf("socket %d: type %d, state %d, shutdown %d", s.ID, s.Type, s.State, s.Shutdown)
		}
		total := 0
		for _, m := range s.Queue {
			total += len(m)
			if len(m) == 0 && s.Type == unix.SOCK_STREAM {
				return fmt.Errorf("socket %d: an empty run of stream bytes", s.ID)
			}
		}
		if total > maxSocketData {
			return fmt.Errorf("socket %d: %d bytes queued", s.ID, total)
		}
	}
	open := make([]uint32, len(t.Sockets)) // each socket's OpenID
	used := uint32(0)                      // sockets met so far: they are numbered in order of first use
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDSocket {
				if fd.SocketID != 0 {
					return fmt.Errorf("task %d: fd %d: socket %d on a %s fd", task.PID, fd.Num, fd.SocketID, fd.Kind)
				}
				continue
			}
			if t.SocketByID(fd.SocketID) == nil || fd.FileID != 0 || fd.OpenID == 0 || fd.SocketID > used+1 {
				return fmt.Errorf("task %d: fd %d refers to unknown or unnumbered socket %d (open file %d)", task.PID, fd.Num, fd.SocketID, fd.OpenID)
			}
			used = max(used, fd.SocketID)
			if o := &open[fd.SocketID-1]; *o == 0 {
				*o = fd.OpenID
			} else if *o != fd.OpenID {
				return fmt.Errorf("task %d: fd %d: socket %d in two open files", task.PID, fd.Num, fd.SocketID)
			}
		}
	}
	for i, o := range open {
		if o == 0 {
			return fmt.Errorf("socket %d is held by no fd", i+1)
		}
	}
	return nil
}

// unixSkFileEntry: file_entry {type UNIXSK, unix_sk_entry} of socket s,
// its open file description's flags (O_NONBLOCK...) and its peer's inode.
func unixSkFileEntry(id, flags uint32, s *UnixSocket, peerIno uint32, own *FDOwner) []byte {
	var e protoEnc
	e.int32(1, fdTypeUnixSk)
	e.uint32(2, id)
	e.message(16, func(e *protoEnc) {
		e.uint32(1, id)
		e.uint32(2, s.Ino)
		e.uint32(3, uint32(s.Type))
		e.uint32(4, uint32(s.State))
		e.uint32(5, flags)
		e.uint32(6, 0) // uflags
		e.uint32(7, s.Backlog)
		e.uint32(8, peerIno)
		e.message(9, fownOf(own))
		e.message(10, func(e *protoEnc) {
			e.uint32(1, s.SndBuf)
			e.uint32(2, s.RcvBuf)
			for num := protowire.Number(3); num <= 6; num++ {
				e.uint64(num, 0) // no send or receive timeout
			}
		})
		e.bytes(11, s.Name)
		if s.Shutdown != 0 {
			e.int32(12, int32(s.Shutdown))
		}
		if p := s.Perms; p != nil {
			e.message(13, func(e *protoEnc) {
				e.uint32(1, p.Mode)
				e.uint32(2, p.UID)
				e.uint32(3, p.GID)
			})
		}
	})
	return e.b
}

// writeSkQueues writes sk-queues.img: each message queued at each socket,
// a sk_packet_entry naming the socket's file entry (fileOf) and then its
// bytes.
func (w *Writer) writeSkQueues(sockets []*UnixSocket, fileOf map[uint32]uint32) error {
	var buf bytes.Buffer
	enc := newImgEncoder(&buf, "SK_QUEUES")
	for _, s := range sockets {
		for _, m := range s.Queue {
			var e protoEnc
			e.uint32(1, fileOf[s.ID])
			e.uint32(2, uint32(len(m)))
			if err := enc.put(e.b); err != nil {
				return fmt.Errorf("image: encode %s: %w", skQueuesName, err)
			}
			buf.Write(m)
		}
	}
	return w.writeWhole(skQueuesName, buf.Bytes())
}

// unixSkMsg: unix_sk_entry, what mmcr writes of it.
type unixSkMsg struct {
	ino, typ, state, flags, peer uint32
	backlog                      uint32
	sndbuf, rcvbuf               uint32
	name                         []byte
	shutdown                     int32
	perms                        *SocketPerms
}

func (m *unixSkMsg) decode(b []byte) error {
	d := protoDec{msg: "unix_sk_entry", b: b}
	var opts, perms []byte
	for d.next() {
		switch d.num {
		case 1, 6:
			d.note(protowire.VarintType) // id, uflags: required, not read
		case 7:
			d.uint32(&m.backlog)
		case 13:
			d.singular(&perms)
		case 2:
			d.uint32(&m.ino)
		case 3:
			d.uint32(&m.typ)
		case 4:
			d.uint32(&m.state)
		case 5:
			d.uint32(&m.flags)
		case 8:
			d.uint32(&m.peer)
		case 9:
			d.note(protowire.BytesType) // fown: required, not read
		case 10:
			d.singular(&opts)
		case 11:
			d.bytes(&m.name)
		case 12:
			d.enum(&m.shutdown, func(v int32) bool { return v >= 0 && v <= 3 })
		}
	}
	d.sub("opts", opts, func(b []byte) error {
		o := protoDec{msg: "sk_opts_entry", b: b}
		for o.next() {
			switch o.num {
			case 1:
				o.uint32(&m.sndbuf)
			case 2:
				o.uint32(&m.rcvbuf)
			case 3, 4, 5, 6:
				o.note(protowire.VarintType) // timeouts: required, not kept
			}
		}
		return o.end("so_sndbuf so_rcvbuf so_snd_tmo_sec so_snd_tmo_usec so_rcv_tmo_sec so_rcv_tmo_usec")
	})
	d.sub("file_perms", perms, func(b []byte) error {
		m.perms = &SocketPerms{}
		o := protoDec{msg: "file_perms_entry", b: b}
		for o.next() {
			switch o.num {
			case 1:
				o.uint32(&m.perms.Mode)
			case 2:
				o.uint32(&m.perms.UID)
			case 3:
				o.uint32(&m.perms.GID)
			}
		}
		return o.end("mode uid gid")
	})
	return d.end("id ino type state flags uflags backlog peer fown opts name")
}

// skPacketMsg: sk_packet_entry.
type skPacketMsg struct{ idFor, length uint32 }

func (m *skPacketMsg) decode(b []byte) error {
	d := protoDec{msg: "sk_packet_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.idFor)
		case 2:
			d.uint32(&m.length)
		case 4:
			return fmt.Errorf("sk_packet_entry: control messages (scm) are not supported")
		}
	}
	return d.end("id_for length")
}

// readSockets makes t.Sockets of the unix socket file entries the tree's
// fds name, in order of first use, from fileMsgs by file entry id, and
// their queues from sk-queues.img; it turns the inode fdFromEntry left in
// each socket fd's SocketID into the socket's ID.
func (r *Reader) readSockets(t *Tree, byID map[uint32]*fileMsg) error {
	byIno := map[uint32]*UnixSocket{}
	peerIno := map[*UnixSocket]uint32{}
	fileSock := map[uint32]*UnixSocket{} // file entry id: socket
	for _, task := range t.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind != FDSocket {
				continue
			}
			s := byIno[fd.SocketID]
			if s == nil {
				fe := byID[fd.OpenID] // fdFromEntry left the file entry id there
				m := fe.usk
				s = &UnixSocket{ID: uint32(len(t.Sockets) + 1), Ino: m.ino, Type: int(m.typ), State: uint8(m.state),
					Shutdown: uint8(m.shutdown), SndBuf: m.sndbuf, RcvBuf: m.rcvbuf, Backlog: m.backlog, Perms: m.perms}
				if len(m.name) != 0 {
					s.Name = m.name
				}
				if uint32(s.State) != m.state {
					return fileErr(filesName, ErrCorrupt, "socket:[%d]: state %d", m.ino, m.state)
				}
				t.Sockets = append(t.Sockets, s)
				byIno[m.ino], peerIno[s] = s, m.peer
				fileSock[fd.OpenID] = s
			}
			fd.SocketID = s.ID
		}
	}
	for _, s := range t.Sockets {
		if peerIno[s] == 0 {
			continue // closed, or never connected
		}
		p := byIno[peerIno[s]]
		if p == nil {
			return fileErr(filesName, ErrCorrupt, "socket:[%d]: peer socket:[%d] is not the tree's", s.Ino, peerIno[s])
		}
		s.Peer = p.ID
	}
	if !r.has(skQueuesName) {
		return nil
	}
	data, err := r.readMeta(skQueuesName)
	if err != nil {
		return err
	}
	d, err := newImgDecoder(skQueuesName, data, "SK_QUEUES")
	if err != nil {
		return err
	}
	for {
		var m skPacketMsg
		ok, err := d.next(m.decode)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		raw, ok := d.raw(int(m.length))
		if !ok {
			return fileErr(skQueuesName, ErrCorrupt, "packet for file %d: %d bytes overrun the file", m.idFor, m.length)
		}
		s := fileSock[m.idFor]
		if s == nil {
			return fileErr(skQueuesName, ErrCorrupt, "packet for file %d, not a socket of the tree", m.idFor)
		}
		s.Queue = append(s.Queue, raw)
	}
}
