package dump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/internal/rawio"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// Pages are copied by a pool of workers and one writer, as many
// goroutines in all as the CPUs mmcr may use (one worker at least). The
// dumping thread only cuts the page runs to dump into chunks; a worker
// takes a chunk, reads it into a buffer (process_vm_readv, /proc/PID/mem or
// pread), drops its zero pages and checksums it while it is still in that
// CPU's cache, and hands it to the writer, which writes it into the pages
// file. The writes have their own goroutine because the kernel serializes
// writes to one file (tmpfs takes the inode lock): a worker that wrote
// itself would wait, spinning, for the other's write instead of reading
// the next chunk.
//
// The reads and writes are raw syscalls (internal/rawio), which keep their
// goroutine's P: with ordinary ones, sysmon took the P from every 50-150
// µs call and the goroutine had to win one back, a cost of 30-40 % of a
// 1 GiB dump on the README's guest. That is why the pool has no more
// goroutines than Ps: one more would wait for preemption to run.
//
// The pages file stays in address order: the chunks of one PageWriter take
// their place in it (PageWriter.Reserve) one after the other, each waiting
// for the previous chunk's turn; the writes then go to those places.

const (
	// chunkSize bounds the bytes of one chunk: small enough to stay in a
	// CPU's cache between the read and the write.
	chunkSize = 512 << 10
	// maxIovecs bounds the runs of one chunk (IOV_MAX, one readv).
	maxIovecs = 1024
	// queuedChunks bounds the chunks cut ahead of the workers: 128 MiB of
	// pages, and at most ~1.5 MiB of run lists (a chunk holds at most 128
	// runs, each of a page at least).
	queuedChunks = 256
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

// pageSource fills the data of a chunk's runs.
type pageSource interface {
	read(w *copyWorker, runs []chunkRun) error
}

// chunkRun is a page-aligned run of addresses (of a task, or offsets into
// a shared object) to copy.
type chunkRun struct {
	addr     uint64
	n        int
	keepZero bool   // keep zero pages (COW pages of a private file mapping)
	viaMem   bool   // read through /proc/PID/mem (unreadable VMA)
	data     []byte // the worker's buffer, once read
}

// chunk is up to chunkSize bytes of runs of one stream.
type chunk struct {
	s     *pageStream
	runs  []chunkRun
	bytes int
	turn  <-chan struct{} // closed once the previous chunk has reserved its place
	done  chan struct{}   // closed once this one has (or never will)
	// Set by the worker for the writer:
	buf   []byte
	store [][]byte // the data to store, in the order reserved
	pos   int64    // where it goes in the pages file
	pages uint64
}

// copyPool is the dump's page-copy workers and writer.
type copyPool struct {
	chunks chan *chunk
	// The cutting side runs far ahead, and once it has filled chunks it
	// waits until the workers have taken three quarters of them: a wait
	// for every chunk (a plain send on a full channel) cost a wakeup of
	// its goroutine per chunk, and the runtime's attempts to steal it
	// from the worker's P (a sleep each) as many more context switches.
	drainMu  sync.Mutex
	drained  *sync.Cond
	draining atomic.Bool // the cutting side waits for drained
	writes   chan *chunk // read, filtered and reserved: to be written
	bufs     chan []byte // free chunk buffers
	// made counts the buffers made so far: they are made on demand, up
	// to cap(bufs), so that a small dump populates no more than it uses.
	made atomic.Int32
	wg   sync.WaitGroup
}

// newCopyPool starts n workers; n <= 0 means one per CPU but the writer's,
// at least one and at most 4.
func newCopyPool(n int) *copyPool {
	if n <= 0 {
		n = max(1, min(runtime.GOMAXPROCS(0)-1, 4))
	}
	// A buffer per worker, one being written and one queued for the writer.
	nbuf := n + 2
	p := &copyPool{chunks: make(chan *chunk, queuedChunks), writes: make(chan *chunk, nbuf), bufs: make(chan []byte, nbuf)}
	p.drained = sync.NewCond(&p.drainMu)
	var workers sync.WaitGroup
	for range n {
		w := &copyWorker{pool: p}
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c := range p.chunks {
				if p.draining.Load() && len(p.chunks) <= cap(p.chunks)/4 {
					p.drainMu.Lock()
					p.drained.Broadcast()
					p.drainMu.Unlock()
				}
				w.copy(c)
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, ok := rawio.Recv(p.writes)
			if !ok {
				break
			}
			c.write()
			p.bufs <- c.buf
			c.s.pending.Done()
		}
	}()
	go func() {
		workers.Wait()
		close(p.writes)
	}()
	return p
}

// buffer returns a free chunk buffer, making one while fewer than
// cap(bufs) exist.
func (p *copyPool) buffer() []byte {
	select {
	case b := <-p.bufs:
		return b
	default:
	}
	for n := p.made.Load(); n < int32(cap(p.bufs)); n = p.made.Load() {
		if p.made.CompareAndSwap(n, n+1) {
			return populated(chunkSize)
		}
	}
	b, _ := rawio.Recv(p.bufs)
	return b
}

// close stops the workers and the writer once every chunk sent is done.
func (p *copyPool) close() {
	close(p.chunks)
	p.wg.Wait()
}

// pageStream is the chunks going into one PageWriter, cut by one goroutine
// (add, finish) and copied by the pool.
type pageStream struct {
	pool     *copyPool
	pw       *image.PageWriter
	src      pageSource
	canceled func() error // checked before each chunk is handed over
	cur      *chunk
	last     chan struct{} // done of the last chunk handed over
	pending  sync.WaitGroup
	failed   atomic.Bool
	mu       sync.Mutex
	err      error // the first error of any chunk
	pages    atomic.Uint64
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p *copyPool) stream(pw *image.PageWriter, src pageSource, canceled func() error) *pageStream {
	return &pageStream{pool: p, pw: pw, src: src, canceled: canceled, last: closedChan}
}

func (s *pageStream) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.failed.Store(true)
}

