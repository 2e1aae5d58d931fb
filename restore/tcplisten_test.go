package restore

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// TestRestoreTCPListeners: TCP listeners on 127.0.0.1 and ::1 come back on
// their ports with their backlogs and options, the first still shared
// with a child whose accept() was cut by the dump and goes on.
func TestRestoreTCPListeners(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "tcplisten"))
	if n := len(d.tree.InetSockets); n != 2 {
		t.Fatalf("image: %d inet sockets, want 2", n)
	}
	holders := map[uint32]int{}
	for _, task := range d.tree.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind == image.FDInet {
				holders[fd.InetID]++
			}
		}
	}
	if holders[1] != 2 || holders[2] != 2 { // the child holds both too
		t.Errorf("fds on the listeners: %v, want 2 each", holders)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreTCPListenerPortTaken: a restore whose listener's port another
// socket holds fails naming the fd and the address, and leaves nothing
// running.
func TestRestoreTCPListenerPortTaken(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "tcplisten"))
	addr := d.tree.InetSockets[0].Addr
	l, err := net.Listen("tcp", addr.String()) // the dumped tree is gone: the port is free again
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "bind "+addr.String()) || !errors.Is(err, unix.EADDRINUSE) ||
		!strings.Contains(err.Error(), "fd 3") {
		t.Fatalf("restore: %v, want fd 3's bind of %s refused (address in use)", err, addr)
	}
	t.Logf("restore: %v", err)
	waitGone(t, d.pids)
}

// TestRestoreUDP: UDP sockets come back bound and connected as they were
// (a client's port too, so that its server answers where it did), and a
// socket never bound stays so.
func TestRestoreUDP(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "udp"))
	var udp, connected int
	for _, s := range d.tree.InetSockets {
		if s.UDP {
			udp++
		}
		if s.Peer.IsValid() {
			connected++
		}
	}
	if udp != 4 || connected != 1 {
		t.Errorf("image: %d UDP sockets, %d connected; want 4 and 1", udp, connected)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
