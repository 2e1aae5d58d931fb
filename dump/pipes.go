package dump

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// pipeEnd is a pipe descriptor met while collecting fds; what it becomes
// is decided once every task's fds are known (resolvePipes).
type pipeEnd struct {
	openEnd
	ino  uint64
	fifo uint32 // a FIFO's file; 0 for a pipe
}

// kind names the end's pipe in errors.
func (p pipeEnd) kind() string {
	if p.fifo != 0 {
		return "FIFO"
	}
	return "pipe"
}

// resolvePipes decides what each pipe descriptor of the tree is. A pipe
// of the tree's alone is dumped, with its capacity and unread bytes, and
// its fds with the open file description each shares with the fds before
// it (joinOpen), so that restore makes as many descriptions, each with its
// flags. Any other pipe is not the tree's: as fd 0-2 it is the task's
// stdio, for which restore hands its own (external); as another fd it is
// refused (pipeOwner says why).
func (d *dumper) resolvePipes() error {
	if len(d.pipeEnds) == 0 {
		return nil
	}
	inTree := make(map[int]bool, len(d.order))
	for _, pid := range d.order {
		inTree[pid] = true
	}
	ends := map[uint64][2]bool{} // the ends the tree holds, read and write
	for _, p := range d.pipeEnds {
		e := ends[p.ino]
		switch p.fd.Flags & unix.O_ACCMODE {
		case unix.O_RDONLY:
			e[0] = true
		case unix.O_WRONLY:
			e[1] = true
		default: // a reopen read-write holds both
			e[0], e[1] = true, true
		}
		ends[p.ino] = e
	}
	// Only a pipe the tree holds both ends of needs the walk of every
	// process's fds (a poll cannot count a third holder); the common one,
	// a task's stdout to its supervisor, does not.
	wanted := map[string]uint64{} // by fd link: pipe:[ino], or the FIFO's path
	for _, p := range d.pipeEnds {
		if e := ends[p.ino]; e[0] && e[1] || fifoReader(p, e) {
			wanted[p.target] = p.ino
		}
	}
	var outside map[uint64]int
	if len(wanted) > 0 {
		var err error
		if outside, err = pipeHolders(wanted, inTree); err != nil {
			return err
		}
	}
	notOurs := map[uint64]string{} // why a pipe is not the tree's ("": it is)
	pipes := map[uint64]*image.Pipe{}
	firsts := map[uint64][]openEnd{} // per pipe inode, the first fd of each open file description
	for _, p := range d.pipeEnds {
		why, seen := notOurs[p.ino]
		if !seen {
			why = pipeOwner(p, ends[p.ino], outside)
			notOurs[p.ino] = why
		}
		if why != "" {
			if p.fd.Num <= 2 {
				p.fd.Kind, p.fd.ExternalType = image.FDExternal, "pipe"
				if p.fifo != 0 {
					p.fd.ExternalType = "FIFO"
				}
				continue
			}
			if _, named := outside[p.ino]; !named {
				// Refused: worth a walk of every process's fds to name
				// the holder the poll saw.
				if found, err := pipeHolders(map[string]uint64{p.target: p.ino}, inTree); err == nil && found[p.ino] != 0 {
					why = fmt.Sprintf("that process %d outside the tree also holds", found[p.ino])
				}
			}
			return taskErr(p.pid, "dump fds", fmt.Errorf("fd %d is a %s (%s) %s: %w", p.fd.Num, p.kind(), p.target, why, ErrUnsupported))
		}
		pipe := pipes[p.ino]
		if pipe == nil {
			var err error
			if pipe, err = readPipe(p); err != nil {
				return taskErr(p.pid, "dump fds", err)
			}
			pipe.ID, pipe.FileID = uint32(len(d.tree.Pipes)+1), p.fifo
			d.tree.Pipes = append(d.tree.Pipes, pipe)
			pipes[p.ino] = pipe
		}
		if p.fd.Flags&unix.O_DIRECT != 0 && len(pipe.Data) > 0 {
			return taskErr(p.pid, "dump fds", fmt.Errorf("fd %d is a packet-mode %s (%s) holding %d bytes (the packet bounds are not kept): %w",
				p.fd.Num, p.kind(), p.target, len(pipe.Data), ErrUnsupported))
		}
		p.fd.PipeID = pipe.ID
		if err := d.joinOpen(firsts, p.ino, p.openEnd); err != nil {
			return err
		}
	}
	return nil
}

