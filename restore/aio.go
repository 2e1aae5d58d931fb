package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
)

// An AIO context (io_setup) is restored the way CRIU does it: its dumped
// ring comes back first as private memory at its place (mapVMA, then
// writePages), then the task makes a new context of the same size, the
// kernel's count of completions is brought to the dumped tail by as many
// requests that complete at once (1-byte writes to /dev/null), the dumped
// head and events are put into the new ring, and the ring moves over the
// copy: the context's id is its ring's address, the one the task holds.

// The header of a ring (struct aio_ring of the kernel's fs/aio.c) and the
// request restoreAIO submits (struct iocb of linux/aio_abi.h).
const (
	aioHeaderSize = 32 // the events follow
	aioHeadOff    = 8  // head, then tail
	ioEventSize   = 32
	iocbSize      = 64
	iocbCmdPwrite = 1
	iocbOpcodeOff = 16
	iocbFildesOff = 20
	iocbBufOff    = 24
	iocbNbytesOff = 32
)

// restoreAIO makes tk's AIO contexts again, once its pages are written.
func (rs *restorer) restoreAIO(tk *task) error {
	for _, ring := range tk.t.Mm.AIORings {
		if err := rs.restoreAIORing(tk, ring); err != nil {
			return fmt.Errorf("task %d: AIO context %#x: %w", tk.t.PID, ring.Addr, err)
		}
	}
	return nil
}

func (rs *restorer) restoreAIORing(tk *task, ring image.AIORing) error {
	pid := tk.t.PID
	le := binary.LittleEndian
	old := make([]byte, ring.Len)
	if err := ptrace.ReadVMAt(pid, ring.Addr, old); err != nil {
		return fmt.Errorf("read the dumped ring: %w", err)
	}
	nr, head, tail := le.Uint32(old[4:]), le.Uint32(old[aioHeadOff:]), le.Uint32(old[aioHeadOff+4:])
	if uint64(nr) != (ring.Len-aioHeaderSize)/ioEventSize || head >= nr || tail >= nr {
		return fmt.Errorf("dumped ring of %d bytes says %d events, head %d, tail %d", ring.Len, nr, head, tail)
	}

	s := rs.newScratch()
	ctxp := s.u64s(0) // io_setup wants *ctxp == 0
	if err := s.write(pid); err != nil {
		return err
	}
	if _, err := tk.sys(unix.SYS_IO_SETUP, uint64(ring.NrReq), ctxp); err != nil {
		return fmt.Errorf("io_setup(%d): %w", ring.NrReq, err)
	}
	var word [8]byte
	if err := ptrace.ReadVMAt(pid, ctxp, word[:]); err != nil {
		return err
	}
	ctx := le.Uint64(word[:])
	destroy := func(err error) error {
		tk.sys(unix.SYS_IO_DESTROY, ctx)
		return err
	}
	hdr := make([]byte, aioHeaderSize)
	if err := ptrace.ReadVMAt(pid, ctx, hdr); err != nil {
		return destroy(err)
	}
	if got := le.Uint32(hdr[4:]); got != nr {
		return destroy(fmt.Errorf("io_setup(%d) made a ring of %d events, the dump's had %d (more CPUs here?)", ring.NrReq, got, nr))
	}
	if head != 0 || tail != 0 {
		if err := rs.advanceAIOTail(tk, ctx, nr, head, tail); err != nil {
			return destroy(err)
		}
	}
	// The events and the head; the tail is the kernel's count, now the same.
	if err := ptrace.WriteVMAt(pid, ctx+aioHeaderSize, old[aioHeaderSize:]); err != nil {
		return destroy(err)
	}
	le.PutUint32(word[:4], head)
	if err := ptrace.WriteVMAt(pid, ctx+aioHeadOff, word[:4]); err != nil {
		return destroy(err)
	}
	got, err := tk.sys(unix.SYS_MREMAP, ctx, ring.Len, ring.Len, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, ring.Addr)
	if err != nil || got != ring.Addr {
		return destroy(fmt.Errorf("move the new ring from %#x: %v (at %#x)", ctx, err, got))
	}
	return nil
}

// advanceAIOTail completes requests on the new context ctx until the
// kernel's tail is the dumped one, reaping them by moving the ring's head
// along (as a reader of the ring in user space does), up to the dumped
// head: a tail behind the head takes a full turn of the ring first.
func (rs *restorer) advanceAIOTail(tk *task, ctx uint64, nr, head, tail uint32) error {
	pid := tk.t.PID
	fd, err := rs.remoteOpen(tk, "/dev/null", unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer tk.sys(unix.SYS_CLOSE, fd)
	count := uint64(tail)
	if tail < head {
		count += uint64(nr)
	}
	// One request, submitted many times: each is a 1-byte write (of the
	// ring's first byte) that /dev/null completes at once.
	s := rs.newScratch()
	iocb := make([]byte, iocbSize)
	binary.LittleEndian.PutUint16(iocb[iocbOpcodeOff:], iocbCmdPwrite)
	binary.LittleEndian.PutUint32(iocb[iocbFildesOff:], uint32(fd))
	binary.LittleEndian.PutUint64(iocb[iocbBufOff:], ctx)
	binary.LittleEndian.PutUint64(iocb[iocbNbytesOff:], 1)
	addr := s.add(iocb)
	per := min(uint64(nr-1), (scratchMax-iocbSize-8)/8)
	ptrs := make([]uint64, per)
	for i := range ptrs {
		ptrs[i] = addr
	}
	list := s.u64s(ptrs...)
	if err := s.write(pid); err != nil {
		return err
	}
	var word [4]byte
	for done := uint64(0); done < count; {
		n, err := tk.sys(unix.SYS_IO_SUBMIT, ctx, min(count-done, per), list)
		if err != nil || n == 0 {
			return fmt.Errorf("io_submit to bring the ring's tail to %d (%d of %d done): %v", tail, done, count, err)
		}
		done += n
		binary.LittleEndian.PutUint32(word[:], uint32(min(done, uint64(head))))
		if err := ptrace.WriteVMAt(pid, ctx+aioHeadOff, word[:]); err != nil {
			return err
		}
	}
	return nil
}
