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
