package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/mmcr/mmcr/internal/kernel"
	"golang.org/x/sys/unix"
)

// ErrNoMapping: no VMA covers the address, nor any above it.
var ErrNoMapping = errors.New("procfs: no mapping at or above address")

// MappingAt returns the VMA that covers addr, or else the first one above
// it; ErrNoMapping when there is none. It asks PROCMAP_QUERY (Linux 6.11+)
// and parses /proc/PID/maps on older kernels. VmFlags and the counters are
// not filled.
func (fs FS) MappingAt(pid int, addr uint64) (Mapping, error) {
	name := fs.path(pid, "maps")
	if !kernel.HaveProcmapQuery() {
		ms, err := fs.MapsByQuery(pid)
		if err != nil {
			return Mapping{}, err
		}
		for _, m := range ms {
			if m.End > addr {
				return m, nil
			}
		}
		return Mapping{}, fmt.Errorf("%s at %x: %w", name, addr, ErrNoMapping)
	}
	f, err := openProc(name)
	if err != nil {
		return Mapping{}, err
	}
	defer f.Close()
	m, err := queryMapping(f, addr, make([]byte, 4096+64))
	if err != nil {
		return Mapping{}, fmt.Errorf("%s at %x: %w", name, addr, err)
	}
	return m, nil
}

// MapsByQuery lists every VMA with PROCMAP_QUERY, one ioctl per VMA and
// no text parsing; on kernels without it, it is Maps. The query does not
// see [vsyscall] (the gate area is no VMA of the mm), so neither list has
// it: it is the kernel's and never dumped.
func (fs FS) MapsByQuery(pid int) ([]Mapping, error) {
	if !kernel.HaveProcmapQuery() {
		ms, err := fs.Maps(pid)
		if n := len(ms); n > 0 && ms[n-1].Path == "[vsyscall]" {
			ms = ms[:n-1]
		}
		return ms, err
	}
	name := fs.path(pid, "maps")
	f, err := openProc(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 4096+64)
	var out []Mapping
	for addr := uint64(0); ; {
		m, err := queryMapping(f, addr, buf)
		if errors.Is(err, ErrNoMapping) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s at %x: %w", name, addr, err)
		}
		out = append(out, m)
		addr = m.End
	}
}

// queryMapping runs one PROCMAP_QUERY for the VMA covering addr or the next.
func queryMapping(f *os.File, addr uint64, name []byte) (Mapping, error) {
	q := kernel.ProcmapQuery{QueryFlags: kernel.ProcmapQueryCoveringOrNext, QueryAddr: addr}
	if err := kernel.ProcmapQueryIoctl(f, &q, name); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Mapping{}, ErrNoMapping
		}
		return Mapping{}, err
	}
	m := Mapping{
		Start:    q.VMAStart,
		End:      q.VMAEnd,
		Shared:   q.VMAFlags&kernel.ProcmapQueryVMAShared != 0,
		Pgoff:    q.VMAOffset,
		DevMajor: q.DevMajor,
		DevMinor: q.DevMinor,
		Ino:      q.Inode,
	}
	if q.VMAFlags&kernel.ProcmapQueryVMAReadable != 0 {
		m.Prot |= unix.PROT_READ
	}
	if q.VMAFlags&kernel.ProcmapQueryVMAWritable != 0 {
		m.Prot |= unix.PROT_WRITE
	}
	if q.VMAFlags&kernel.ProcmapQueryVMAExecutable != 0 {
		m.Prot |= unix.PROT_EXEC
	}
	if n := int(q.VMANameSize); n > 0 && n <= len(name) {
		if i := bytes.IndexByte(name[:n], 0); i >= 0 {
			n = i
		}
		m.Path = string(name[:n])
	}
	return m, nil
}
