package check

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestRunOnThisKernel runs every probe for real. The machines mmcr is
// developed and tested on have every required feature, so a required probe
// failing here is a bug in the probe (or a broken machine).
func TestRunOnThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("probes need root (ptrace, map_files)")
	}
	var out bytes.Buffer
	ok := Run(&out)
	t.Logf("\n%s", out.String())
	if !ok {
		t.Fatal("a required probe failed")
	}
	for _, p := range Probes() {
		if !strings.Contains(out.String(), p.Name) {
			t.Errorf("no line for probe %q", p.Name)
		}
	}
	if !strings.HasSuffix(out.String(), "Looks good.\n") {
		t.Error("verdict line missing")
	}
}
