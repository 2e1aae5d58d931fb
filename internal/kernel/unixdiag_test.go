package kernel

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestUnixSockets asks sock_diag about a socket pair of the test's, one
// end shut down for writing with bytes sent, and a TCP socket: the peers
// name each other, the queue and shutdown are seen, the TCP socket is not
// a unix one.
func TestUnixSockets(t *testing.T) {
	if got := unsafe.Sizeof(unixDiagReq{}); got != sizeofUnixDiagReq {
		t.Errorf("sizeof(unix_diag_req) = %d, want %d", got, sizeofUnixDiagReq)
	}
	if got := unsafe.Sizeof(unixDiagMsg{}); got != sizeofUnixDiagMsg {
		t.Errorf("sizeof(unix_diag_msg) = %d, want %d", got, sizeofUnixDiagMsg)
	}
	sv, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	if _, err := unix.Write(sv[0], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(sv[0], unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	tcp, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tcp)
	var a, b, c unix.Stat_t
	unix.Fstat(sv[0], &a)
	unix.Fstat(sv[1], &b)
	unix.Fstat(tcp, &c)
	got, err := UnixSockets(map[uint32]bool{uint32(a.Ino): true, uint32(b.Ino): true, uint32(c.Ino): true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[uint32(c.Ino)]; ok || len(got) != 2 {
		t.Errorf("sock_diag answers %d sockets, a TCP socket among them: %v", len(got), ok)
	}
	sa, sb := got[uint32(a.Ino)], got[uint32(b.Ino)]
	if sa.Peer != uint32(b.Ino) || sb.Peer != uint32(a.Ino) || sa.Type != unix.SOCK_STREAM || sa.Named {
		t.Errorf("the pair as sock_diag says it: %+v and %+v", sa, sb)
	}
	if sb.RQueue != 5 || sa.Shutdown != 2 || sb.Shutdown != 1 {
		t.Errorf("queue %d at the reader, shutdown %d and %d, want 5, 2 and 1", sb.RQueue, sa.Shutdown, sb.Shutdown)
	}
}
