package procfs

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseSysVShm(t *testing.T) {
	text := "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n" +
		"      4660          3   640                 65536 26955 26955      1  1000   100     0     0 1795830203          0 1795830203                     0                     0\n" +
		"         0          7  1600                  4096    10    11      2     0     0     0     0          0          0          0                  4096                     0\n"
	got, err := ParseSysVShm([]byte(text), "shm")
	if err != nil {
		t.Fatal(err)
	}
	want := []SysVShm{
		{Key: 0x1234, ID: 3, Mode: 0o640, Size: 65536, Nattch: 1, UID: 1000, GID: 100},
		{Key: 0, ID: 7, Mode: 0o1600, Size: 4096, Nattch: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"h\n1 2 3\n", "h\nx 3 640 1 1 1 1 0 0 0 0\n", "h\n1 3 999 1 1 1 1 0 0 0 0\n"} {
		if _, err := ParseSysVShm([]byte(bad), "shm"); !errors.Is(err, ErrParse) {
			t.Errorf("%q: %v, want ErrParse", bad, err)
		}
	}
}
