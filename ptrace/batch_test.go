package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sigLines returns the Sig* lines of /proc/PID/status but SigQ: pending,
// blocked, ignored and caught signals.
func sigLines(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Sig") && !strings.HasPrefix(l, "SigQ") || strings.HasPrefix(l, "ShdPnd") {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

// batchArea maps the loop (read+exec, written through /proc/PID/mem) and
// a writable table in a seized task, as dump does.
func batchArea(t *testing.T, r *Remote, max int) BatchArea {
	t.Helper()
	code := remoteMmap(t, r, 2*pageSize, unix.PROT_READ|unix.PROT_EXEC)
	if err := WriteMem(r.TID, code, BatchCode()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Syscall(unix.SYS_MPROTECT, code+pageSize, pageSize, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fatal(err)
	}
	return BatchArea{Code: code, Table: code + pageSize, Max: max}
}

// TestBatch runs syscall batches in a seized helper: results, the first
// failure stopping the batch, tables split over several round trips, a
// pending SIGTRAP (each entry stepped instead), and afterwards the
// helper's signal state (SIGTRAP caught or ignored included) and
// registers as they were.
func TestBatch(t *testing.T) {
	requireRoot(t)
	for _, trap := range []string{"catch", "ignore"} {
		t.Run(trap, func(t *testing.T) {
			lockThread(t)
			cmd, lines := startHelperEnv(t, []string{"HELPER_TRAP=" + trap}, "count")
			pid := cmd.Process.Pid
			nextLine(t, lines)
			sigsBefore := sigLines(t, pid)
			if _, err := SeizeStop(pid); err != nil {
				t.Fatal(err)
			}
			regsBefore, err := GetRegs(pid)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewRemote(pid, vdsoInsn(t, pid))
			if err != nil {
				t.Fatal(err)
			}
			area := batchArea(t, r, 3)
			slot := area.Table + pageSize - 64 // beyond the 3 entries

			var b Batch
			b.Add("getpid", unix.SYS_GETPID)
			b.Add("rt_sigaction(SIGTRAP)", unix.SYS_RT_SIGACTION, uint64(unix.SIGTRAP), 0, slot, 8)
			b.Add("getppid", unix.SYS_GETPPID)
			b.Add("brk(0)", unix.SYS_BRK, 0)
			iBad := b.Add("munmap(unaligned)", unix.SYS_MUNMAP, area.Table+1, pageSize)
			iAfter := b.Add("getpid after the failure", unix.SYS_GETPID)
			err = r.RunBatch(area, &b)
			var be *BatchError
			if !errors.As(err, &be) || be.Index != iBad || !errors.Is(err, unix.EINVAL) ||
				!strings.Contains(err.Error(), "munmap(unaligned)") || !strings.Contains(err.Error(), strconv.Itoa(pid)) {
				t.Fatalf("batch error %v, want munmap(unaligned) at %d failing with EINVAL", err, iBad)
			}
			if got := int(b.Result(0)); got != pid {
				t.Errorf("getpid = %d, want %d", got, pid)
			}
			if got := int(b.Result(2)); got != os.Getpid() {
				t.Errorf("getppid = %d, want %d", got, os.Getpid())
			}
			if b.Result(3) == 0 || b.Result(iAfter) != 0 {
				t.Errorf("brk = %#x, entry after the failure = %#x", b.Result(3), b.Result(iAfter))
			}
			var act [8]byte
			if err := ReadMem(pid, slot, act[:]); err != nil {
				t.Fatal(err)
			}
			handler := binary.LittleEndian.Uint64(act[:])
			if (trap == "ignore") != (handler == 1) || handler == 0 {
				t.Errorf("SIGTRAP handler %#x as read in the batch (helper: %s)", handler, trap)
			}

			// Answers stored in the entries themselves (AddOut), over
			// two round trips: the task's CPU mask, 8 bytes.
			var cpus unix.CPUSet
			if err := unix.SchedGetaffinity(pid, &cpus); err != nil {
				t.Fatal(err)
			}
			wantMask := uint64(cpus[0])
			b.Reset()
			var outs []int
			for range 2 {
				outs = append(outs, b.AddOut("sched_getaffinity", unix.SYS_SCHED_GETAFFINITY, 2, 0, 8, 0))
				b.Add("getpid", unix.SYS_GETPID)
			}
			if err := r.RunBatch(area, &b); err != nil {
				t.Fatal(err)
			}
			for _, i := range outs {
				if b.Out(i) != wantMask || b.Result(i) != 8 {
					t.Errorf("entry %d: sched_getaffinity stored %#x and returned %d, want %#x and 8", i, b.Out(i), b.Result(i), wantMask)
				}
			}

			// A pending SIGTRAP: the batch must neither take it nor lose it.
			if err := unix.Kill(pid, unix.SIGTRAP); err != nil {
				t.Fatal(err)
			}
			b.Reset()
			b.Add("getpid", unix.SYS_GETPID)
			b.Add("gettid", unix.SYS_GETTID)
			iOut := b.AddOut("sched_getaffinity", unix.SYS_SCHED_GETAFFINITY, 2, 0, 8, 0)
			if err := r.RunBatch(area, &b); err != nil {
				t.Fatal(err)
			}
			if int(b.Result(0)) != pid || int(b.Result(1)) != pid {
				t.Errorf("stepped batch: getpid %d gettid %d, want %d", b.Result(0), b.Result(1), pid)
			}
			if b.Out(iOut) != wantMask {
				t.Errorf("stepped batch: sched_getaffinity stored %#x, want %#x", b.Out(iOut), wantMask)
			}
			if ok, err := sigPending(pid, unix.SIGTRAP); err != nil || !ok {
				t.Fatalf("SIGTRAP no longer pending after the stepped batch (%v)", err)
			}

			if _, err := r.Syscall(unix.SYS_MUNMAP, area.Code, 2*pageSize); err != nil {
				t.Fatal(err)
			}
			if err := r.Restore(); err != nil {
				t.Fatal(err)
			}
			regsAfter, err := GetRegs(pid)
			if err != nil {
				t.Fatal(err)
			}
			if regsAfter.Rip != regsBefore.Rip && regsAfter.Rip != regsBefore.Rip-2 || regsAfter.Rsp != regsBefore.Rsp {
				t.Errorf("registers not put back: rip %#x rsp %#x, want %#x %#x",
					regsAfter.Rip, regsAfter.Rsp, regsBefore.Rip, regsBefore.Rsp)
			}
			// Still stopped: the SIGTRAP sent above is pending, the rest
			// must be as before the seize.
			want := strings.Replace(sigsBefore, "ShdPnd:\t0000000000000000", "ShdPnd:\t0000000000000010", 1) // kill: the process queue
			if got := sigLines(t, pid); got != want {
				t.Errorf("signal state after the batches:\n%s\nwant\n%s", got, want)
			}
			if err := Detach(pid); err != nil {
				t.Fatal(err)
			}
			nextLine(t, lines)
			nextLine(t, lines)
		})
	}
}

// TestRunBatchPutsBack runs a batch with the package-level RunBatch in a
// stub: a table of many round trips, registers and mask as before.
func TestRunBatchPutsBack(t *testing.T) {
	pid, r := stubRemote(t)
	area := batchArea(t, r, 4)
	if err := SetSigMask(pid, 1<<(unix.SIGUSR1-1)); err != nil {
		t.Fatal(err)
	}
	before, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := 0; i < 10; i++ {
		b.Add("getpid", unix.SYS_GETPID)
	}
	if err := RunBatch(pid, area, &b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < b.Len(); i++ {
		if int(b.Result(i)) != pid {
			t.Fatalf("entry %d returned %d, want %d", i, b.Result(i), pid)
		}
	}
	after, err := GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("registers after RunBatch %+v, want %+v", after, before)
	}
	if m, err := GetSigMask(pid); err != nil || m != 1<<(unix.SIGUSR1-1) {
		t.Errorf("mask after RunBatch %#x (%v), want SIGUSR1 only", m, err)
	}
	var bad Batch
	bad.Add("too many", unix.SYS_GETPID, 1, 2, 3, 4, 5, 6, 7)
	if err := RunBatch(pid, area, &bad); err == nil {
		t.Error("a batch entry with 7 arguments ran")
	}
}
