package dump

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/mmcr/mmcr/image"
	"golang.org/x/sys/unix"
)

// Pages are copied in two stages that overlap on two cores: the dumping
// goroutine reads pages into a buffer (process_vm_readv, /proc/PID/mem or
// pread), and a store goroutine drops zero pages, checksums and writes the
// buffer to the image while the next one is read. The buffers are few and
// small so that what was just read is still in cache when it is stored.

const (
	// copyBufSize is the size of each page buffer.
	copyBufSize = 1 << 20
	// copyBufs is how many buffers are in flight.
	copyBufs = 3
)

// populated returns a buffer of n bytes mapped with MAP_POPULATE: a page
// fault costs here far more than the kernel's filling of the pages at mmap.
// Buffers are never unmapped: a dump makes them once.
func populated(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return make([]byte, n)
	}
	return b
}

// pageBatch is one buffer and the runs copied into it, in address order.
type pageBatch struct {
	buf  []byte
	runs []batchRun
	used int // bytes of buf taken by runs
}

type batchRun struct {
	addr     uint64
	data     []byte // a slice of buf
	keepZero bool   // keep zero pages (COW pages of a private file mapping)
	viaMem   bool   // read through /proc/PID/mem (unreadable VMA)
}

func (b *pageBatch) reset() { b.runs, b.used = b.runs[:0], 0 }

// room is how many bytes more fit.
func (b *pageBatch) room() int { return len(b.buf) - b.used }

// take appends a run of n bytes at addr and returns it.
func (b *pageBatch) take(addr uint64, n int, keepZero, viaMem bool) {
	b.runs = append(b.runs, batchRun{addr: addr, data: b.buf[b.used : b.used+n], keepZero: keepZero, viaMem: viaMem})
	b.used += n
}

// storePipe stores batches into one PageWriter on its own goroutine, in
// the order they are put.
type storePipe struct {
	pw     *image.PageWriter
	free   chan *pageBatch
	full   chan *pageBatch
	done   chan struct{}
	closed bool
	failed atomic.Bool // the store goroutine met an error: stop reading
	err    error       // the store goroutine's error; read after done
	pages  uint64      // pages stored; read after done
}

// errStoreFailed stops the reading side; close returns the real error.
var errStoreFailed = errors.New("storing pages failed")

func newStorePipe(pw *image.PageWriter, bufs [][]byte) *storePipe {
	p := &storePipe{pw: pw, free: make(chan *pageBatch, len(bufs)), full: make(chan *pageBatch, len(bufs)),
		done: make(chan struct{})}
	for _, b := range bufs {
		p.free <- &pageBatch{buf: b}
	}
	go p.run()
	return p
}

func (p *storePipe) run() {
	defer close(p.done)
	for b := range p.full {
		if p.err == nil {
			if p.err = p.storeBatch(b); p.err != nil {
				p.failed.Store(true)
			}
		}
		b.reset()
		p.free <- b
	}
}

// storeBatch stores b's runs. A panic becomes an error: on this goroutine
// it would end the process before Run could detach the tree.
func (p *storePipe) storeBatch(b *pageBatch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error storing pages: %v", r)
		}
	}()
	for _, r := range b.runs {
		if err := p.store(r); err != nil {
			return fmt.Errorf("store pages %#x-%#x: %w", r.addr, r.addr+uint64(len(r.data)), err)
		}
	}
	return nil
}

func (p *storePipe) store(r batchRun) error {
	if r.keepZero {
		if err := p.pw.Add(r.addr, r.data); err != nil {
			return err
		}
		p.pages += uint64(len(r.data)) / image.PageSize
		return nil
	}
	n, err := addNonZero(p.pw, r.addr, r.data)
	p.pages += n
	return err
}

// get returns an empty batch to fill.
func (p *storePipe) get() (*pageBatch, error) {
	if p.failed.Load() {
		return nil, errStoreFailed
	}
	return <-p.free, nil
}

// put hands a filled batch over; an empty one goes back to the free list.
func (p *storePipe) put(b *pageBatch) {
	if len(b.runs) == 0 {
		p.free <- b
		return
	}
	p.full <- b
}

// close waits until every batch put is stored and returns the number of
// pages stored and the store error, if any. It may be called more than once.
func (p *storePipe) close() (uint64, error) {
	if !p.closed {
		p.closed = true
		close(p.full)
	}
	<-p.done
	return p.pages, p.err
}
