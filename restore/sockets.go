package restore

import (
	"fmt"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// makeSockets makes every unix socket pair of the image in mmcr
// (socketpair), with its buffer sizes, what waited to be read at each end
// (sent again from the other end, message by message) and its shutdown
// state, and sets the flags of each socket's open file description: the
// tasks take their fds on them with pidfd_getfd (restoreFDs), and mmcr's
// go with closeOpens.
func (rs *restorer) makeSockets() error {
	if len(rs.tree.Sockets) == 0 {
		return nil
	}
	fds := make([]int, len(rs.tree.Sockets)+1) // mmcr's fd of each socket, by ID
	for _, s := range rs.tree.Sockets {
		if fds[s.ID] != 0 {
			continue // made with its peer
		}
		if s.Peer == 0 {
			fd, err := lonelySocket(s)
			if err != nil {
				return fmt.Errorf("socket:[%d]: %w", s.Ino, err)
			}
			fds[s.ID], rs.openFDs[fd] = fd, true
			continue
		}
		p := rs.tree.SocketByID(s.Peer)
		pair, err := unix.Socketpair(unix.AF_UNIX, s.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("socket:[%d]: socketpair: %w", s.Ino, err)
		}
		fds[s.ID], fds[p.ID] = pair[0], pair[1]
		rs.openFDs[pair[0]], rs.openFDs[pair[1]] = true, true
		for _, end := range []*image.UnixSocket{s, p} {
			if err := setBuffers(fds[end.ID], end); err != nil {
				return fmt.Errorf("socket:[%d]: %w", end.Ino, err)
			}
		}
		for _, end := range []*image.UnixSocket{s, p} {
			if err := requeue(fds[end.Peer], end); err != nil {
				return fmt.Errorf("socket:[%d]: %w", end.Ino, err)
			}
		}
		for _, end := range []*image.UnixSocket{s, p} {
			if err := shutdownAsDumped(fds[end.ID], end.Shutdown); err != nil {
				return fmt.Errorf("socket:[%d]: shutdown %d: %w", end.Ino, end.Shutdown, err)
			}
		}
	}
	for _, t := range rs.tree.Tasks {
		for _, fd := range t.FDs {
			if fd.Kind != image.FDSocket || rs.opens[fd.OpenID] != 0 {
				continue
			}
			mine := fds[fd.SocketID]
			if _, err := unix.FcntlInt(uintptr(mine), unix.F_SETFL, fd.Flags&unix.O_NONBLOCK); err != nil {
				return fmt.Errorf("socket:[%d]: flags of fd %d of task %d: %w", rs.tree.SocketByID(fd.SocketID).Ino, fd.Num, t.PID, err)
			}
			rs.opens[fd.OpenID] = mine
		}
	}
	return nil
}

// lonelySocket makes a socket without a peer: one never connected
// (socket; bound to its name, listening, when it was), or one whose peer
// closed, made as a pair whose other end
// queues what waited to be read and is closed, as the peer was (a stream
// socket then reads EOF after its queue; a datagram one sends to no one).
func lonelySocket(s *image.UnixSocket) (int, error) {
	const established, listen = 1, 10
	if s.State != established {
		fd, err := unix.Socket(unix.AF_UNIX, s.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return 0, err
		}
		err = setBuffers(fd, s)
		if err == nil && len(s.Name) > 0 {
			err = bindAsDumped(fd, s)
		}
		if err == nil && s.State == listen {
			err = unix.Listen(fd, int(s.Backlog))
		}
		if err != nil {
			unix.Close(fd)
			return 0, err
		}
		return fd, nil
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, s.Type|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(pair[1]) // the peer, closed as at dump
	err = setBuffers(pair[0], s)
	if err == nil {
		err = requeue(pair[1], s)
	}
	if err == nil {
		err = shutdownAsDumped(pair[0], s.Shutdown) // the peer's close then shuts a stream down whole, as it did
	}
	if err != nil {
		unix.Close(pair[0])
		return 0, err
	}
	return pair[0], nil
}

// bindAsDumped binds socket fd to the dumped name. A path's socket file
// left by the dumped socket (a socket file, nothing else) is removed
// first, and the new one gets the dumped mode and owner.
func bindAsDumped(fd int, s *image.UnixSocket) error {
	name := string(s.Name)
	if s.Name[0] == 0 {
		name = "@" + name[1:] // x/sys/unix's spelling of an abstract name
	} else {
		var st unix.Stat_t
		if err := unix.Lstat(name, &st); err == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
				return fmt.Errorf("bind %s: a file that is not a socket is there", name)
			}
			if live(name) {
				return fmt.Errorf("bind %s: another socket listens there", name)
			}
			if err := unix.Unlink(name); err != nil {
				return fmt.Errorf("remove the stale socket file %s: %w", name, err)
			}
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		return fmt.Errorf("bind %q: %w", s.Name, err)
	}
	if p := s.Perms; p != nil {
		if err := unix.Chmod(name, p.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
		if err := unix.Lchown(name, int(p.UID), int(p.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
	}
	return nil
}

// live says whether a socket listens (or receives) at path: one that a
// connection reaches is not a stale file to remove.
func live(path string) bool {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_SEQPACKET, unix.SOCK_DGRAM} {
		fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			continue
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		unix.Close(fd)
		if err == nil || err == unix.EAGAIN {
			return true
		}
	}
	return false
}

// setBuffers gives socket fd the dumped SO_SNDBUF and SO_RCVBUF: half of
// what getsockopt said (the kernel doubles what it is given), past the
// system's maximum where mmcr may (the FORCE options, CAP_NET_ADMIN).
func setBuffers(fd int, s *image.UnixSocket) error {
	for _, o := range []struct {
		force, plain int
		v            uint32
	}{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, s.SndBuf}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, s.RcvBuf}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.force, int(o.v/2)) == nil {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.plain, int(o.v/2)); err != nil {
			return fmt.Errorf("buffer of %d bytes: %w", o.v, err)
		}
	}
	return nil
}

// requeue sends, from the peer's fd, each message that waited to be read
// at socket s: they wait there again, in order. The fd does not block: a
// message that does not fit fails the restore rather than hanging it.
func requeue(peer int, s *image.UnixSocket) error {
	for i, m := range s.Queue {
		for done := 0; done < len(m) || len(m) == 0; {
			n, err := unix.SendmsgN(peer, m[done:], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if err != nil {
				return fmt.Errorf("queue message %d of %d (%d bytes): %w", i+1, len(s.Queue), len(m), err)
			}
			if s.Type != unix.SOCK_STREAM || len(m) == 0 {
				break // a message goes whole or not at all
			}
			done += n
		}
	}
	return nil
}

// shutdownAsDumped shuts down at socket fd what was shut down at dump
// (bit 1 receiving, bit 2 sending).
func shutdownAsDumped(fd int, shut uint8) error {
	if shut&2 != 0 {
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return err
		}
	}
	if shut&1 != 0 {
		return unix.Shutdown(fd, unix.SHUT_RD)
	}
	return nil
}