// errStoreFailed stops the cutting side early; finish returns the real error.
var errStoreFailed = errors.New("storing pages failed")

// add queues [addr, addr+n) (page-aligned) for copying.
func (s *pageStream) add(addr, n uint64, keepZero, viaMem bool) error {
	for n > 0 {
		if s.cur != nil && (s.cur.bytes == chunkSize || len(s.cur.runs) == maxIovecs) {
			if err := s.send(); err != nil {
				return err
			}
		}
		if s.cur == nil {
			s.cur = &chunk{s: s}
		}
		k := min(n, uint64(chunkSize-s.cur.bytes))
		s.cur.runs = append(s.cur.runs, chunkRun{addr: addr, n: int(k), keepZero: keepZero, viaMem: viaMem})
		s.cur.bytes += int(k)
		addr += k
		n -= k
	}
	return nil
}

// send hands the chunk being cut to the pool.
func (s *pageStream) send() error {
	c := s.cur
	s.cur = nil
	if c == nil || len(c.runs) == 0 {
		return nil
	}
	if s.failed.Load() {
		return errStoreFailed
	}
	if s.canceled != nil {
		if err := s.canceled(); err != nil {
			return err
		}
	}
	c.turn, c.done = s.last, make(chan struct{})
	s.last = c.done
	s.pending.Add(1)
	s.pool.queue(c)
	return nil
}

// queue hands c to the workers; when they have a full queue it first
// waits for them to take most of it.
func (p *copyPool) queue(c *chunk) {
	select {
	case p.chunks <- c:
		return
	default:
	}
	p.drainMu.Lock()
	p.draining.Store(true)
	for len(p.chunks) > cap(p.chunks)/4 {
		p.drained.Wait()
	}
	p.draining.Store(false)
	p.drainMu.Unlock()
	p.chunks <- c
}

