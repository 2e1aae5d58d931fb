package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// SysVShm is one SysV shared memory segment of /proc/sysvipc/shm (the
// IPC namespace of the reader).
type SysVShm struct {
	Key  int32
	ID   int32
	Mode uint32 // permission bits, with SHM_DEST (01000) once removed
	Size uint64
	// Nattch is how many attachments the segment has.
	Nattch     uint64
	UID, GID   uint32
	CUID, CGID uint32
}

// SysVShmSegments reads /proc/sysvipc/shm.
func (fs FS) SysVShmSegments() ([]SysVShm, error) {
	name := filepath.Join(fs.Root, "sysvipc", "shm")
	b, err := readFile(name)
	if err != nil {
		return nil, err
	}
	return ParseSysVShm(b, name)
}

// ParseSysVShm parses the text of /proc/sysvipc/shm: a header line, then
// "key shmid perms size cpid lpid nattch uid gid cuid cgid ..." per
// segment (perms in octal).
func ParseSysVShm(b []byte, name string) ([]SysVShm, error) {
	var out []SysVShm
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Split(scanLinesKeepCR)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 11 {
			return nil, fmt.Errorf("%s: %w: %q", name, ErrParse, line)
		}
		var s SysVShm
		key, err1 := strconv.ParseInt(f[0], 10, 32)
		id, err2 := strconv.ParseInt(f[1], 10, 32)
		mode, err3 := strconv.ParseUint(f[2], 8, 32)
		size, err4 := strconv.ParseUint(f[3], 10, 64)
		nattch, err5 := strconv.ParseUint(f[6], 10, 64)
		var ids [4]uint64
		var errIDs error
		for i := range ids {
			if ids[i], errIDs = strconv.ParseUint(f[7+i], 10, 32); errIDs != nil {
				break
			}
		}
		for _, err := range []error{err1, err2, err3, err4, err5, errIDs} {
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %q", name, ErrParse, line)
			}
		}
		s.Key, s.ID, s.Mode, s.Size, s.Nattch = int32(key), int32(id), uint32(mode), size, nattch
		s.UID, s.GID, s.CUID, s.CGID = uint32(ids[0]), uint32(ids[1]), uint32(ids[2]), uint32(ids[3])
		out = append(out, s)
	}
	return out, sc.Err()
}
