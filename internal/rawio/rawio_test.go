package rawio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// src is a global: its address, passed as a number, must not move.
var src = []byte("pages of a task, read without telling the scheduler")

func TestProcessVMReadv(t *testing.T) {
	dst := make([]byte, len(src))
	local := []unix.Iovec{{Base: &dst[0]}}
	local[0].SetLen(len(dst))
	remote := []unix.RemoteIovec{{Base: uintptrOf(src), Len: len(src)}}
	n, err := ProcessVMReadv(os.Getpid(), local, remote)
	if err != nil || n != len(src) || !bytes.Equal(dst, src) {
		t.Fatalf("ProcessVMReadv = %d, %v; read %q", n, err, dst)
	}
	remote[0].Base = 0 // nothing is mapped at address 0
	if _, err := ProcessVMReadv(os.Getpid(), local, remote); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("ProcessVMReadv of address 0: %v, want EFAULT", err)
	}
}

func TestPwritevPread(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "pages"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b := []byte("first "), []byte("second")
	iov := []unix.Iovec{{Base: &a[0]}, {Base: &b[0]}}
	iov[0].SetLen(len(a))
	iov[1].SetLen(len(b))
	const off = 1 << 33 // past 4 GiB: the offset is not cut to 32 bits
	n, err := Pwritev(int(f.Fd()), iov, off)
	if err != nil || n != len(a)+len(b) {
		t.Fatalf("Pwritev = %d, %v", n, err)
	}
	got := make([]byte, n)
	if n, err := Pread(int(f.Fd()), got, off); err != nil || n != len(got) || string(got) != "first second" {
		t.Fatalf("Pread = %d, %v: %q", n, err, got)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != off+int64(len(got)) {
		t.Fatalf("size after Pwritev at %d: %v, %v", off, fi.Size(), err)
	}
	if _, err := Pread(-1, got, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Pread of fd -1: %v, want EBADF", err)
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	go func() {
		time.Sleep(3 * PollFor) // past the polling: Recv blocks, then gets it
		ch <- 7
		close(ch)
	}()
	if v, ok := Recv(ch); v != 7 || !ok {
		t.Fatalf("Recv = %d, %v; want 7, true", v, ok)
	}
	if _, ok := Recv(ch); ok {
		t.Fatal("Recv of a closed channel: ok")
	}

	stop := make(chan struct{})
	never := make(chan int)
	go func() {
		time.Sleep(3 * PollFor)
		close(stop)
	}()
	if _, ok := RecvUnless(never, stop); ok {
		t.Fatal("RecvUnless after stop: ok")
	}
	ch2 := make(chan int, 1)
	ch2 <- 5
	if v, ok := RecvUnless(ch2, make(chan struct{})); v != 5 || !ok {
		t.Fatalf("RecvUnless = %d, %v; want 5, true", v, ok)
	}
}
