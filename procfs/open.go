package procfs

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openProc opens a /proc file or directory read-only. It uses unix.Open
// and os.NewFile rather than os.Open, which tries to register every file
// with the runtime's netpoller (four fcntl and an epoll_ctl that /proc
// files refuse): a dump opens a dozen /proc files per task. The error is
// the *os.PathError os.Open would return.
func openProc(name string) (*os.File, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// readAll reads a /proc file whole: its size (st_size 0) says nothing, so
// it reads until EOF without a stat first.
func readAll(name string) ([]byte, error) {
	f, err := openProc(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 0, 4096)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
