package image

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
)

// seccompTree is the sample tree with seccomp filters: thread 100 has A,
// thread 101 A then B, the child A (inherited).
func seccompTree() *Tree {
	tree := sampleTree()
	a := SeccompFilter{Prog: bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 4), Flags: 2}
	b := SeccompFilter{Prog: bytes.Repeat([]byte{9, 9, 9, 9, 0, 0, 0, 1}, 3)}
	tree.Tasks[0].Threads[0].Seccomp = []SeccompFilter{a}
	tree.Tasks[0].Threads[1].Seccomp = []SeccompFilter{a, b}
	tree.Tasks[1].Threads[0].Seccomp = []SeccompFilter{a}
	return tree
}

// Seccomp filters go to seccomp.img as CRIU writes them (chains through
// prev, a filter shared by threads stored once, each thread's core naming
// its last one) and come back per thread.
func TestSeccompRoundTrip(t *testing.T) {
	want := seccompTree()
	dir, err := commitTree(t, want)
	if err != nil {
		t.Fatal(err)
	}
	img := critDecode(t, dir, "seccomp.img", &seccomp.SeccompEntry{})
	fs := img.Entries[0].Message.(*seccomp.SeccompEntry).GetSeccompFilters()
	if len(fs) != 2 || fs[0].Prev != nil || fs[1].GetPrev() != 0 || fs[0].GetFlags() != 2 || len(fs[1].GetFilter()) != 24 {
		t.Fatalf("seccomp.img as crit sees it: %v", fs)
	}
	for tid, last := range map[int]uint32{100: 0, 101: 1, 102: 0} {
		core := critDecode(t, dir, coreName(tid), &criu_core.CoreEntry{}).Entries[0].Message.(*criu_core.CoreEntry)
		if tc := core.GetThreadCore(); tc.GetSeccompMode() != criu_core.SeccompMode_filter || tc.GetSeccompFilter() != last {
			t.Errorf("thread %d: seccomp mode %v, filter %d; want filter, %d", tid, tc.GetSeccompMode(), tc.GetSeccompFilter(), last)
		}
	}
	_, got := openTree(t, dir)
	want.Tasks[0].VMAs[7].VmFlags = nil // empty slices come back nil
	for i := range want.Tasks {
		for j := range want.Tasks[i].Threads {
			if g, w := got.Tasks[i].Threads[j].Seccomp, want.Tasks[i].Threads[j].Seccomp; !reflect.DeepEqual(g, w) {
				t.Errorf("thread %d: filters %v, want %v", want.Tasks[i].Threads[j].TID, g, w)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("tree differs")
	}
}

func TestSeccompRejected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*Tree)
		msg    string
	}{
		{"partial instruction", func(tr *Tree) { tr.Tasks[0].Threads[0].Seccomp[0].Prog = make([]byte, 12) }, "12 bytes is not a program"},
		{"too long", func(tr *Tree) { tr.Tasks[1].Threads[0].Seccomp[0].Prog = make([]byte, 4097*8) }, "not a program of 1 to 4096"},
		{"unknown flag", func(tr *Tree) { tr.Tasks[0].Threads[1].Seccomp[1].Flags = 8 }, "flags 0x8"},
		{"path too long", func(tr *Tree) {
			f := SeccompFilter{Prog: make([]byte, 4096*8)}
			tr.Tasks[0].Threads[0].Seccomp = []SeccompFilter{f, f, f, f, f, f, f, f, f}
		}, "over the kernel's 32768"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := seccompTree()
			tc.mangle(tree)
			if _, err := commitTree(t, tree); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}
