package image

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inetTree is sampleTree with two TCP listeners held by the root, one on
// IPv4 with a dup of its fd (one open file), one on IPv6, and two UDP
// sockets.
func inetTree() *Tree {
	t := sampleTree()
	root := t.Tasks[0]
	root.FDs = append(root.FDs,
		&FD{Num: 20, Kind: FDInet, Flags: unix.O_RDWR, InetID: 1, OpenID: 1},
		&FD{Num: 21, Kind: FDInet, Flags: unix.O_RDWR | unix.O_NONBLOCK, InetID: 2},
		&FD{Num: 22, Kind: FDInet, Flags: unix.O_RDWR | unix.O_CLOEXEC, InetID: 1, OpenID: 1},
		&FD{Num: 23, Kind: FDInet, Flags: unix.O_RDWR, InetID: 3},
		&FD{Num: 24, Kind: FDInet, Flags: unix.O_RDWR, InetID: 4},
		&FD{Num: 25, Kind: FDInet, Flags: unix.O_RDWR, InetID: 5})
	t.InetSockets = []*InetSocket{
		{ID: 1, Ino: 99001, Addr: netip.MustParseAddrPort("127.0.0.1:8080"), Backlog: 128, ReuseAddr: true,
			Opts: InetOpts{SndBuf: 16384, RcvBuf: 200000, BufLock: unix.SOCK_RCVBUF_LOCK, KeepAlive: true, Priority: 4,
				Linger: new(uint32(5)), KeepCnt: 9, KeepIdle: 77, KeepIntvl: 75}},
		{ID: 2, Ino: 99002, Addr: netip.MustParseAddrPort("[2001:db8::7]:443"), Backlog: 4096, ReusePort: true, V6Only: true},
		// A UDP client connected to a server, a UDP socket never bound.
		{ID: 3, Ino: 99003, UDP: true, Addr: netip.MustParseAddrPort("[::1]:40001"), Peer: netip.MustParseAddrPort("[::1]:53"),
			Opts: InetOpts{SndBuf: 212992, RcvBuf: 212992, Broadcast: true, RcvLowat: 1, OOBInline: true, DontRoute: true}},
		{ID: 4, Ino: 99004, UDP: true, Addr: netip.MustParseAddrPort("0.0.0.0:0")},
		// An IPv6 socket bound to an IPv4-mapped address.
		{ID: 5, Ino: 99005, UDP: true, Addr: netip.MustParseAddrPort("[::ffff:127.0.0.1]:5353")},
	}
	return t
}

// TestInetRoundTrip: TCP listeners come back from an image as they went
// in, and the image says ext version 8.
func TestInetRoundTrip(t *testing.T) {
	want := inetTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"version": 8`) {
		t.Fatalf("%s is not version 8 (%v)", ExtName, err)
	}
	_, got := openTree(t, dir)
	if !reflect.DeepEqual(got.InetSockets, want.InetSockets) {
		t.Errorf("inet sockets came back as %+v, want %+v", got.InetSockets, want.InetSockets)
	}
	if !reflect.DeepEqual(got.Tasks[0].FDs, want.Tasks[0].FDs) {
		t.Errorf("fds differ")
	}
}

// TestInetRefused: a tree whose TCP listeners do not hold together is not
// written.
func TestInetRefused(t *testing.T) {
	for what, mangle := range map[string]func(t *Tree){
		"socket unheld":       func(t *Tree) { t.Tasks[0].FDs = t.Tasks[0].FDs[:len(t.Tasks[0].FDs)-1] },
		"socket in two opens": func(t *Tree) { t.Tasks[0].FDs[len(t.Tasks[0].FDs)-4].OpenID = 0 }, // fd 22
		"no address":          func(t *Tree) { t.InetSockets[0].Addr = netip.AddrPort{} },
		"v6only on IPv4":      func(t *Tree) { t.InetSockets[0].V6Only = true },
		"ids out of order":    func(t *Tree) { t.InetSockets[0].ID, t.InetSockets[1].ID = 2, 1 },
		"inet id on a pipe":   func(t *Tree) { t.Tasks[0].FDs[2].InetID = 1 },
		"UDP peer of another family": func(t *Tree) {
			t.InetSockets[2].Peer = netip.MustParseAddrPort("10.0.0.1:53")
		},
		"TCP listener on port 0": func(t *Tree) { t.InetSockets[0].Addr = netip.MustParseAddrPort("127.0.0.1:0") },
		"UDP with a backlog":     func(t *Tree) { t.InetSockets[3].Backlog = 5 },
		"UDP with keepalives":    func(t *Tree) { t.InetSockets[2].Opts.KeepIdle = 60 },
		"unknown buffer lock":    func(t *Tree) { t.InetSockets[0].Opts.BufLock = 4 },
	} {
		if _, err := commitTree(t, inetTree()); err != nil {
			t.Fatalf("the unmangled tree: %v", err)
		}
		tree := inetTree()
		mangle(tree)
		if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "inet") {
			t.Errorf("%s: commit %v, want a refusal naming the inet socket", what, err)
		}
	}
}
