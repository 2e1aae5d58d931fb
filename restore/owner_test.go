package restore

import (
	"strings"
	"testing"
)

// TestRestoreFDOwners dumps a tree whose pipes and socket pair have owners
// (F_SETOWN_EX: the parent, or a child for a description both hold), a
// signal (F_SETSIG) and O_ASYNC. The image holds each owner; the restored
// tasks find them through fcntl, and data coming in signals the owner
// again (SIGUSR1 with si_fd in the parent, SIGIO in the child). Before,
// owners and O_ASYNC were lost (nginx's channels came back without them).
func TestRestoreFDOwners(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "owner"))
	owners := 0
	for _, task := range d.tree.Tasks {
		for _, fd := range task.FDs {
			if fd.Owner != nil {
				owners++
			}
		}
	}
	// Parent: pipe a, pipe b, the socket; child: the same socket (and the
	// pipes it inherited).
	if owners < 4 {
		t.Errorf("%d fds with an owner in the image, want at least 4", owners)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