// finish hands over the last chunk (unless err, the cutting side's own
// error, says to stop), waits for every chunk and returns the pages stored
// and the first error.
func (s *pageStream) finish(err error) (uint64, error) {
	if err == nil {
		err = s.send()
	}
	s.cur = nil
	if err != nil {
		// The chunks still queued (up to queuedChunks) are passed over,
		// not copied: a canceled dump stops now.
		s.failed.Store(true)
	}
	s.pending.Wait()
	s.mu.Lock()
	serr := s.err
	s.mu.Unlock()
	if serr != nil && (err == nil || errors.Is(err, errStoreFailed)) {
		err = serr
	}
	return s.pages.Load(), err
}

// copyWorker is one worker's scratch slices.
type copyWorker struct {
	pool  *copyPool
	local [][]byte
	iov   []unix.RemoteIovec
	keep  []image.Range
}

// copy reads, filters, checksums c and reserves its place, then hands it
// to the writer. Whatever happens it passes the turn on: the stream's
// later chunks wait for it.
func (w *copyWorker) copy(c *chunk) {
	s := c.s
	toWriter := false
	turnPassed := false
	defer func() {
		if r := recover(); r != nil {
			s.setErr(fmt.Errorf("internal error copying pages: %v", r))
			toWriter = false
		}
		if !turnPassed {
			<-c.turn
			close(c.done)
		}
		if !toWriter {
			if c.buf != nil {
				w.pool.bufs <- c.buf
			}
			s.pending.Done()
		}
	}()
	if s.failed.Load() {
		return
	}
	c.buf = w.pool.buffer()
	off := 0
	for i := range c.runs {
		c.runs[i].data = c.buf[off : off+c.runs[i].n]
		off += c.runs[i].n
	}
	if err := s.src.read(w, c.runs); err != nil {
		s.setErr(err)
		return
	}
	sum := w.filter(c)

	<-c.turn
	var err error
	if s.failed.Load() {
		err = errStoreFailed
	} else {
		c.pos, err = s.pw.Reserve(w.keep, sum)
	}
	close(c.done)
	turnPassed = true
	if err != nil {
		if !errors.Is(err, errStoreFailed) {
			s.setErr(c.errorf(err))
		}
		return
	}
	toWriter = true
	w.pool.writes <- c
}

// write stores c's data at its place in the pages file. A panic becomes
// the stream's error: on this goroutine it would end mmcr mid-dump.
func (c *chunk) write() {
	s := c.s
	defer func() {
		if r := recover(); r != nil {
			s.setErr(fmt.Errorf("internal error writing pages: %v", r))
		}
	}()
	if s.failed.Load() {
		return
	}
	if err := s.pw.WriteAt(c.store, c.pos); err != nil {
		s.setErr(c.errorf(err))
		return
	}
	s.pages.Add(c.pages)
}

func (c *chunk) errorf(err error) error {
	last := c.runs[len(c.runs)-1]
	return fmt.Errorf("store pages %#x-%#x: %w", c.runs[0].addr, last.addr+uint64(last.n), err)
}

// filter sets w.keep and c.store to the pages of c to store, zero pages
// left out where allowed, and c.pages to their count; it returns their
// checksum.
//
// A zero page need not be stored where restore creates the memory afresh
// (anonymous VMAs and shared objects): an absent page reads as zeros. It
// matters on kernels that never map the shared zero page (here:
// pvm_no_zero_page=1), where a page that was only ever read is a real,
// present page full of zeros.
func (w *copyWorker) filter(c *chunk) uint32 {
	w.keep, c.store, c.pages = w.keep[:0], c.store[:0], 0
	var sum uint32
	keep := func(addr uint64, data []byte) {
		sum = image.CRC32C(sum, data)
		c.pages += uint64(len(data)) / image.PageSize
		if n := len(w.keep); n > 0 && w.keep[n-1].End == addr {
			w.keep[n-1].End += uint64(len(data))
			last := c.store[n-1]
			c.store[n-1] = last[:len(last)+len(data)] // data follows last in the buffer
			return
		}
		w.keep = append(w.keep, image.Range{Start: addr, End: addr + uint64(len(data))})
		c.store = append(c.store, data)
	}
	for _, r := range c.runs {
		if r.keepZero {
			keep(r.addr, r.data)
			continue
		}
		start := -1 // first page of the current non-zero stretch
		for off := 0; off < len(r.data); off += image.PageSize {
			if isZeroPage(r.data[off : off+image.PageSize]) {
				if start >= 0 {
					keep(r.addr+uint64(start), r.data[start:off])
					start = -1
				}
			} else if start < 0 {
				start = off
			}
		}
		if start >= 0 {
			keep(r.addr+uint64(start), r.data[start:])
		}
	}
	return sum
}

