package dump

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Namespaces are not dumped: restore makes every task in mmcr's own. A task
// in another namespace would come back changed without a word (another
// pid, hostname, network, mounts, IPC objects, user ids or clocks), so
// dump refuses it. The *_for_children links count too: a task that has
// unshared a pid or time namespace puts its next children there.
var nsKinds = []string{"pid", "pid_for_children", "mnt", "net", "ipc", "uts", "user", "cgroup", "time", "time_for_children"}

// ownNamespaces are mmcr's namespace links ("pid:[4026531836]"), by kind;
// a kind this kernel lacks is absent.
var ownNamespaces = sync.OnceValue(func() map[string]string {
	own := make(map[string]string, len(nsKinds))
	for _, kind := range nsKinds {
		if link, err := os.Readlink("/proc/self/ns/" + kind); err == nil {
			own[kind] = link
		}
	}
	return own
})

// checkNamespaces refuses pid unless it shares each of mmcr's namespaces.
func checkNamespaces(pid int) error {
	for _, kind := range nsKinds {
		own, ok := ownNamespaces()[kind]
		if !ok {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a link this kernel does not have for tasks
			}
			return fmt.Errorf("read its %s namespace: %w", kind, err)
		}
		if link != own {
			return fmt.Errorf("it is in another %s namespace than mmcr (%s, mmcr's %s), and namespaces are not dumped: %w",
				kind, link, own, ErrUnsupported)
		}
	}
	return nil
}
