package dump

import (
	"fmt"

	"github.com/mmcr/mmcr/image"
)

// openEnd is an fd that may share its open file description with other
// fds of the tree: a pipe end, a regular file, directory or device.
type openEnd struct {
	pid    int
	fd     *image.FD
	target string // the fd's link, for errors
}

// joinOpen gives e the OpenID of the open file description it shares
// (kcmp) with an fd met before on the same file or pipe (key), or a new
// one. firsts holds, per key, the first fd of each description met.
func (d *dumper) joinOpen(firsts map[uint64][]openEnd, key uint64, e openEnd) error {
	for _, o := range firsts[key] {
		same, err := sameFile(o.pid, o.fd.Num, e.pid, e.fd.Num)
		if err != nil {
			return taskErr(e.pid, "dump fds", fmt.Errorf("fd %d (%s): compare with fd %d of %d: %w", e.fd.Num, e.target, o.fd.Num, o.pid, err))
		}
		if same {
			e.fd.OpenID = o.fd.OpenID
			return nil
		}
	}
	d.nextOpen++
	e.fd.OpenID = d.nextOpen
	firsts[key] = append(firsts[key], e)
	return nil
}

// resolveFileOpens finds which fds of regular files, directories, devices,
// eventfds, signalfds and timerfds share an open file description (a dup, or an fd inherited
// by fork): restore shares it again, its offset or counter with it.
func (d *dumper) resolveFileOpens() error {
	firsts := map[uint64][]openEnd{}
	for _, e := range d.fileEnds {
		if err := d.joinOpen(firsts, uint64(e.fd.FileID), e); err != nil {
			return err
		}
	}
	// Eventfds, signalfds and timerfds are of one anonymous inode: one
	// key for all (kcmp tells their descriptions apart).
	const anonInode = 0
	for _, e := range d.madeEnds {
		if err := d.joinOpen(firsts, anonInode, e); err != nil {
			return err
		}
	}
	return nil
}
