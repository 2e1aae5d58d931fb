package image

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// pipeTree is sampleTree with a regular file's open file description
// shared by the two tasks, a unix socket pair in the child and two pipes: the first with data, its read end
// open in both tasks through one open file description (fd 12 of the root,
// inherited as the child's fd 3) and its write end in the root; the second
// held only by the child's write end, its reader gone.
func pipeTree() *Tree {
	t := sampleTree()
	root, child := t.Tasks[0], t.Tasks[1]
	// The root's fd 3, a regular file, shares its description (and its
	// offset) with the child's fd 5, inherited.
	root.FDs[2].OpenID = 1
	root.FDs = append(root.FDs,
		&FD{Num: 12, Kind: FDPipe, Flags: unix.O_RDONLY, PipeID: 1, OpenID: 2},
		&FD{Num: 13, Kind: FDPipe, Flags: unix.O_WRONLY | unix.O_NONBLOCK | unix.O_CLOEXEC, PipeID: 1, OpenID: 3},
		&FD{Num: 14, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 1, OpenID: 4},
		&FD{Num: 15, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 2, OpenID: 5})
	child.FDs = append(child.FDs,
		&FD{Num: 3, Kind: FDPipe, Flags: unix.O_RDONLY | unix.O_CLOEXEC, PipeID: 1, OpenID: 2},
		&FD{Num: 4, Kind: FDPipe, Flags: unix.O_WRONLY, PipeID: 2, OpenID: 6},
		&FD{Num: 5, Kind: FDRegular, FileID: 2, Flags: unix.O_RDWR, Pos: 1234, OpenID: 1},
		&FD{Num: 6, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 3, OpenID: 7},
		&FD{Num: 7, Kind: FDSocket, Flags: unix.O_RDWR | unix.O_NONBLOCK, SocketID: 4, OpenID: 8},
		&FD{Num: 8, Kind: FDSocket, Flags: unix.O_RDWR | unix.O_CLOEXEC, SocketID: 3, OpenID: 7},
		&FD{Num: 9, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 5, OpenID: 9},
		&FD{Num: 10, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 6, OpenID: 10},
		&FD{Num: 11, Kind: FDPipe, Flags: unix.O_RDONLY | unix.O_NONBLOCK, PipeID: 3, OpenID: 11},
		&FD{Num: 12, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 7, OpenID: 12},
		&FD{Num: 13, Kind: FDSocket, Flags: unix.O_RDWR, SocketID: 8, OpenID: 13})
	// A FIFO, its read end in the child, bytes in it.
	t.Files = append(t.Files, &File{ID: 6, Path: "/tmp/fifo", Dev: 0x2a, Ino: 79, Mode: unix.S_IFIFO | 0o600})
	// A datagram pair with three messages queued at one end, one empty;
	// a stream pair with bytes queued at one end, shut down for writing
	// at the other.
	t.Sockets = []*UnixSocket{
		{ID: 1, Ino: 88003, Type: unix.SOCK_DGRAM, State: tcpEstablish, Peer: 2, SndBuf: 212992, RcvBuf: 212992,
			Queue: [][]byte{[]byte("one"), {}, []byte("three")}},
		{ID: 2, Ino: 88004, Type: unix.SOCK_DGRAM, State: tcpEstablish, Peer: 1, SndBuf: 212992, RcvBuf: 212992},
		{ID: 3, Ino: 88001, Type: unix.SOCK_STREAM, State: tcpEstablish, Peer: 4, Shutdown: 1, SndBuf: 212992, RcvBuf: 212992,
			Queue: [][]byte{[]byte("stream bytes"), bytes.Repeat([]byte{7}, 3000)}},
		{ID: 4, Ino: 88002, Type: unix.SOCK_STREAM, State: tcpEstablish, Peer: 3, Shutdown: 2, SndBuf: 4608, RcvBuf: 212992},
		// A stream socket whose peer closed, bytes left; one never connected.
		{ID: 5, Ino: 88005, Type: unix.SOCK_STREAM, State: tcpEstablish, Shutdown: 3, SndBuf: 212992, RcvBuf: 212992,
			Queue: [][]byte{[]byte("last words")}},
		{ID: 6, Ino: 88006, Type: unix.SOCK_DGRAM, State: tcpClose, SndBuf: 212992, RcvBuf: 212992},
		// A listener on a path, a datagram socket bound to an abstract name.
		{ID: 7, Ino: 88007, Type: unix.SOCK_STREAM, State: tcpListen, SndBuf: 212992, RcvBuf: 212992,
			Name: []byte("/run/app.sock"), Backlog: 16, Perms: &SocketPerms{Mode: unix.S_IFSOCK | 0o660, UID: 1000, GID: 1001}},
		{ID: 8, Ino: 88008, Type: unix.SOCK_DGRAM, State: tcpClose, SndBuf: 212992, RcvBuf: 212992, Name: []byte("\x00app")},
	}
	t.Pipes = []*Pipe{
		{ID: 1, Ino: 77001, Size: 16 * PageSize, Data: append([]byte("hello\x00"), bytes.Repeat([]byte{0xa5}, 5000)...)},
		{ID: 2, Ino: 77002, Size: 256 * PageSize},
		{ID: 3, Ino: 79, FileID: 6, Size: 16 * PageSize, Data: []byte("through the fifo")},
	}
	return t
}

