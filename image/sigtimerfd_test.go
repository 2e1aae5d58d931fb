package image

import (
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fsnotify"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/signalfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timerfd"
	"golang.org/x/sys/unix"
)

// TestSignalfdTimerfdRoundTrip: signalfd, timerfd, inotify and pidfd fds come back with
// their state, make the ext file version 7 and are what crit reads in
// files.img (CRIU's signalfd_entry and timerfd_entry); a timerfd on a
// clock timerfd_create refuses is not written.
func TestSignalfdTimerfdRoundTrip(t *testing.T) {
	tree := sampleTree()
	task := tree.Tasks[0]
	sfd := &FD{Num: 20, Kind: FDSignalfd, Flags: unix.O_RDWR | unix.O_NONBLOCK, Signalfd: &Signalfd{Mask: 0x4200}}
	tfd := &FD{Num: 21, Kind: FDTimerfd, Flags: unix.O_RDWR, Timerfd: &Timerfd{Clock: unix.CLOCK_MONOTONIC, Ticks: 3,
		SettimeFlags: 0, ValueNsec: 1500000000, IntervalNsec: 2e9 + 7}}
	ify := &FD{Num: 22, Kind: FDInotify, Flags: unix.O_RDONLY | unix.O_NONBLOCK, Inotify: []InotifyWatch{
		{WD: 2, Mask: 0x300, Ino: 0x9b65c3, Sdev: 0xfe00000, HandleType: 1, Handle: []byte{0xc3, 0x65, 0x9b, 0, 0xe0, 0xd7, 0x83, 0x0a}, Path: "/tmp/dir"},
		{WD: 3, Mask: 0x84000004, Ino: 0x9b65b3, Sdev: 0xfe00000, HandleType: 1, Handle: []byte{0xb3, 0x65, 0x9b, 0, 0xa8, 0xd3, 0x9b, 0x40, 7}, Path: "/tmp/file"}}}
	pfd := &FD{Num: 23, Kind: FDPidfd, Flags: unix.O_RDWR | unix.O_NONBLOCK, PidfdPID: tree.Tasks[1].PID}
	task.FDs = append(task.FDs, sfd, tfd, ify, pfd)
	dir, err := commitTree(t, tree)
	if err != nil {
		t.Fatal(err)
	}
	_, files := readFiles(t, dir)
	if !strings.Contains(string(files[ExtName]), `"version": 7`) {
		t.Errorf("%s is not version 7", ExtName)
	}
	_, got := openTree(t, dir)
	n := len(got.Tasks[0].FDs)
	if !reflect.DeepEqual(got.Tasks[0].FDs[n-4:], []*FD{sfd, tfd, ify, pfd}) {
		t.Errorf("fds came back as %+v %+v %+v %+v, want %+v %+v %+v %+v", got.Tasks[0].FDs[n-4], got.Tasks[0].FDs[n-3],
			got.Tasks[0].FDs[n-2], got.Tasks[0].FDs[n-1], sfd, tfd, ify, pfd)
	}
	var sg *signalfd.SignalfdEntry
	var tm *timerfd.TimerfdEntry
	var in *fsnotify.InotifyFileEntry
	for _, e := range critDecode(t, dir, "files.img", &fdinfo.FileEntry{}).Entries {
		fe := e.Message.(*fdinfo.FileEntry)
		if fe.GetSgfd() != nil {
			sg = fe.GetSgfd()
		}
		if fe.GetTfd() != nil {
			tm = fe.GetTfd()
		}
		if fe.GetIfy() != nil {
			in = fe.GetIfy()
		}
	}
	if sg.GetSigmask() != 0x4200 || tm.GetTicks() != 3 || tm.GetVsec() != 1 || tm.GetVnsec() != 5e8 || tm.GetIsec() != 2 || tm.GetInsec() != 7 {
		t.Errorf("crit reads signalfd %v, timerfd %v", sg, tm)
	}
	if wds := in.GetWd(); len(wds) != 2 || wds[1].GetWd() != 3 || wds[1].GetFHandle().GetPath() != "/tmp/file" ||
		wds[1].GetFHandle().GetBytes() != 9 || len(wds[1].GetFHandle().GetHandle()) != 16 || wds[1].GetFHandle().GetHandle()[1] != 7 {
		t.Errorf("crit reads inotify %v", in)
	}
	ify.Inotify[1].WD = 2
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "inotify watch 2 (after 2)") {
		t.Errorf("two watches 2: commit %v, want a refusal", err)
	}
	ify.Inotify[1].WD = 3
	pfd.PidfdPID = 99999
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "pidfd of 99999, no task of the tree") {
		t.Errorf("pidfd of a pid outside the tree: commit %v, want a refusal", err)
	}
	pfd.PidfdPID = tree.Tasks[1].PID
	tfd.Timerfd.Clock = 99
	if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), "timerfd on clock 99") {
		t.Errorf("timerfd on clock 99: commit %v, want a refusal", err)
	}
}
