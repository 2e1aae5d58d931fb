package procfs

import (
	"reflect"
	"testing"
)

// The fdinfo of an epoll and of an eventfd as Linux 6.18 prints them
// (a Go program's netpoller: the epoll watches the eventfd).
func TestParseFdinfoEpollEventfd(t *testing.T) {
	var ep FD
	err := parseFdinfo([]byte("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1030\n"+
		"tfd:        6 events:       19 data:           5a3e20  pos:0 ino:406 sdev:10\n"+
		"tfd:       12 events: 80000001 data: ffffffffffffffff  pos:0 ino:1a sdev:f\n"), &ep)
	if err != nil {
		t.Fatal(err)
	}
	want := []EpollTarget{{FD: 6, Events: 0x19, Data: 0x5a3e20, Ino: 0x406},
		{FD: 12, Events: 0x80000001, Data: ^uint64(0), Ino: 0x1a}}
	if !reflect.DeepEqual(ep.EpollTargets, want) || ep.Flags != 0o2000002 || ep.Eventfd != nil {
		t.Errorf("epoll: got %+v", ep)
	}

	var ev FD
	err = parseFdinfo([]byte("pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1030\n"+
		"eventfd-count:         100000000\neventfd-id: 1\neventfd-semaphore: 1\n"), &ev)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Eventfd == nil || *ev.Eventfd != (EventfdInfo{Count: 1 << 32, Semaphore: true}) || ev.EpollTargets != nil {
		t.Errorf("eventfd: got %+v", ev)
	}

	if err := parseFdinfo([]byte("pos:\t0\nflags:\t02\ntfd: x events: 1 data: 2\n"), &FD{}); err == nil {
		t.Error("a bad tfd line parsed")
	}
}

// A file's fdinfo with locks as Linux 6.18 prints them: an flock, POSIX
// ranges (one to the end of the file), an OFD lock, and a request still
// waiting, which is no lock.
func TestParseFdinfoLocks(t *testing.T) {
	var fd FD
	err := parseFdinfo([]byte("pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t10117178\n"+
		"lock:\t1: FLOCK  ADVISORY  WRITE 526 fe:00:10117177 0 EOF\n"+
		"lock:\t2: POSIX  ADVISORY  WRITE 537 fe:00:10117178 10 19\n"+
		"lock:\t3: POSIX  ADVISORY  READ 537 fe:00:10117178 100 EOF\n"+
		"lock:\t4: OFDLCK ADVISORY  READ -1 fe:00:10117178 0 EOF\n"+
		"lock:\t5: -> POSIX  ADVISORY  WRITE 600 fe:00:10117178 0 EOF\n"), &fd)
	if err != nil {
		t.Fatal(err)
	}
	want := []FileLock{{Kind: "FLOCK", Write: true, PID: 526, End: -1}, {Kind: "POSIX", Write: true, PID: 537, Start: 10, End: 19},
		{Kind: "POSIX", PID: 537, Start: 100, End: -1}, {Kind: "OFDLCK", PID: -1, End: -1}}
	if !reflect.DeepEqual(fd.Locks, want) {
		t.Errorf("locks: got %+v\nwant %+v", fd.Locks, want)
	}
	if err := parseFdinfo([]byte("pos:\t0\nflags:\t02\nlock:\t1: FLOCK ADVISORY SOMETIMES 1 0:0:0 0 EOF\n"), &FD{}); err == nil {
		t.Error("a lock neither READ nor WRITE parsed")
	}
}

// The fdinfo of a signalfd and of timerfds as Linux 6.18 prints them: a
// periodic one expired and not read (no time left, one tick), an
// absolute one on CLOCK_REALTIME.
func TestParseFdinfoSignalfdTimerfd(t *testing.T) {
	var sfd FD
	if err := parseFdinfo([]byte("pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1030\nsigmask:\t0000000000004200\n"), &sfd); err != nil {
		t.Fatal(err)
	}
	if sfd.Signalfd == nil || *sfd.Signalfd != 0x4200 || sfd.Timerfd != nil {
		t.Errorf("signalfd: got %+v", sfd)
	}
	for _, tc := range []struct {
		text string
		want TimerfdInfo
	}{
		{"clockid: 1\nticks: 1\nsettime flags: 00\nit_value: (0, 0)\nit_interval: (1, 500)\n",
			TimerfdInfo{Clock: 1, Ticks: 1, IntervalNsec: 1e9 + 500}},
		{"clockid: 0\nticks: 0\nsettime flags: 03\nit_value: (204144474, 27647667)\nit_interval: (0, 0)\n",
			TimerfdInfo{SettimeFlags: 3, ValueNsec: 204144474e9 + 27647667}},
	} {
		var tfd FD
		if err := parseFdinfo([]byte("pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1030\n"+tc.text), &tfd); err != nil {
			t.Fatal(err)
		}
		if tfd.Timerfd == nil || *tfd.Timerfd != tc.want {
			t.Errorf("timerfd %q: got %+v, want %+v", tc.text, tfd.Timerfd, tc.want)
		}
	}
	if err := parseFdinfo([]byte("pos:\t0\nflags:\t02\nit_value: (1, 2000000000)\n"), &FD{}); err == nil {
		t.Error("a bad it_value parsed")
	}
}

// An inotify fd's fdinfo as Linux 6.18 prints it: a oneshot watch of a
// file (IN_ATTRIB, IN_EXCL_UNLINK), one of a directory.
func TestParseFdinfoInotify(t *testing.T) {
	var ify FD
	err := parseFdinfo([]byte("pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t1030\n"+
		"inotify wd:3 ino:9b65b3 sdev:fe00000 mask:84000004 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:b3659b00a8d39b40\n"+
		"inotify wd:2 ino:9b65c3 sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:c3659b00e0d7830a\n"), &ify)
	if err != nil {
		t.Fatal(err)
	}
	want := []InotifyMark{
		{WD: 3, Ino: 0x9b65b3, Sdev: 0xfe00000, Mask: 0x84000004, HandleType: 1, Handle: []byte{0xb3, 0x65, 0x9b, 0, 0xa8, 0xd3, 0x9b, 0x40}},
		{WD: 2, Ino: 0x9b65c3, Sdev: 0xfe00000, Mask: 0x300, HandleType: 1, Handle: []byte{0xc3, 0x65, 0x9b, 0, 0xe0, 0xd7, 0x83, 0x0a}},
	}
	if !reflect.DeepEqual(ify.Inotify, want) {
		t.Errorf("inotify: got %+v", ify.Inotify)
	}
	if err := parseFdinfo([]byte("pos:\t0\nflags:\t02\ninotify wd:1 ino:1 sdev:0 mask:2 ignored_mask:0 fhandle-bytes:9 fhandle-type:1 f_handle:00\n"), &FD{}); err == nil {
		t.Error("a handle shorter than its byte count parsed")
	}
}

// A pidfd's fdinfo as Linux 6.18 prints it (pidfs), and once its process
// is reaped.
func TestParseFdinfoPidfd(t *testing.T) {
	for _, tc := range []struct {
		pid  string
		want int
	}{{"14518", 14518}, {"-1", -1}} {
		var fd FD
		if err := parseFdinfo([]byte("pos:\t0\nflags:\t02004002\nmnt_id:\t4\nino:\t1513499\nPid:\t"+tc.pid+"\nNSpid:\t"+tc.pid+"\n"), &fd); err != nil {
			t.Fatal(err)
		}
		if fd.PidfdPID == nil || *fd.PidfdPID != tc.want {
			t.Errorf("pidfd of %s: got %v", tc.pid, fd.PidfdPID)
		}
	}
}
