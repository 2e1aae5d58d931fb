package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Status reads /proc/PID/status.
func (fs FS) Status(pid int) (Status, error) {
	name := fs.path(pid, "status")
	b, err := readFile(name)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b, name)
}

// ParseStatus parses the text of /proc/PID/status. Lines it does not use
// are skipped; a used line that does not parse is an error.
func ParseStatus(b []byte, name string) (Status, error) {
	var st Status
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Split(scanLinesKeepCR)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Name":
			// The name is printed with escapes for '\n' and '\\'.
			st.Name = unescapeStatusName(val)
		case "State":
			if val == "" {
				err = ErrParse
			} else {
				st.State = val[0]
			}
		case "Tgid":
			st.Tgid, err = strconv.Atoi(val)
		case "PPid":
			st.PPid, err = strconv.Atoi(val)
		case "Umask":
			var v uint64
			v, err = strconv.ParseUint(val, 8, 32)
			st.Umask = uint32(v)
		case "Uid":
			err = parseIDs(val, &st.UID)
		case "Gid":
			err = parseIDs(val, &st.GID)
		case "Groups":
			st.Groups = nil
			for _, g := range strings.Fields(val) {
				var v uint64
				if v, err = strconv.ParseUint(g, 10, 32); err != nil {
					break
				}
				st.Groups = append(st.Groups, uint32(v))
			}
		case "NSpid":
			st.NSpid = nil
			for _, p := range strings.Fields(val) {
				var v int
				if v, err = strconv.Atoi(p); err != nil {
					break
				}
				st.NSpid = append(st.NSpid, v)
			}
		case "Threads":
			st.Threads, err = strconv.Atoi(val)
		case "SigPnd":
			st.SigPnd, err = strconv.ParseUint(val, 16, 64)
		case "ShdPnd":
			st.ShdPnd, err = strconv.ParseUint(val, 16, 64)
		case "SigBlk":
			st.SigBlk, err = strconv.ParseUint(val, 16, 64)
		case "SigIgn":
			st.SigIgn, err = strconv.ParseUint(val, 16, 64)
		case "SigCgt":
			st.SigCgt, err = strconv.ParseUint(val, 16, 64)
		case "CapInh":
			st.CapInh, err = strconv.ParseUint(val, 16, 64)
		case "CapPrm":
			st.CapPrm, err = strconv.ParseUint(val, 16, 64)
		case "CapEff":
			st.CapEff, err = strconv.ParseUint(val, 16, 64)
		case "CapBnd":
			st.CapBnd, err = strconv.ParseUint(val, 16, 64)
		case "CapAmb":
			st.CapAmb, err = strconv.ParseUint(val, 16, 64)
		case "NoNewPrivs":
			var v int
			v, err = strconv.Atoi(val)
			st.NoNewPrivs = v != 0
		case "Seccomp":
			st.Seccomp, err = strconv.Atoi(val)
		case "THP_enabled":
			var v int
			v, err = strconv.Atoi(val)
			st.THPDisabled = v == 0
		case "VmLck":
			var ok bool
			if st.VmLck, ok = parseSize(val); !ok {
				err = ErrParse
			}
		}
		if err != nil {
			return Status{}, fmt.Errorf("%s: %w: %s %q", name, ErrParse, key, val)
		}
	}
	return st, nil
}

// parseIDs parses the four tab-separated ids of a Uid or Gid line.
func parseIDs(val string, dst *[4]uint32) error {
	f := strings.Fields(val)
	if len(f) != 4 {
		return ErrParse
	}
	for i, s := range f {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return err
		}
		dst[i] = uint32(v)
	}
	return nil
}

func unescapeStatusName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\n`, "\n", `\\`, `\`)
	return r.Replace(s)
}

// ThreadStatus reads /proc/PID/task/TID/status: SigPnd and SigBlk there
// are the thread's own (the process file shows the leader's).
func (fs FS) ThreadStatus(pid, tid int) (Status, error) {
	name := fs.path(pid, "task", strconv.Itoa(tid), "status")
	b, err := readFile(name)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b, name)
}