// TestPipesRoundTrip: pipes and unix socket pairs, their data and the fds
// on them come back,
// the fds sharing an open file description sharing one files.img entry
// (CRIU's way), as crit sees it; the ext file is version 5.
func TestPipesRoundTrip(t *testing.T) {
	want := pipeTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := os.ReadFile(filepath.Join(dir, ExtName))
	if err != nil || !strings.Contains(string(ext), `"version": 5`) {
		t.Fatalf("%s is not version 5 (%v)", ExtName, err)
	}
	_, got := openTree(t, dir)
	normalizeTree(want)
	if !reflect.DeepEqual(got.Pipes, want.Pipes) {
		t.Errorf("pipes came back as %+v, want %+v", got.Pipes, want.Pipes)
	}
	for i := range want.Tasks {
		if !reflect.DeepEqual(got.Tasks[i].FDs, want.Tasks[i].FDs) {
			t.Errorf("task %d: fds differ", want.Tasks[i].PID)
		}
	}

	decode := func(name string, typ proto.Message) *crit.CriuImage { return critDecode(t, dir, name, typ) }
	pipeFiles := map[uint32]uint32{} // file entry id: pipe_id
	for _, e := range decode(filesName, &fdinfo.FileEntry{}).Entries {
		if fe := e.Message.(*fdinfo.FileEntry); fe.GetType() == fdinfo.FdTypes_PIPE {
			pipeFiles[fe.GetId()] = fe.GetPipe().GetPipeId()
		}
	}
	if len(pipeFiles) != 3 {
		t.Errorf("files.img pipe entries %v, want one per open file description (3)", pipeFiles)
	}
	root := decode(fdinfoName(100), &fdinfo.FdinfoEntry{}).Entries
	child := decode(fdinfoName(102), &fdinfo.FdinfoEntry{}).Entries
	rootRead := root[len(root)-4].Message.(*fdinfo.FdinfoEntry).GetId() // fd 12
	childRead := child[0].Message.(*fdinfo.FdinfoEntry).GetId()
	if rootRead != childRead || pipeFiles[rootRead] != 77001 {
		t.Errorf("the shared read end: file ids %d and %d (pipe %d)", rootRead, childRead, pipeFiles[rootRead])
	}
	if q := decode(skQueuesName, &sk_packet.SkPacketEntry{}).Entries; len(q) != 6 {
		t.Errorf("sk-queues.img: %d packets as crit sees them, want 6", len(q))
	}
	pd := decode(pipesDataName, &pipe_data.PipeDataEntry{}).Entries
	if len(pd) != 2 {
		t.Fatalf("pipes-data.img: %d entries, want 2", len(pd))
	}
	if e := pd[0].Message.(*pipe_data.PipeDataEntry); e.GetPipeId() != 77001 || e.GetBytes() != 5006 || e.GetSize() != 16*PageSize {
		t.Errorf("pipe data entry as crit sees it: %v", e)
	}
}

