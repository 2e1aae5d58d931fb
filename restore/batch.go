package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmcr/mmcr/ptrace"
)

// batchCode runs a table of syscalls in the task, one ptrace round trip
// for all of them. rbx points to the table, r12 holds the entry count; an
// entry is 8 words: nr, six arguments, result. It stops at the first
// error (result in [-4095, -1]) or at the end, on int3.
//
//	loop: test r12, r12     ; jz done
//	      mov rax, [rbx]    ; mov rdi, [rbx+8] ; mov rsi, [rbx+16]
//	      mov rdx, [rbx+24] ; mov r10, [rbx+32]; mov r8, [rbx+40]
//	      mov r9, [rbx+48]  ; syscall          ; mov [rbx+56], rax
//	      cmp rax, -4095    ; jae done
//	      add rbx, 64       ; dec r12          ; jmp loop
//	done: int3
var batchCode = []byte{
	0x4d, 0x85, 0xe4, 0x74, 0x32, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08,
	0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20,
	0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f, 0x05, 0x48, 0x89,
	0x43, 0x38, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x09, 0x48, 0x83,
	0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc9, 0xcc,
}

// The batch table takes the second half of the restorer area, so that
// its syscalls can point at arguments written in the first half.
const (
	batchCodeOff  = 16 // in the restorer area, after `syscall; int3`
	batchEntry    = 64
	batchTableOff = restorerSize / 2
	batchMax      = (restorerSize - batchTableOff) / batchEntry
)

// op is one syscall of a batch; what names it in errors.
type op struct {
	nr   uintptr
	args [6]uint64
	what string
}

// batch collects syscalls that need no result from each other.
type batch struct{ ops []op }

func (b *batch) add(what string, nr uintptr, args ...uint64) {
	o := op{nr: nr, what: what}
	copy(o.args[:], args)
	b.ops = append(b.ops, o)
}

// run executes the batch in tk (leader), batchMax entries per round trip,
// and empties it. The first failing syscall is the error.
func (rs *restorer) runBatch(tk *task, b *batch) error {
	pid := tk.t.PID
	table := rs.area + batchTableOff
	for len(b.ops) > 0 {
		n := min(len(b.ops), batchMax)
		buf := make([]byte, n*batchEntry)
		for i, o := range b.ops[:n] {
			e := buf[i*batchEntry:]
			binary.LittleEndian.PutUint64(e, uint64(o.nr))
			for j, a := range o.args {
				binary.LittleEndian.PutUint64(e[8+8*j:], a)
			}
		}
		if err := ptrace.WriteMem(pid, table, buf); err != nil {
			return err
		}
		regs, err := ptrace.GetRegs(pid)
		if err != nil {
			return err
		}
		saved := regs
		regs.Rip = rs.area + batchCodeOff
		regs.Rbx, regs.R12 = table, uint64(n)
		regs.Orig_rax = ^uint64(0) // no syscall restart on the way out of this stop
		regs.Eflags &^= 0x100
		if err := ptrace.SetRegs(pid, &regs); err != nil {
			return err
		}
		if err := ptrace.Cont(pid, 0); err != nil {
			return err
		}
		st, err := ptrace.Wait(pid)
		if err != nil {
			return fmt.Errorf("task %d: syscall batch: %w", pid, err)
		}
		if !st.IsSignalDelivery() || st.Signal() != unix.SIGTRAP {
			return fmt.Errorf("task %d: syscall batch stopped by %v", pid, st)
		}
		if err := ptrace.ReadMem(pid, table, buf); err != nil {
			return err
		}
		if err := ptrace.SetRegs(pid, &saved); err != nil {
			return err
		}
		for i, o := range b.ops[:n] {
			ret := int64(binary.LittleEndian.Uint64(buf[i*batchEntry+56:]))
			if ret >= -4095 && ret <= -1 {
				return fmt.Errorf("task %d: %s: %s: %w", pid, o.what, ptrace.SyscallName(o.nr), unix.Errno(-ret))
			}
		}
		b.ops = b.ops[n:]
	}
	return nil
}
