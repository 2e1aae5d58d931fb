package kernel

import (
	"encoding/binary"
	"testing"
)

// ins encodes one struct sock_filter.
func ins(code uint16, jt, jf uint8, k uint32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint16(b, code)
	b[2], b[3] = jt, jf
	binary.LittleEndian.PutUint32(b[4:], k)
	return b
}

func prog(is ...[]byte) []byte {
	var p []byte
	for _, i := range is {
		p = append(p, i...)
	}
	return p
}

// Filters of the usual shapes run as the kernel runs them, and of several
// filters the answer of highest precedence wins.
func TestSeccompAction(t *testing.T) {
	const (
		ldAbs = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK  = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		jsetK = 0x45 // BPF_JMP|BPF_JSET|BPF_K
		retK  = 0x06 // BPF_RET|BPF_K
		retA  = 0x16 // BPF_RET|BPF_A
		andK  = 0x54 // BPF_ALU|BPF_AND|BPF_K
		tax   = 0x07 // BPF_MISC|BPF_TAX
		txa   = 0x87 // BPF_MISC|BPF_TXA
		st    = 0x02 // BPF_ST
		ldMem = 0x60 // BPF_LD|BPF_MEM
		ldImm = 0x00 // BPF_LD|BPF_IMM
	)
	// Kills getitimer (36) on x86-64, else allows.
	killItimer := prog(ins(ldAbs, 0, 0, 4), ins(jeqK, 1, 0, AuditArchX8664), ins(retK, 0, 0, SeccompKillProcess),
		ins(ldAbs, 0, 0, 0), ins(jeqK, 0, 1, 36), ins(retK, 0, 0, SeccompKillProcess), ins(retK, 0, 0, SeccompAllow))
	// prctl (157) with option bit 1 set: ERRNO(1); through X and memory.
	errnoPrctl := prog(ins(ldAbs, 0, 0, 0), ins(jeqK, 0, 9, 157), ins(ldAbs, 0, 0, 16), ins(andK, 0, 0, 0xff), ins(tax, 0, 0, 0),
		ins(st, 0, 0, 3), ins(ldMem, 0, 0, 3), ins(jsetK, 0, 1, 2), ins(retK, 0, 0, SeccompErrno|1),
		ins(ldImm, 0, 0, SeccompAllow), ins(txa, 0, 0, 0), ins(ldImm, 0, 0, SeccompAllow), ins(retA, 0, 0, 0))
	for _, tc := range []struct {
		name    string
		filters [][]byte
		d       SeccompData
		want    uint32
	}{
		{"getitimer", [][]byte{killItimer}, SeccompData{Nr: 36, Arch: AuditArchX8664}, SeccompKillProcess},
		{"getpid", [][]byte{killItimer}, SeccompData{Nr: 39, Arch: AuditArchX8664}, SeccompAllow},
		{"other arch", [][]byte{killItimer}, SeccompData{Nr: 39, Arch: 0x40000003}, SeccompKillProcess},
		{"prctl bit set", [][]byte{errnoPrctl}, SeccompData{Nr: 157, Args: [6]uint64{3}}, SeccompErrno | 1},
		{"prctl bit clear", [][]byte{errnoPrctl}, SeccompData{Nr: 157, Args: [6]uint64{4}}, SeccompAllow},
		{"not prctl", [][]byte{errnoPrctl}, SeccompData{Nr: 39}, SeccompAllow},
		{"precedence", [][]byte{errnoPrctl, killItimer}, SeccompData{Nr: 157, Arch: 1, Args: [6]uint64{2}}, SeccompKillProcess},
		{"errno over allow", [][]byte{killItimer, errnoPrctl}, SeccompData{Nr: 157, Arch: AuditArchX8664, Args: [6]uint64{2}}, SeccompErrno | 1},
	} {
		got, err := SeccompAction(tc.filters, tc.d)
		if err != nil || got != tc.want {
			t.Errorf("%s: %s (%#x), %v; want %s", tc.name, SeccompActionName(got), got, err, SeccompActionName(tc.want))
		}
	}
	if _, err := SeccompAction([][]byte{prog(ins(ldAbs, 0, 0, 6))}, SeccompData{}); err == nil {
		t.Error("an unaligned load ran")
	}
	if _, err := SeccompAction([][]byte{prog(ins(ldAbs, 0, 0, 0))}, SeccompData{}); err == nil {
		t.Error("a program without a return ran")
	}
}

func TestSeccompCanNotify(t *testing.T) {
	const (
		ldAbs = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK  = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK  = 0x06 // BPF_RET|BPF_K
		ldImm = 0x00 // BPF_LD|BPF_IMM
	)
	notifyMkdir := prog(ins(ldAbs, 0, 0, 0), ins(jeqK, 0, 1, 83), ins(retK, 0, 0, SeccompUserNotif), ins(retK, 0, 0, SeccompAllow))
	// USER_NOTIF as a loaded constant, not a return: no notification.
	loadOnly := prog(ins(ldImm, 0, 0, SeccompUserNotif), ins(retK, 0, 0, SeccompErrno|1))
	for _, tc := range []struct {
		name string
		prog []byte
		want bool
	}{
		{"returns USER_NOTIF", notifyMkdir, true},
		{"loads it only", loadOnly, false},
		{"errno", prog(ins(retK, 0, 0, SeccompErrno|38)), false},
	} {
		if got := SeccompCanNotify(tc.prog); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
