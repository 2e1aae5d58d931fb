package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// A syscall batch runs many syscalls in a stopped thread for one ptrace
// round trip (PTRACE_CONT and one wait) instead of one round trip each: a
// small loop, written once into the tracee (BatchCode), walks a table of
// entries {nr, six arguments, result} and stops after the last entry or
// the first failing one.
//
// How the loop stops matters. An int3 would raise a forced SIGTRAP, and
// the kernel resets the action of a forced signal that is blocked or
// ignored to SIG_DFL (force_sig_info_to_task): the task would lose its
// SIGTRAP handler for good. So the loop ends by sending itself SIGTRAP
// with tgkill, an ordinary signal: with SIGTRAP the only unblocked signal
// while the batch runs, the thread stops in its signal-delivery-stop right
// after that tgkill (a traced task is stopped even for a signal it
// ignores), and resuming it with signal 0 discards the SIGTRAP. The int3
// after the tgkill is never reached; it only guards against running on.
//
// A SIGTRAP the thread already had pending would be delivered (and lost)
// before the loop started; then each entry is run on its own instead,
// stepped with PTRACE_SYSCALL through the loop's syscall instruction, as
// Remote.Syscall does: slower, same result.

// batchCode is the loop. rbx points to the table, r12 holds the entry
// count.
//
//	loop: test r12, r12     ; jz done
//	      mov rax, [rbx]    ; mov rdi, [rbx+8] ; mov rsi, [rbx+16]
//	      mov rdx, [rbx+24] ; mov r10, [rbx+32]; mov r8, [rbx+40]
//	      mov r9, [rbx+48]  ; syscall          ; mov [rbx+56], rax
//	      cmp rax, -4095    ; jae done
//	      add rbx, 64       ; dec r12          ; jmp loop
//	done: mov eax, 39 (getpid)  ; syscall ; mov r13, rax
//	      mov eax, 186 (gettid) ; syscall ; mov rsi, rax ; mov rdi, r13
//	      mov edx, 5 (SIGTRAP)  ; mov eax, 234 (tgkill) ; syscall
//	stop: int3
//
// At the stop r12 is 0 when every entry ran, else the number of entries
// left, counting the failed one.
var batchCode = []byte{
	0x4d, 0x85, 0xe4, 0x74, 0x32, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08,
	0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20,
	0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f, 0x05, 0x48, 0x89,
	0x43, 0x38, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x09, 0x48, 0x83,
	0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc9, 0xb8, 0x27, 0x00, 0x00, 0x00,
	0x0f, 0x05, 0x49, 0x89, 0xc5, 0xb8, 0xba, 0x00, 0x00, 0x00, 0x0f, 0x05,
	0x48, 0x89, 0xc6, 0x4c, 0x89, 0xef, 0xba, 0x05, 0x00, 0x00, 0x00, 0xb8,
	0xea, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xcc,
}

const (
	outSlotOff      = 48   // an entry's sixth argument: AddOut's answer
	batchSyscallOff = 0x20 // the loop's syscall instruction
	batchStopOff    = 0x5a // the int3: rip at the SIGTRAP of a finished batch
)

// BatchEntrySize is the size of one table entry: the syscall number, six
// arguments and the result the loop writes back, 8 bytes each.
const BatchEntrySize = 64

// BatchCode returns the loop's machine code (x86-64), to be written into
// the tracee at an executable address: BatchArea.Code.
func BatchCode() []byte { return append([]byte(nil), batchCode...) }

// BatchArea says where a batch runs in the tracee: Code holds BatchCode
// (executable), Table has room for Max entries and is writable by the
// tracee itself (the loop stores results there).
type BatchArea struct {
	Code  uint64
	Table uint64
	Max   int
}

// Batch is a list of syscalls that need no result from each other, run
// in order by RunBatch or Remote.RunBatch. The zero value is empty.
type Batch struct {
	ops []batchOp
	err error // from Add, returned by the run
}

type batchOp struct {
	nr   uintptr
	args [6]uint64
	what string // names the syscall in errors: "rt_sigaction(5)"
	ret  uint64 // after a run
	// outArg, when not 0, is 1 + the index of an argument that points
	// to the entry's own sixth argument (AddOut); out is what the
	// syscall stored there.
	outArg int
	out    uint64
}

// Add appends syscall nr with up to six arguments; what names it in
// errors. It returns the entry's index for Result.
func (b *Batch) Add(what string, nr uintptr, args ...uint64) int {
	if len(args) > 6 && b.err == nil {
		b.err = fmt.Errorf("batch entry %s: %d arguments, at most 6", what, len(args))
	}
	o := batchOp{nr: nr, what: what}
	copy(o.args[:], args)
	b.ops = append(b.ops, o)
	return len(b.ops) - 1
}