// TestPipesRefused: a tree whose pipes or pipe fds make no sense is not
// committed, and a pipes-data.img whose data overruns it is not read.
func TestPipesRefused(t *testing.T) {
	for what, mangle := range map[string]func(t *Tree){
		"data over capacity": func(t *Tree) { t.Pipes[0].Data = make([]byte, t.Pipes[0].Size+1) },
		"odd capacity":       func(t *Tree) { t.Pipes[1].Size = 1000 },
		"inode twice":        func(t *Tree) { t.Pipes[1].Ino = t.Pipes[0].Ino },
		"unheld pipe":        func(t *Tree) { t.Tasks[1].FDs = t.Tasks[1].FDs[:len(t.Tasks[1].FDs)-1] },
		"FIFO of no file":    func(t *Tree) { t.Pipes[2].FileID = 9 },
		"unknown pipe":       func(t *Tree) { t.Tasks[1].FDs[1].PipeID = 3 },
		"no access mode":     func(t *Tree) { t.Tasks[1].FDs[1].Flags = unix.O_ACCMODE },
		"open out of order":  func(t *Tree) { t.Tasks[1].FDs[1].OpenID = 7 },
		"shared, other flags": func(t *Tree) {
			t.Tasks[1].FDs[0].Flags |= unix.O_NONBLOCK
		},
		"shared, other offset":    func(t *Tree) { t.Tasks[1].FDs[2].Pos = 1 },
		"shared, other file":      func(t *Tree) { t.Tasks[1].FDs[2].FileID = 4 },
		"open file on an eventfd": func(t *Tree) { t.Tasks[0].FDs[7].OpenID = 1 },
		"socket peer not mutual":  func(t *Tree) { t.Sockets[1].Peer = 3 },
		"never connected, queued": func(t *Tree) { t.Sockets[5].Queue = [][]byte{{1}} },
		"listener without a name": func(t *Tree) { t.Sockets[6].Name = nil },
		"relative name":           func(t *Tree) { t.Sockets[6].Name = []byte("app.sock") },
		"socket types differ":     func(t *Tree) { t.Sockets[1].Type = unix.SOCK_STREAM },
		"socket unheld":           func(t *Tree) { t.Tasks[0].FDs = t.Tasks[0].FDs[:len(t.Tasks[0].FDs)-1] },
		"socket in two opens":     func(t *Tree) { t.Tasks[1].FDs[5].OpenID = 8 },
		"sockets out of order":    func(t *Tree) { t.Tasks[0].FDs[8].SocketID, t.Tasks[0].FDs[9].SocketID = 2, 1 },
		"pipe on a regular fd":    func(t *Tree) { t.Tasks[0].FDs[2].PipeID = 1 },
	} {
		tree := pipeTree()
		mangle(tree)
		if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "pipe") && !strings.Contains(err.Error(), "open file") &&
			!strings.Contains(err.Error(), "socket") {
			t.Errorf("%s: commit %v, want a refusal", what, err)
		}
	}

	dir, err := commitTree(t, pipeTree())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, pipesDataName))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{pipesDataName: data[:len(data)-1]}
	r := memReader(files)
	if err := r.readPipes(&Tree{}); err == nil || !strings.Contains(err.Error(), "overrun") {
		t.Errorf("truncated pipe data: %v, want an error", err)
	}
}

// TestPipesSummary: mmcr show names each pipe end's pipe, end and unread
// bytes, each socket's type, peer and queue, and the open file description
// of each fd that shares one.
func TestPipesSummary(t *testing.T) {
	dir, err := commitTree(t, pipeTree())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := openTree(t, dir)
	s, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		"fd 12: pipe pipe:[77001] read end, 5006 bytes unread of 64.0 KiB (open file 2)",
		"fd 13: pipe pipe:[77001] write end, 5006 bytes unread of 64.0 KiB (open file 3)",
		"fd 4: pipe pipe:[77002] write end, 0 bytes unread of 1.0 MiB (open file 6)",
		"fd 11: pipe FIFO /tmp/fifo read end, 16 bytes unread of 64.0 KiB (open file 11)",
		"fd 12: socket socket:[88007] stream listening on /run/app.sock, backlog 16 (open file 12)",
		"fd 13: socket socket:[88008] datagram bound to @app (open file 13)",
		"fd 5: regular file 2 /tmp/deleted file (open file 1) flags 02 pos 1234",
		"fd 6: socket socket:[88001] stream, peer socket:[88002], 2 messages (2.9 KiB) queued (open file 7)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("show lacks %q:\n%s", want, text)
		}
	}
}
