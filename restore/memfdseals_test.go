package restore

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreMemfdSeals dumps memfds with seals (write, shrink and grow;
// future write, over a writable mapping made before it; the F_SEAL_SEAL
// of a memfd made without MFD_ALLOW_SEALING), a mode and an owner of
// their own, and checks the restored task finds each as it was: its
// seals, what they forbid and what they let be, its mode and owner.
func TestRestoreMemfdSeals(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "memfdseals"))
	want := map[string]uint32{
		"sealed": unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE,
		"plain":  unix.F_SEAL_SEAL,
		"future": unix.F_SEAL_FUTURE_WRITE,
	}
	for _, o := range d.tree.SharedObjects {
		if w, ok := want[o.Name]; !ok || o.Seals != w {
			t.Errorf("memfd %q in the image: seals %#x, want %#x", o.Name, o.Seals, w)
		}
		if o.Name == "plain" && (o.Mode != 0o640 || o.UID != 1234 || o.GID != 5678) {
			t.Errorf("memfd plain in the image: mode %#o owner %d:%d, want 0640 1234:5678", o.Mode, o.UID, o.GID)
		}
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