// AddOut appends syscall nr, which takes at most five arguments and
// stores up to 8 bytes of answer where its argument outArg points: that
// argument is set to the address of the entry's own unused sixth
// argument, so that thousands of such queries need no answer area of
// their own. Out returns the answer.
func (b *Batch) AddOut(what string, nr uintptr, outArg int, args ...uint64) int {
	if (len(args) > 5 || outArg < 0 || outArg >= 5) && b.err == nil {
		b.err = fmt.Errorf("batch entry %s: %d arguments with the answer at %d, at most 5", what, len(args), outArg)
	}
	i := b.Add(what, nr, args...)
	b.ops[i].outArg = outArg + 1
	return i
}

// Out returns what entry i (added with AddOut) stored in the last run.
func (b *Batch) Out(i int) uint64 { return b.ops[i].out }

// Len returns the number of entries.
func (b *Batch) Len() int { return len(b.ops) }

// Result returns what entry i returned in the last run (the raw value:
// -errno for a failure; 0 for an entry that did not run).
func (b *Batch) Result(i int) uint64 { return b.ops[i].ret }

// Reset empties the batch.
func (b *Batch) Reset() { b.ops, b.err = b.ops[:0], nil }

// BatchError is the first failing syscall of a batch; the entries after
// it did not run. It unwraps to the *SyscallError (and so to the errno).
type BatchError struct {
	What  string
	Index int
	Err   *SyscallError
}

func (e *BatchError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *BatchError) Unwrap() error { return e.Err }

// RunBatch runs b in stopped thread tid, at most area.Max entries per
// round trip, starting from the thread's current registers; registers and
// signal mask are put back afterwards, also after a failure. The first
// failing syscall is a *BatchError; the results of the entries before it
// are in b.
func RunBatch(tid int, area BatchArea, b *Batch) (err error) {
	saved, err := GetRegs(tid)
	if err != nil {
		return err
	}
	defer func() {
		if serr := SetRegs(tid, &saved); serr != nil && err == nil {
			err = serr
		}
	}()
	_, err = runBatch(tid, area, b, saved)
	return err
}

// RunBatch runs b in r's thread like the package-level RunBatch, starting
// from the registers the last remote syscall left (see Syscall); the
// next Syscall or Restore sets the registers again, so they are not put
// back here. The signal mask is.
func (r *Remote) RunBatch(area BatchArea, b *Batch) error {
	if r.done {
		return &TaskError{TID: r.TID, Op: "remote syscall batch", Err: ErrRemoteDone}
	}
	if r.Allow != nil {
		for _, o := range b.ops {
			if err := r.Allow(o.nr, o.args); err != nil {
				return &TaskError{TID: r.TID, Op: "remote " + o.what, Err: err}
			}
		}
	}
	out, err := runBatch(r.TID, area, b, r.last)
	if out != nil {
		r.last = *out
	}
	return err
}

// runBatch runs b from registers start and returns the registers at the
// end (nil when the thread's registers are unknown).
func runBatch(tid int, area BatchArea, b *Batch, start unix.PtraceRegs) (end *unix.PtraceRegs, err error) {
	if b.err != nil {
		return nil, &TaskError{TID: tid, Op: "remote syscall batch", Err: b.err}
	}
	if area.Max < 1 {
		return nil, &TaskError{TID: tid, Op: "remote syscall batch", Err: fmt.Errorf("table of %d entries", area.Max)}
	}
	if len(b.ops) == 0 {
		return nil, nil
	}
	mask, err := GetSigMask(tid)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := SetSigMask(tid, mask); serr != nil && err == nil {
			err = serr
		}
	}()
	pending, err := sigPending(tid, unix.SIGTRAP)
	if err != nil {
		return nil, err
	}
	regs := start
	if pending {
		if err := SetSigMask(tid, ^uint64(0)); err != nil {
			return nil, err
		}
		return stepBatch(tid, area, b.ops, regs)
	}
	if err := SetSigMask(tid, ^uint64(0)&^SigBit(unix.SIGTRAP)); err != nil {
		return nil, err
	}
	buf := make([]byte, min(len(b.ops), area.Max)*BatchEntrySize)
	for base := 0; base < len(b.ops); {
		n := min(len(b.ops)-base, area.Max)
		out, err := runChunk(tid, area, b.ops[base:base+n], base, regs, buf)
		if err != nil {
			return out, err
		}
		regs = *out
		base += n
	}
	return &regs, nil
}

