package dump

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestParseLimitsSelf: /proc/self/limits says what getrlimit says.
func TestParseLimitsSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Skip(err)
	}
	lims, err := parseLimits(b)
	if err != nil {
		t.Fatal(err)
	}
	for res := range numRlimits {
		var want unix.Rlimit
		if err := unix.Getrlimit(res, &want); err != nil {
			t.Fatal(err)
		}
		if lims[res] != want {
			t.Errorf("%s: parsed %+v, getrlimit %+v", limitNames[res], lims[res], want)
		}
	}
}

func TestParseLimitsBad(t *testing.T) {
	for _, in := range []string{
		"",
		"Limit                     Soft Limit           Hard Limit           Units\n",
		"Limit\nMax cpu time              lots                 unlimited            seconds\n",
		"Limit\nMax cpu time\n",
	} {
		if _, err := parseLimits([]byte(in)); !errors.Is(err, errLimits) {
			t.Errorf("parseLimits(%q) = %v, want errLimits", in, err)
		}
	}
}

// FuzzParseLimits: any input gives limits or an error wrapping errLimits,
// never a panic. Seeded with this machine's /proc/self/limits.
func FuzzParseLimits(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lims, err := parseLimits(b)
		if (err == nil) == (lims == nil) {
			t.Fatalf("parseLimits: limits %v and error %v", lims, err)
		}
		if err != nil && !errors.Is(err, errLimits) {
			t.Fatalf("error %v does not wrap errLimits", err)
		}
		if err == nil && len(lims) != numRlimits {
			t.Fatalf("%d limits", len(lims))
		}
	})
}
