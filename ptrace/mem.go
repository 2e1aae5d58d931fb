package ptrace

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"github.com/mmcr/mmcr/internal/rawio"
	"golang.org/x/sys/unix"
)

// Mem is an open /proc/PID/mem, for callers doing many accesses.
// Offsets are addresses; pread/pwrite are used directly because
// addresses above 2^63 are valid offsets there (FMODE_UNSIGNED_OFFSET).
type Mem struct {
	pid int
	f   *os.File
}

// OpenMem opens /proc/PID/mem for reading and, if write, writing. Access
// needs ptrace-attach rights over pid (root, or being its tracer).
func OpenMem(pid int, write bool) (*Mem, error) {
	flag := unix.O_RDONLY
	if write {
		flag = unix.O_RDWR
	}
	// unix.Open and os.NewFile rather than os.OpenFile: os.OpenFile tries
	// to register every file with the runtime's netpoller (four fcntl and
	// an epoll_ctl that fails for /proc files), per task and per call.
	name := "/proc/" + strconv.Itoa(pid) + "/mem"
	fd, err := unix.Open(name, flag|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(name, flag|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return &Mem{pid: pid, f: os.NewFile(uintptr(fd), name)}, nil
}

// Close closes the file.
func (m *Mem) Close() error { return m.f.Close() }

// Read fills buf from addr, looping over short reads. A read that makes
// no progress (unmapped address) is an error naming pid and address.
func (m *Mem) Read(addr uint64, buf []byte) error { return m.read(addr, buf, unix.Pread) }

// ReadRaw is Read through internal/rawio: for a goroutine that has its P
// to itself, as the dump's page copy workers do.
func (m *Mem) ReadRaw(addr uint64, buf []byte) error { return m.read(addr, buf, rawio.Pread) }

func (m *Mem) read(addr uint64, buf []byte, pread func(int, []byte, int64) (int, error)) error {
	for done := 0; done < len(buf); {
		n, err := pread(int(m.f.Fd()), buf[done:], int64(addr+uint64(done)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return m.err("read", addr+uint64(done), len(buf)-done, os.NewSyscallError("pread", err))
		}
		if n == 0 {
			return m.err("read", addr+uint64(done), len(buf)-done, io.ErrUnexpectedEOF)
		}
		done += n
	}
	runtime.KeepAlive(m.f) // the raw fd must outlive the loop
	return nil
}

// Write writes data at addr, looping over short writes. Through
// /proc/PID/mem the kernel writes with FOLL_FORCE, so read-only private
// pages (text) can be written too.
func (m *Mem) Write(addr uint64, data []byte) error {
	for done := 0; done < len(data); {
		n, err := unix.Pwrite(int(m.f.Fd()), data[done:], int64(addr+uint64(done)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return m.err("write", addr+uint64(done), len(data)-done, os.NewSyscallError("pwrite", err))
		}
		if n == 0 {
			return m.err("write", addr+uint64(done), len(data)-done, io.ErrShortWrite)
		}
		done += n
	}
	runtime.KeepAlive(m.f) // the raw fd must outlive the loop
	return nil
}

func (m *Mem) err(op string, addr uint64, n int, err error) error {
	return &TaskError{TID: m.pid, Op: fmt.Sprintf("%s %d bytes at %#x of", op, n, addr), Err: err}
}

// ReadMem and WriteMem access pid's memory through /proc/PID/mem (works on
// read-only and PROT_NONE private pages). Each call opens the file; use
// OpenMem for many accesses.
func ReadMem(pid int, addr uint64, buf []byte) error {
	m, err := OpenMem(pid, false)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Read(addr, buf)
}

// WriteMem writes data at addr of pid through /proc/PID/mem.
func WriteMem(pid int, addr uint64, data []byte) error {
	m, err := OpenMem(pid, true)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Write(addr, data)
}

var syscallInsn = []byte{0x0f, 0x05}

// FindSyscallInsn returns the address of a `syscall` instruction (0f 05)
// inside [start, end) of pid's memory (e.g. the vdso), or an error
// wrapping ErrNoSyscallInsn. The bytes may straddle no instruction
// boundary that matters: executing them only needs the two bytes.
func FindSyscallInsn(pid int, start, end uint64) (uint64, error) {
	if end <= start+1 {
		return 0, &TaskError{TID: pid, Op: fmt.Sprintf("find syscall in [%#x,%#x) of", start, end), Err: ErrNoSyscallInsn}
	}
	m, err := OpenMem(pid, false)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	// A vdso is two pages: a buffer of the range's size, not a whole
	// chunk (a fresh 1 MiB costs 256 page faults, milliseconds per task).
	const chunk = 1 << 20
	buf := make([]byte, min(end-start, chunk))
	for addr := start; addr < end-1; {
		n := min(end-addr, chunk)
		if err := m.Read(addr, buf[:n]); err != nil {
			return 0, err
		}
		if i := bytes.Index(buf[:n], syscallInsn); i >= 0 {
			return addr + uint64(i), nil
		}
		addr += n - 1 // keep the last byte: the pair may straddle chunks
	}
	return 0, &TaskError{TID: pid, Op: fmt.Sprintf("find syscall in [%#x,%#x) of", start, end), Err: ErrNoSyscallInsn}
}

// iovMax is IOV_MAX: the most iovecs one process_vm_readv/writev takes.
const iovMax = 1024

// ReadVM copies remote ranges into local buffers with process_vm_readv in
// batches of up to IOV_MAX; remote[i] and local[i] have the same length.
// A partial transfer is continued from where it stopped; one that makes
// no progress is an error naming pid and the remote address.
func ReadVM(pid int, local [][]byte, remote []unix.RemoteIovec) error {
	return vm(pid, local, remote, false, false)
}

// ReadVMRaw is ReadVM through internal/rawio: for a goroutine that has its
// P to itself, as the dump's page copy workers do.
func ReadVMRaw(pid int, local [][]byte, remote []unix.RemoteIovec) error {
	return vm(pid, local, remote, false, true)
}

// WriteVMRaw is WriteVM through internal/rawio, as ReadVMRaw is ReadVM:
// for the restore's page writer.
func WriteVMRaw(pid int, local [][]byte, remote []unix.RemoteIovec) error {
	return vm(pid, local, remote, true, true)
}

// WriteVM copies local buffers into remote ranges with process_vm_writev,
// like ReadVM. It needs the remote pages to be writable (unlike WriteMem).
func WriteVM(pid int, local [][]byte, remote []unix.RemoteIovec) error {
	return vm(pid, local, remote, true, false)
}

// ReadVMAt reads one remote range at addr into buf (ReadVM).
func ReadVMAt(pid int, addr uint64, buf []byte) error {
	return ReadVM(pid, [][]byte{buf}, []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}})
}

// WriteVMAt writes data to one remote range at addr (WriteVM).
func WriteVMAt(pid int, addr uint64, data []byte) error {
	return WriteVM(pid, [][]byte{data}, []unix.RemoteIovec{{Base: uintptr(addr), Len: len(data)}})
}

func vm(pid int, local [][]byte, remote []unix.RemoteIovec, write, raw bool) error {
	name := "process_vm_readv"
	if write {
		name = "process_vm_writev"
	}
	if len(local) != len(remote) {
		return &TaskError{TID: pid, Op: name, Err: fmt.Errorf("%d local and %d remote iovecs", len(local), len(remote))}
	}
	for i := range local {
		if len(local[i]) != remote[i].Len {
			return &TaskError{TID: pid, Op: name, Err: fmt.Errorf("iovec %d: local %d bytes, remote %d bytes at %#x",
				i, len(local[i]), remote[i].Len, remote[i].Base)}
		}
	}
	liov := make([]unix.Iovec, 0, iovMax)
	riov := make([]unix.RemoteIovec, 0, iovMax)
	i, off := 0, 0 // next pair to move, and how much of it is done
	for {
		for i < len(local) && off == len(local[i]) {
			i, off = i+1, 0
		}
		if i == len(local) {
			return nil
		}
		liov, riov = liov[:0], riov[:0]
		for j := i; j < len(local) && len(liov) < iovMax; j++ {
			o := 0
			if j == i {
				o = off
			}
			if len(local[j]) == o {
				continue
			}
			l := unix.Iovec{Base: &local[j][o]}
			l.SetLen(len(local[j]) - o)
			liov = append(liov, l)
			riov = append(riov, unix.RemoteIovec{Base: remote[j].Base + uintptr(o), Len: remote[j].Len - o})
		}
		var n int
		var err error
		switch {
		case write && raw:
			n, err = rawio.ProcessVMWritev(pid, liov, riov)
		case write:
			n, err = unix.ProcessVMWritev(pid, liov, riov, 0)
		case raw:
			n, err = rawio.ProcessVMReadv(pid, liov, riov)
		default:
			n, err = unix.ProcessVMReadv(pid, liov, riov, 0)
		}
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			} else {
				err = os.NewSyscallError(name, err)
			}
			return &TaskError{TID: pid, Op: fmt.Sprintf("%s at %#x of", name, remote[i].Base+uintptr(off)), Err: err}
		}
		// Advance over n bytes; zero-length pairs were skipped above and
		// are skipped here by the loop at the top.
		for n > 0 {
			if rest := len(local[i]) - off; n < rest {
				off += n
				n = 0
			} else {
				n -= rest
				i, off = i+1, 0
				for i < len(local) && len(local[i]) == 0 {
					i++
				}
			}
		}
	}
}