// runChunk runs ops (at most area.Max; base is the index of the first)
// with one PTRACE_CONT.
func runChunk(tid int, area BatchArea, ops []batchOp, base int, regs unix.PtraceRegs, buf []byte) (*unix.PtraceRegs, error) {
	le := binary.LittleEndian
	buf = buf[:len(ops)*BatchEntrySize]
	for i, o := range ops {
		e := buf[i*BatchEntrySize:]
		le.PutUint64(e, uint64(o.nr))
		for j, a := range o.args {
			le.PutUint64(e[8+8*j:], a)
		}
		if o.outArg != 0 {
			le.PutUint64(e[8+8*(o.outArg-1):], area.Table+uint64(i*BatchEntrySize)+outSlotOff)
			le.PutUint64(e[outSlotOff:], 0)
		}
		le.PutUint64(e[56:], 0)
	}
	if err := writeTracee(tid, area.Table, buf); err != nil {
		return nil, err
	}
	regs.Rip = area.Code
	regs.Rbx, regs.R12 = area.Table, uint64(len(ops))
	regs.Orig_rax = ^uint64(0) // no syscall restart on the way out of this stop
	regs.Eflags &^= 0x100      // TF: no single-step trap on the way
	if err := SetRegs(tid, &regs); err != nil {
		return nil, err
	}
	var st Stop
	for {
		if err := Cont(tid, 0); err != nil {
			return nil, err
		}
		var err error
		if st, err = Wait(tid); err != nil {
			return nil, fmt.Errorf("remote syscall batch: %w", err)
		}
		if st.Event() == 0 {
			break
		}
		// A group-stop or interrupt on the way: go on.
	}
	if !st.IsSignalDelivery() || st.Signal() != unix.SIGTRAP {
		return nil, newStopError(tid, st, "end of remote syscall batch")
	}
	out, err := GetRegs(tid)
	if err != nil {
		return nil, err
	}
	if out.Rip != area.Code+batchStopOff || out.R12 > uint64(len(ops)) {
		return &out, &StopError{TID: tid, Stop: st, Want: "end of remote syscall batch", Regs: &out}
	}
	if err := readTracee(tid, area.Table, buf); err != nil {
		return &out, err
	}
	for i := range ops {
		ops[i].ret = le.Uint64(buf[i*BatchEntrySize+56:])
		if ops[i].outArg != 0 {
			ops[i].out = le.Uint64(buf[i*BatchEntrySize+outSlotOff:])
		}
	}
	if out.R12 != 0 {
		k := len(ops) - int(out.R12)
		return &out, batchErr(tid, ops[k], base+k)
	}
	return &out, nil
}

// stepBatch runs ops one by one through the loop's syscall instruction,
// each with its own round trip, stopping at the first failure.
func stepBatch(tid int, area BatchArea, ops []batchOp, regs unix.PtraceRegs) (*unix.PtraceRegs, error) {
	var slot [8]byte
	for k := range ops {
		args := ops[k].args
		if ops[k].outArg != 0 {
			// The table's first entry is free here: its sixth argument
			// takes the answer.
			args[ops[k].outArg-1] = area.Table + outSlotOff
			if err := writeTracee(tid, area.Table+outSlotOff, slot[:]); err != nil {
				return nil, err
			}
		}
		out, err := stepSyscall(tid, regs, area.Code+batchSyscallOff, ops[k].nr, args)
		if err != nil {
			return nil, err
		}
		regs = out
		ops[k].ret = out.Rax
		if ops[k].outArg != 0 {
			var ans [8]byte
			if err := readTracee(tid, area.Table+outSlotOff, ans[:]); err != nil {
				return nil, err
			}
			ops[k].out = binary.LittleEndian.Uint64(ans[:])
		}
		if v := int64(out.Rax); v >= -4095 && v <= -1 {
			return &regs, batchErr(tid, ops[k], k)
		}
	}
	return &regs, nil
}

// batchErr is the error of entry o, at index k of the batch.
func batchErr(tid int, o batchOp, k int) error {
	v := int64(o.ret)
	if v < -4095 || v > -1 {
		return &TaskError{TID: tid, Op: "remote syscall batch",
			Err: fmt.Errorf("stopped at entry %d (%s) which returned %#x, not an error", k, o.what, o.ret)}
	}
	return &BatchError{What: o.what, Index: k, Err: &SyscallError{TID: tid, Nr: o.nr, Err: unix.Errno(-v)}}
}

// SigBit is signal sig's bit in a signal mask.
func SigBit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// sigPending says whether sig is queued for thread tid, in its own queue
// or its process's.
func sigPending(tid int, sig unix.Signal) (bool, error) {
	for _, shared := range []bool{false, true} {
		infos, err := PeekSigInfo(tid, shared)
		if err != nil {
			return false, err
		}
		for _, si := range infos {
			if unix.Signal(binary.LittleEndian.Uint32(si[:4])) == sig {
				return true, nil
			}
		}
	}
	return false, nil
}

// writeTracee and readTracee move a batch table: process_vm_writev/readv
// (no file to open), or /proc/PID/mem where those are refused.
func writeTracee(tid int, addr uint64, data []byte) error {
	err := WriteVMAt(tid, addr, data)
	if err != nil {
		if merr := WriteMem(tid, addr, data); merr != nil {
			return errors.Join(err, merr)
		}
	}
	return nil
}

func readTracee(tid int, addr uint64, buf []byte) error {
	err := ReadVMAt(tid, addr, buf)
	if err != nil {
		if merr := ReadMem(tid, addr, buf); merr != nil {
			return errors.Join(err, merr)
		}
	}
	return nil
}
