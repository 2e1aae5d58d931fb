package restore

import (
	"slices"
	"strings"
	"testing"

	"github.com/mmcr/mmcr/image"
)

// TestRestoreSharedEpoll: an epoll a parent shares with its child (fork)
// and a dup comes back as one epoll: what the child registers after the
// restore, the parent sees through its dup. The child closed a target's
// fd since the fork: the parent registers the targets.
func TestRestoreSharedEpoll(t *testing.T) {
	needRoot(t)
	d := dumpWorkload(t, false, buildC(t, "epollshared"))
	var holders, withTargets int
	for _, task := range d.tree.Tasks {
		for _, fd := range task.FDs {
			if fd.Kind == image.FDEpoll {
				holders++
				if fd.OpenID == 0 {
					t.Errorf("task %d fd %d: epoll not shared in the image", task.PID, fd.Num)
				}
				if slices.ContainsFunc(fd.Epoll, func(tg image.EpollTarget) bool { return tg.Data == 0xabc }) {
					withTargets++
				}
			}
		}
	}
	if holders != 4 || withTargets != 4 { // parent and child, each an fd and its dup
		t.Errorf("image: %d epoll fds, %d listing the eventfd; want 4 and 4", holders, withTargets)
	}
	code, out := restoreDumped(t, d)
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("restored workload: exit %d, output %q", code, out)
	}
}
