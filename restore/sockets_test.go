package restore

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreSockets dumps a parent and child holding unix socket pairs
// (testdata/sockets.c): stream bytes queued both ways, datagrams (one
// empty) with their bounds, a seqpacket pair shut down for writing, a dup
// sharing the stream end's description and flags, a buffer size set, a
// stream socket whose peer closed with bytes left, one never connected. The
// dump leaves the tree running and takes nothing from the queues: the
// original, let go, passes its checks. The restored tree passes them too,
// down to EOF on the stream once the child exits (no copy of mmcr's left).
func TestRestoreSockets(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, true, buildC(t, "sockets"))
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v (the dump took from or changed its sockets)", err)
	}
	waitGone(t, d.pids)

	types := map[int]int{}
	queued := 0
	for _, s := range d.tree.Sockets {
		types[s.Type]++
		queued += len(s.Queue)
	}
	if types[unix.SOCK_STREAM] != 3 || types[unix.SOCK_DGRAM] != 3 || types[unix.SOCK_SEQPACKET] != 2 {
		t.Errorf("sockets by type %v, want a pair of each, a stream whose peer closed, a datagram never connected", types)
	}
	if queued < 6 { // stream both ways, three datagrams, two packets
		t.Errorf("%d messages queued in the image, want at least 6", queued)
	}
	shared := false
	for _, fd := range d.tree.Tasks[0].FDs {
		for _, o := range d.tree.Tasks[0].FDs {
			shared = shared || fd.Kind == image.FDSocket && o.Num == 30 && o != fd && o.OpenID == fd.OpenID
		}
	}
	if !shared {
		t.Errorf("the parent's fd 30 shares no socket's description")
	}

	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreListener dumps a parent listening on a path (its socket file
// 0640, owned by 65534) and holding a datagram socket bound to an abstract
// name, and a child; the dump kills them, leaving the socket file. The
// restored parent listens on the path again (the stale file replaced, mode
// and owner as they were) and receives at the abstract name: the restored
// child connects and sends to both. Over another process's live socket at
// the path, the restore fails instead.
func TestRestoreListener(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "app.sock")
	d := dumpWorkload(t, false, buildC(t, "listener"), path)
	var listener, bound *image.UnixSocket
	for _, s := range d.tree.Sockets {
		switch {
		case string(s.Name) == path:
			listener = s
		case len(s.Name) > 0 && s.Name[0] == 0:
			bound = s
		}
	}
	if listener == nil || listener.Backlog != 7 || listener.Perms == nil || listener.Perms.Mode&0o777 != 0o640 ||
		listener.Perms.UID != 65534 || bound == nil || bound.Type != unix.SOCK_DGRAM {
		t.Fatalf("the image's named sockets: listener %+v, bound %+v", listener, bound)
	}

	// Someone else listening on the path now: the restore leaves their
	// socket alone, fails naming the path, and nothing runs.
	os.Remove(path)
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(Options{Dir: d.dir, Log: testLog(t)})
	if err == nil { // restored over it after all: not to be left running
		for _, pid := range d.pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	waitGone(t, d.pids)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another socket listens there") {
		t.Fatalf("restore over a live socket: %v", err)
	}
	other.Close() // removes the path

	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}

// TestRestoreAccepted restores a server and the child that connected to
// its listener: each accepted connection comes back joined to the
// child's end, with the bytes waiting either way, one whose client closed
// with its last bytes and EOF, and the listener takes new connections.
func TestRestoreAccepted(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "srv.sock")
	d := dumpWorkload(t, true, buildC(t, "accepted"), path)
	unix.Kill(d.pids[0], unix.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("the original after the dump: %v (the dump took from or changed its sockets)", err)
	}
	waitGone(t, d.pids)
	var pairs, closed, listeners int
	for _, s := range d.tree.Sockets {
		switch {
		case s.Peer != 0:
			pairs++
		case s.State == 1 && len(s.Name) == 0 && len(s.Queue) == 1:
			closed++ // established, its peer gone, "bye" waiting
		case string(s.Name) == path:
			listeners++
		}
	}
	if pairs != 2 || closed != 1 || listeners != 1 {
		t.Errorf("sockets in the image: %d connected ends, %d with a closed peer, %d listeners; want 2, 1, 1", pairs, closed, listeners)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
