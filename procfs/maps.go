package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mappings reads /proc/PID/smaps: every VMA, sorted by Start.
func (fs FS) Mappings(pid int) ([]Mapping, error) {
	name := fs.path(pid, "smaps")
	f, err := openProc(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSmaps(f, name)
}

// Maps reads /proc/PID/maps: like Mappings without VmFlags and counters,
// and cheaper for the kernel (no page walk).
func (fs FS) Maps(pid int) ([]Mapping, error) {
	name := fs.path(pid, "maps")
	f, err := openProc(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSmaps(f, name)
}

// scanLinesKeepCR is bufio.ScanLines without its dropping of a "\r" before
// each newline: the kernel prints a path as it is, and one may end in
// "\r" (bufio.ScanLines would name another file).
func scanLinesKeepCR(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// ParseSmaps parses the text of /proc/PID/smaps (or /proc/PID/maps, which
// is smaps without the key lines). name is used in errors only.
func ParseSmaps(r io.Reader, name string) ([]Mapping, error) {
	var (
		out  []Mapping
		cur  *Mapping
		line int
	)
	sc := bufio.NewScanner(r)
	sc.Split(scanLinesKeepCR)
	// A maps line holds a path of up to PATH_MAX plus the fixed columns.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line++
		text := sc.Text()
		if isMapsHeader(text) {
			m, err := parseMapsLine(text)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", name, line, err)
			}
			if n := len(out); n > 0 && out[n-1].End > m.Start {
				return nil, fmt.Errorf("%s line %d: %w: mapping %x-%x overlaps or precedes %x-%x",
					name, line, ErrParse, m.Start, m.End, out[n-1].Start, out[n-1].End)
			}
			out = append(out, m)
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s line %d: %w: %q before the first mapping", name, line, ErrParse, text)
		}
		if err := parseSmapsKey(cur, text); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		// A line beyond 1 MiB is not something the kernel writes.
		return nil, fmt.Errorf("%s line %d: %w: %w", name, line+1, ErrParse, err)
	}
	return out, nil
}

// isMapsHeader says whether a line starts with "hex-hex ": key lines of
// smaps start with a word and a colon instead.
func isMapsHeader(s string) bool {
	i := 0
	for i < len(s) && isHex(s[i]) {
		i++
	}
	return i > 0 && i < len(s) && s[i] == '-'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// nextField cuts s at the first space: (field, rest).
func nextField(s string) (string, string) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// parseMapsLine parses "start-end perms offset major:minor inode   path".
// The path is everything after the inode and the padding, spaces included.
func parseMapsLine(s string) (Mapping, error) {
	var m Mapping
	bad := func(what string) (Mapping, error) {
		return Mapping{}, fmt.Errorf("%w: bad %s in maps line %q", ErrParse, what, s)
	}
	rng, rest := nextField(s)
	perms, rest := nextField(rest)
	off, rest := nextField(rest)
	dev, rest := nextField(rest)
	ino, rest := nextField(rest)

	lo, hi, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("range")
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return bad("start")
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil || m.End <= m.Start {
		return bad("end")
	}
	if len(perms) != 4 {
		return bad("perms")
	}
	for i, want := range [3]byte{'r', 'w', 'x'} {
		switch perms[i] {
		case want:
			m.Prot |= [3]uint32{unix.PROT_READ, unix.PROT_WRITE, unix.PROT_EXEC}[i]
		case '-':
		default:
			return bad("perms")
		}
	}
	switch perms[3] {
	case 's':
		m.Shared = true
	case 'p':
	default:
		return bad("perms")
	}
	if m.Pgoff, err = strconv.ParseUint(off, 16, 64); err != nil {
		return bad("offset")
	}
	maj, min, ok := strings.Cut(dev, ":")
	if !ok {
		return bad("device")
	}
	v, err := strconv.ParseUint(maj, 16, 32)
	if err != nil {
		return bad("device")
	}
	m.DevMajor = uint32(v)
	if v, err = strconv.ParseUint(min, 16, 32); err != nil {
		return bad("device")
	}
	m.DevMinor = uint32(v)
	if m.Ino, err = strconv.ParseUint(ino, 10, 64); err != nil {
		return bad("inode")
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

// parseSmapsKey applies one "Key: value" line of smaps to m. Unknown keys
// are ignored: the kernel adds new ones now and then.
func parseSmapsKey(m *Mapping, s string) error {
	key, val, ok := strings.Cut(s, ":")
	if !ok || key == "" || strings.ContainsAny(key, " \t") {
		return fmt.Errorf("%w: bad smaps line %q", ErrParse, s)
	}
	var dst *uint64
	switch key {
	case "VmFlags":
		m.VmFlags = strings.Fields(val)
		return nil
	case "Rss":
		dst = &m.Rss
	case "Anonymous":
		dst = &m.Anonymous
	case "Swap":
		dst = &m.Swap
	case "KernelPageSize":
		dst = &m.KernelPageSize
	default:
		return nil
	}
	n, ok := parseSize(val)
	if !ok {
		return fmt.Errorf("%w: bad %s value in %q", ErrParse, key, s)
	}
	*dst = n
	return nil
}

// parseSize parses a size of smaps or status ("1234 kB", or a bare
// count) into bytes.
func parseSize(val string) (uint64, bool) {
	num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || (unit != "kB" && unit != "") {
		return 0, false
	}
	if unit == "kB" {
		if n > math.MaxUint64>>10 {
			return 0, false
		}
		n <<= 10
	}
	return n, true
}

// Deleted says whether the path column ends in " (deleted)": the file was
// unlinked (or, for "/dev/zero (deleted)", it is a shared anon object).
func (m *Mapping) Deleted() bool { return strings.HasSuffix(m.Path, " (deleted)") }

// PathName is Path without a " (deleted)" suffix.
func (m *Mapping) PathName() string { return strings.TrimSuffix(m.Path, " (deleted)") }

// HasFlag says whether VmFlags holds f ("gd", "dd", ...).
func (m *Mapping) HasFlag(f string) bool {
	for _, v := range m.VmFlags {
		if v == f {
			return true
		}
	}
	return false
}

// readFile reads a small /proc file whole.
func readFile(name string) ([]byte, error) {
	b, err := readAll(name)
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(b, "\x00"), nil
}
