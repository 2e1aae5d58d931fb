package restore

import (
	"strings"
	"testing"
)

// TestRestoreMremapped dumps private anonymous VMAs that mremap moved
// next to their like (read-write and read-only pairs) and checks the
// restored maps keep them apart, as the kernel did (restoreDumped
// compares the maps), and their data. Restore merged each pair into one
// VMA before.
func TestRestoreMremapped(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "mremapped"))
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
