package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SeccompData is struct seccomp_data: what a seccomp filter reads of a
// syscall.
type SeccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// AuditArchX8664 is AUDIT_ARCH_X86_64, a native syscall's Arch.
const AuditArchX8664 = 0xc000003e

// The seccomp actions (SECCOMP_RET_*), highest precedence first.
const (
	SeccompKillProcess = 0x80000000
	SeccompKillThread  = 0x00000000
	SeccompTrap        = 0x00030000
	SeccompErrno       = 0x00050000
	SeccompUserNotif   = 0x7fc00000
	SeccompTrace       = 0x7ff00000
	SeccompLog         = 0x7ffc0000
	SeccompAllow       = 0x7fff0000
	seccompActionMask  = 0xffff0000
)

// SeccompAction returns what a thread's filters answer to d, as the
// kernel would: every filter runs and the answer of highest precedence
// wins (the lowest action as a signed number).
func SeccompAction(filters [][]byte, d SeccompData) (uint32, error) {
	ret := uint32(SeccompAllow)
	for i, prog := range filters {
		r, err := runSeccompFilter(prog, d)
		if err != nil {
			return 0, fmt.Errorf("seccomp filter %d: %w", i, err)
		}
		if int32(r&seccompActionMask) < int32(ret&seccompActionMask) {
			ret = r
		}
	}
	return ret, nil
}

// SeccompActionName names an action value.
func SeccompActionName(ret uint32) string {
	switch ret & seccompActionMask {
	case SeccompKillProcess:
		return "KILL_PROCESS"
	case SeccompKillThread:
		return "KILL_THREAD"
	case SeccompTrap:
		return "TRAP"
	case SeccompErrno:
		return fmt.Sprintf("ERRNO(%d)", ret&0xffff)
	case SeccompUserNotif:
		return "USER_NOTIF"
	case SeccompTrace:
		return "TRACE"
	case SeccompLog:
		return "LOG"
	case SeccompAllow:
		return "ALLOW"
	}
	return fmt.Sprintf("action %#x", ret)
}

// SeccompCanNotify reports whether a filter has an instruction returning
// USER_NOTIF: some syscall of the thread goes to a supervisor's listener.
// A return of the accumulator is not counted (its value is not known
// without running the program; compilers such as libseccomp return
// constants).
func SeccompCanNotify(prog []byte) bool {
	for i := 0; i+8 <= len(prog); i += 8 {
		code := binary.LittleEndian.Uint16(prog[i:])
		k := binary.LittleEndian.Uint32(prog[i+4:])
		if code&0x07 == 0x06 && code&0x18 == 0x00 && k&seccompActionMask == SeccompUserNotif { // BPF_RET|BPF_K
			return true
		}
	}
	return false
}

var errBadFilter = errors.New("not a seccomp BPF program")

// runSeccompFilter runs one classic BPF program (struct sock_filter array)
// over d with the instructions the kernel lets a seccomp filter have.
func runSeccompFilter(prog []byte, d SeccompData) (uint32, error) {
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(data[4:], d.Arch)
	binary.LittleEndian.PutUint64(data[8:], d.IP)
	for i, a := range d.Args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	n := len(prog) / 8
	if n == 0 || len(prog)%8 != 0 {
		return 0, errBadFilter
	}
	var a, x uint32
	var mem [16]uint32
	for pc := 0; pc < n; pc++ {
		ins := prog[8*pc:]
		code := binary.LittleEndian.Uint16(ins)
		jt, jf := int(ins[2]), int(ins[3])
		k := binary.LittleEndian.Uint32(ins[4:])
		src := k // BPF_K
		if code&0x08 != 0 {
			src = x // BPF_X
		}
		switch code & 0x07 {
		case 0x00, 0x01: // BPF_LD, BPF_LDX
			var v uint32
			switch code & 0xe0 { // mode
			case 0x00: // BPF_IMM
				v = k
			case 0x20: // BPF_ABS
				if code&0x18 != 0x00 || k%4 != 0 || k >= 64 || code&0x07 != 0x00 {
					return 0, fmt.Errorf("%w: load at %d", errBadFilter, k)
				}
				v = binary.LittleEndian.Uint32(data[k:])
			case 0x60: // BPF_MEM
				if k >= 16 {
					return 0, errBadFilter
				}
				v = mem[k]
			case 0x80: // BPF_LEN
				v = 64
			default:
				return 0, fmt.Errorf("%w: load mode %#x", errBadFilter, code)
			}
			if code&0x07 == 0x00 {
				a = v
			} else {
				x = v
			}
		case 0x02, 0x03: // BPF_ST, BPF_STX
			if k >= 16 {
				return 0, errBadFilter
			}
			if code&0x07 == 0x02 {
				mem[k] = a
			} else {
				mem[k] = x
			}
		case 0x04: // BPF_ALU
			switch code & 0xf0 {
			case 0x00:
				a += src
			case 0x10:
				a -= src
			case 0x20:
				a *= src
			case 0x30:
				if src == 0 {
					return 0, nil // division by zero ends the program with 0: KILL
				}
				a /= src
			case 0x40:
				a |= src
			case 0x50:
				a &= src
			case 0x60:
				a <<= src & 31
			case 0x70:
				a >>= src & 31
			case 0x80:
				a = -a
			case 0x90:
				if src == 0 {
					return 0, nil
				}
				a %= src
			case 0xa0:
				a ^= src
			default:
				return 0, fmt.Errorf("%w: alu %#x", errBadFilter, code)
			}
		case 0x05: // BPF_JMP
			var taken bool
			switch code & 0xf0 {
			case 0x00: // BPF_JA
				pc += int(k)
				continue
			case 0x10:
				taken = a == src
			case 0x20:
				taken = a > src
			case 0x30:
				taken = a >= src
			case 0x40:
				taken = a&src != 0
			default:
				return 0, fmt.Errorf("%w: jump %#x", errBadFilter, code)
			}
			if taken {
				pc += jt
			} else {
				pc += jf
			}
		case 0x06: // BPF_RET
			if code&0x18 == 0x10 { // BPF_A
				return a, nil
			}
			return k, nil
		case 0x07: // BPF_MISC
			if code&0xf8 == 0x00 { // TAX
				x = a
			} else { // TXA
				a = x
			}
		}
	}
	return 0, fmt.Errorf("%w: runs off its end", errBadFilter)
}
