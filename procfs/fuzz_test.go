package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func addFile(f *testing.F, name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

// formatMaps writes m back as a maps line.
func formatMaps(m Mapping) string {
	perms := []byte("---p")
	for i, c := range "rwx" {
		if m.Prot&(1<<i) != 0 {
			perms[i] = byte(c)
		}
	}
	if m.Shared {
		perms[3] = 's'
	}
	return fmt.Sprintf("%x-%x %s %08x %02x:%02x %d %s\n", m.Start, m.End, perms, m.Pgoff, m.DevMajor, m.DevMinor, m.Ino, m.Path)
}

func FuzzParseSmaps(f *testing.F) {
	addFile(f, "testdata/proc/4242/smaps")
	if b, err := os.ReadFile("/proc/self/maps"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("1000-2000 rw-p 00000000 00:00 0 \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseSmaps(bytes.NewReader(b), "fuzz")
		if err != nil {
			if ms != nil || !errors.Is(err, ErrParse) {
				t.Fatalf("error %v with value %v, or not ErrParse", err, ms)
			}
			return
		}
		var again strings.Builder
		for i, m := range ms {
			if m.Start >= m.End || i > 0 && ms[i-1].End > m.Start {
				t.Fatalf("bad mapping order %+v", ms)
			}
			if strings.HasPrefix(m.Path, " ") || strings.ContainsAny(m.Path, "\n") {
				t.Fatalf("path %q", m.Path)
			}
			again.WriteString(formatMaps(m))
		}
		ms2, err := ParseSmaps(strings.NewReader(again.String()), "again")
		if err != nil {
			t.Fatalf("reparse: %v\n%s", err, again.String())
		}
		for i := range ms {
			ms[i].VmFlags, ms[i].Rss, ms[i].Anonymous, ms[i].Swap, ms[i].KernelPageSize = nil, 0, 0, 0, 0
		}
		if !reflect.DeepEqual(ms, ms2) {
			t.Fatalf("round trip\n%+v\n%+v", ms, ms2)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	addFile(f, "testdata/proc/4242/stat")
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b, "fuzz")
		if err != nil {
			if st != (Stat{}) || !errors.Is(err, ErrParse) {
				t.Fatalf("error %v with value %+v, or not ErrParse", err, st)
			}
			return
		}
		if !strings.Contains(string(b), "("+st.Comm+")") {
			t.Fatalf("comm %q not in input", st.Comm)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	addFile(f, "testdata/proc/4242/status")
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b, "fuzz")
		if err != nil && (!errors.Is(err, ErrParse) || !reflect.DeepEqual(st, Status{})) {
			t.Fatalf("error %v with value %+v, or not ErrParse", err, st)
		}
	})
}

func FuzzParseFdinfo(f *testing.F) {
	addFile(f, "testdata/proc/4242/fdinfo/5")
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd FD
		if err := parseFdinfo(b, &fd); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("error %v not ErrParse", err)
		}
	})
}