var zeroPage [image.PageSize]byte

// isZeroPage reports a page of zeros. Most pages that are not zero say so
// in their first word, which spares reading them whole here.
func isZeroPage(p []byte) bool {
	if binary.LittleEndian.Uint64(p) != 0 {
		return false
	}
	return bytes.Equal(p, zeroPage[:])
}

// taskMemory reads a task's pages: process_vm_readv, or, when mem is set,
// /proc/PID/mem. process_vm_readv pins the pages it reads, and pinning a
// page still shared copy-on-write copies it (the kernel unshares anonymous
// pages for a read-only pin): dumping a tree that way would break the very
// sharing dump records (cowDeduper) and double the tree's memory.
// /proc/PID/mem reads through a plain reference and leaves it shared.
type taskMemory struct {
	pid int
	mem *ptrace.Mem
}

func (t taskMemory) read(w *copyWorker, runs []chunkRun) error {
	w.local, w.iov = w.local[:0], w.iov[:0]
	for _, r := range runs {
		if t.mem != nil || r.viaMem {
			if err := t.readMem(r); err != nil {
				return err
			}
			continue
		}
		w.local = append(w.local, r.data)
		w.iov = append(w.iov, unix.RemoteIovec{Base: uintptr(r.addr), Len: len(r.data)})
	}
	if len(w.iov) == 0 {
		return nil
	}
	if err := ptrace.ReadVMRaw(t.pid, w.local, w.iov); err != nil {
		// A page may refuse process_vm_readv (e.g. a guard); /proc/PID/mem
		// reads what the kernel can, one run at a time.
		for i, v := range w.iov {
			if merr := ptrace.ReadMem(t.pid, uint64(v.Base), w.local[i]); merr != nil {
				return fmt.Errorf("read pages %#x-%#x: %w (process_vm_readv: %v)",
					v.Base, uint64(v.Base)+uint64(v.Len), merr, err)
			}
		}
	}
	return nil
}

func (t taskMemory) readMem(r chunkRun) error {
	var err error
	if t.mem != nil {
		err = t.mem.ReadRaw(r.addr, r.data)
	} else {
		err = ptrace.ReadMem(t.pid, r.addr, r.data)
	}
	if err != nil {
		return fmt.Errorf("read pages %#x-%#x: %w", r.addr, r.addr+uint64(len(r.data)), err)
	}
	return nil
}

// objectFile reads a shared object's pages from its file (addresses are
// offsets); bytes past the end of the file read as zeros, as they do in
// the mapping.
type objectFile struct{ f *os.File }

func (o objectFile) read(_ *copyWorker, runs []chunkRun) error {
	fd := int(o.f.Fd())
	for _, r := range runs {
		got := 0
		for got < len(r.data) {
			n, err := rawio.Pread(fd, r.data[got:], int64(r.addr)+int64(got))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("read %#x-%#x: %w", r.addr, r.addr+uint64(len(r.data)), os.NewSyscallError("pread", err))
			}
			if n == 0 {
				break // end of file
			}
			got += n
		}
		clear(r.data[got:])
	}
	runtime.KeepAlive(o.f) // the raw fd must outlive the reads
	return nil
}
