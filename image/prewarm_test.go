package image

import (
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestPrewarmFillsUsedTypes checks what Prewarm marshals: every nested
// message type mmcr uses is reached (so its coders get built), the kinds
// it never meets are not, and the filled roots survive a round trip.
func TestPrewarmFillsUsedTypes(t *testing.T) {
	used := map[protoreflect.FullName]bool{}
	for _, m := range imageTypes() {
		used[m.ProtoReflect().Descriptor().FullName()] = true
	}
	ce := &criu_core.CoreEntry{}
	fillUsed(ce.ProtoReflect(), used, 0)
	if ce.GetThreadInfo().GetFpregs().GetXsave() == nil || ce.GetThreadInfo().GetGpregs() == nil {
		t.Errorf("x86 thread info not filled: %v", ce.GetThreadInfo())
	}
	if len(ce.GetTc().GetRlimits().GetRlimits()) != 1 || ce.GetTc().GetTimers().GetReal() == nil ||
		len(ce.GetTc().GetSigactions()) != 1 || len(ce.GetTc().GetSignalsS().GetSignals()) != 1 {
		t.Errorf("task core not filled: %v", ce.GetTc())
	}
	if tc := ce.GetThreadCore(); tc.GetSas() == nil || tc.GetCreds() == nil || tc.GetRseqEntry() == nil {
		t.Errorf("thread core not filled: %v", tc)
	}
	if ce.GetTiArm() != nil || ce.GetTiAarch64() != nil {
		t.Errorf("another architecture's thread info was filled")
	}
	fe := &fdinfo.FileEntry{}
	fillUsed(fe.ProtoReflect(), used, 0)
	if fe.GetReg() == nil || fe.GetMemfd() == nil || fe.GetEfd() == nil || fe.GetEpfd() == nil || fe.GetExt() == nil {
		t.Errorf("file kinds mmcr writes not filled: %v", fe)
	}
	if fe.GetIsk() != nil || fe.GetUsk() != nil || fe.GetPipe() != nil || fe.GetTty() != nil {
		t.Errorf("file kinds mmcr never writes were filled: %v", fe)
	}
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	var back criu_core.CoreEntry
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(b, &back); err != nil || back.GetThreadInfo().GetFpregs().GetXsave() == nil {
		t.Errorf("round trip: %v, xsave %v", err, back.GetThreadInfo().GetFpregs().GetXsave())
	}
	Prewarm()
	Prewarm() // once only, and harmless again
}