// pipeOwner says why the pipe of p is not the tree's alone, or "" when it
// is: the tree holds one end while nobody holds the other (a new open of
// the pipe by mmcr polls POLLHUP: no writer, or POLLERR: no reader), or
// both ends while no process outside holds it, as far as pipeHolders
// could see (outside; nil when it did not look), as for a FIFO's read end
// (fifoReader). The poll sees what the walk cannot: processes mmcr may not
// look at, or of other pid namespaces.
func pipeOwner(p pipeEnd, ends [2]bool, outside map[uint64]int) string {
	if holder, ok := outside[p.ino]; ok {
		return fmt.Sprintf("that process %d outside the tree also holds", holder)
	}
	if ends[0] && ends[1] || fifoReader(p, ends) {
		return "" // nobody outside, as far as the walk saw
	}
	mode, gone, other := unix.O_RDONLY, int16(unix.POLLHUP), "write"
	if ends[1] {
		mode, gone, other = unix.O_WRONLY, unix.POLLERR, "read"
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", p.pid, p.fd.Num), mode|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ENXIO && mode == unix.O_WRONLY {
		return "" // a FIFO with no reader: a writer's open fails so
	}
	if err != nil {
		return fmt.Sprintf("that mmcr cannot open to look at its %s end (%v)", other, err)
	}
	defer unix.Close(fd)
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	if _, err := unix.Poll(pfd, 0); err != nil {
		return fmt.Sprintf("whose %s end mmcr cannot poll (%v)", other, err)
	}
	if pfd[0].Revents&gone == 0 {
		return fmt.Sprintf("whose %s end a process outside the tree holds", other)
	}
	return ""
}

// fifoReader says whether p is of a FIFO the tree holds only the read end
// of. Its writers cannot be told by a poll (a FIFO's new reader sees no
// POLLHUP before a writer comes): the walk of every process's fds decides.
func fifoReader(p pipeEnd, ends [2]bool) bool { return p.fifo != 0 && ends[0] && !ends[1] }

// pipeHolders walks every process's fds but the tree's and returns, for
// each pipe in wanted (its fd link, pipe:[ino] or a FIFO's path: its
// inode) that one holds, the pid of one holder, by inode. It sees the
// processes it may look at, of its pid namespace; those that exit
// meanwhile are skipped.
func pipeHolders(wanted map[string]uint64, skip map[int]bool) (map[uint64]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	found := map[uint64]int{}
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		dir := "/proc/" + e.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			target, err := os.Readlink(dir + fd.Name())
			if err != nil {
				continue
			}
			if ino, ok := wanted[target]; ok {
				found[ino] = pid
			}
		}
	}
	return found, nil
}

// readPipe reads a pipe's capacity and its unread bytes without taking
// them: through a new reader of it (/proc/PID/fd/N), tee() copies them
// into a pipe of mmcr's as large, which mmcr reads.
func readPipe(p pipeEnd) (*image.Pipe, error) {
	fail := func(what string, err error) (*image.Pipe, error) {
		return nil, fmt.Errorf("fd %d is a %s (%s): %s: %w", p.fd.Num, p.kind(), p.target, what, err)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", p.pid, p.fd.Num), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fail("open", err)
	}
	defer f.Close()
	src := int(f.Fd())
	size, err := unix.FcntlInt(uintptr(src), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return fail("capacity", err)
	}
	pipe := &image.Pipe{Ino: uint32(p.ino), Size: uint32(size)}
	n, err := unix.IoctlGetInt(src, unix.TIOCINQ) // FIONREAD
	if err != nil {
		return fail("bytes unread", err)
	}
	if n == 0 {
		return pipe, nil
	}
	var mine [2]int
	if err := unix.Pipe2(mine[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fail("pipe", err)
	}
	defer unix.Close(mine[0])
	defer unix.Close(mine[1])
	if _, err := unix.FcntlInt(uintptr(mine[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return fail(fmt.Sprintf("a pipe of %d bytes to copy it into", size), err)
	}
	copied, err := unix.Tee(src, mine[1], size, unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return fail("tee", err)
	}
	if copied != int64(n) {
		return fail("tee", fmt.Errorf("copied %d of its %d bytes", copied, n))
	}
	pipe.Data = make([]byte, n)
	for got := 0; got < n; {
		k, err := unix.Read(mine[0], pipe.Data[got:])
		if err != nil || k == 0 {
			return fail("read its copy", errors.Join(err, fmt.Errorf("%d of %d bytes", got, n)))
		}
		got += k
	}
	return pipe, nil
}
