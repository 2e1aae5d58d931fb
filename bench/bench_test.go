package main

import (
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{9, 1, 5}, 5}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestPairedRatio: the median of run-by-run ratios, over the runs both
// cases have.
func TestPairedRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b []int64
		want float64
	}{
		{nil, nil, 0},
		{[]int64{10}, []int64{5}, 2},
		{[]int64{10, 30, 8}, []int64{10, 10, 4}, 2},          // 1, 3, 2
		{[]int64{10, 30, 8, 99}, []int64{10, 10, 4}, 2},      // the fourth run has no pair
		{[]int64{10, 12, 30, 8}, []int64{10, 4, 10, 4}, 2.5}, // 1, 3, 3, 2: even count
	} {
		if got := pairedRatio(tc.a, tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("pairedRatio(%v, %v) = %g, want %g", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestCowBytes: the COW case's expected bytes are the parent's pages plus
// each child's ~1%, and the children's pages are disjoint.
func TestCowBytes(t *testing.T) {
	c := cowCase("x", 512, 4, 10)
	pages := int64(512 * mib / 4096)
	got := c.DataBytes/4096 - pages
	if want := pages * 4 / 100; got < want*95/100 || got > want*105/100 {
		t.Errorf("modified pages %d, want about %d", got, want)
	}
	for pg := int64(0); pg < 1000; pg++ {
		n := 0
		for i := int64(1); i <= 4; i++ {
			if (pg+i*7919)%1000 < 10 {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("page %d rewritten by %d children", pg, n)
		}
	}
}

func rowByName(rows []row, name string) *row {
	for i := range rows {
		if rows[i].Name == name {
			return &rows[i]
		}
	}
	return nil
}

// TestBuildRows: ratios, targets and verdicts from made-up results.
func TestBuildRows(t *testing.T) {
	p := quickPlan()
	by := map[string]*caseResult{}
	var rs []*caseResult
	for _, c := range p.cases {
		r := &caseResult{caseSpec: c, Runs: 1, Verified: 1, DumpNs: 100e6, RestoreNs: 200e6,
			RefWriteNs: 50e6, RefReadNs: 200e6, DumpMaxRSS: 70 << 10, RestoreMaxRSS: 10 << 10}
		rs = append(rs, r)
		by[c.Name] = r
	}
	by[p.cow].ImageBytes, by[p.cow].PssBeforeKiB, by[p.cow].PssAfterKiB = by[p.cow].DataBytes, 1000, 1050
	by[p.sharedTree].Verified, by[p.sharedTree].Errors = 0, []string{"boom"} // its rows are errors
	v0, v1, v2 := by[p.vmas[0]], by[p.vmas[1]], by[p.vmas[2]]
	v1.DumpNs = 3 * 100e6 * int64(v1.VMAs) / int64(v0.VMAs) // 3x the per-VMA time of vmas[0]
	v0.RestoreNs, v1.RestoreNs, v2.RestoreNs = 100e6, 300e6, 200e6
	rows := buildRows(p, rs)
	check := func(name string, ratio float64, verdict string) {
		t.Helper()
		r := rowByName(rows, name)
		if r == nil {
			t.Fatalf("no row %q", name)
		}
		if math.Abs(r.Ratio-ratio) > 1e-9 || r.Verdict != verdict {
			t.Errorf("row %q: ratio %.3f verdict %s, want %.3f %s", name, r.Ratio, r.Verdict, ratio, verdict)
		}
	}
	n0, n1, n2 := float64(v0.VMAs), float64(v1.VMAs), float64(v2.VMAs)
	check("dump "+p.big, 2, "MISS")
	check("restore "+p.big, 1, "PASS")
	check("dump "+p.mid, 2, "info")
	check("peak RSS dump "+p.big, 70.0/64, "MISS")
	check("peak RSS restore "+p.big, 10.0/64, "PASS")
	check("dump "+p.sharedTree, 1, "error")
	check("dump "+p.vmas[1]+" per VMA", 3, "MISS")
	check("restore "+p.vmas[1]+" per VMA", (300/n1)/(100/n0), "PASS")
	check("restore "+p.vmas[2]+" per VMA", (200/n2)/(100/n0), "PASS")
	span := strings.TrimPrefix(p.vmas[1], "vmas-") + " to " + strings.TrimPrefix(p.vmas[2], "vmas-")
	// restore 100, 300, 200 ms: per added VMA -100/(n2-n1) against 200/(n1-n0).
	check("restore per added VMA, "+span, (-100/(n2-n1))/(200/(n1-n0)), "PASS")
	check("restore "+p.restoreVMAs+" wall", 300.0/500, "PASS")
	check("image size "+p.cow, 1, "PASS")
	check("restored Pss "+p.cow, 1.05, "PASS")
	check("dump "+p.sparse, 1, "PASS")
	by[p.cow].PssAfterKiB = 800
	pss := rowByName(buildRows(p, rs), "restored Pss "+p.cow)
	if pss == nil || pss.Verdict != "MISS" {
		t.Errorf("Pss 0.8x of before: row %+v, want MISS", pss)
	}
}

// TestQuickBench runs the whole harness in quick mode on tiny sizes: every
// case must dump, restore, and have its restored tree verify its memory;
// every row must have its numbers. Timing targets are not asserted (the
// machine is shared and tiny sizes measure overheads).
func TestQuickBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the benchmark needs root (ptrace, map_files, clone3 with set_tid)")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("the benchmark needs gcc for its workloads")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	before, _ := filepath.Glob("/dev/shm/mmcr-bench-*")
	minFreeBefore, knobErr := os.ReadFile(minFreeMsPath)
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	rep, err := benchmark(config{quick: true, runs: 1, baseDir: "/dev/shm", mmcr: os.Getenv("MMCR_BENCH_MMCR"), holdFree: true, log: logw})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	printTable(&sb, rep, false)
	t.Logf("\n%s", sb.String())

	if len(rep.Cases) != len(quickPlan().cases) {
		t.Errorf("%d cases ran, want %d", len(rep.Cases), len(quickPlan().cases))
	}
	for _, c := range rep.Cases {
		if !c.ok() {
			t.Errorf("case %s: verified %d of %d runs; errors: %s", c.Name, c.Verified, c.Runs, strings.Join(c.Errors, "; "))
			continue
		}
		if c.DumpNs <= 0 || c.RestoreNs <= 0 || c.RefWriteNs <= 0 || c.RefReadNs <= 0 {
			t.Errorf("case %s: missing times: %+v", c.Name, c)
		}
		if c.DumpMaxRSS <= 0 || c.RestoreMaxRSS <= 0 {
			t.Errorf("case %s: no peak RSS: dump %d restore %d KiB", c.Name, c.DumpMaxRSS, c.RestoreMaxRSS)
		}
		// The image must hold at least the data (it is pattern, never zero).
		if c.ImageBytes < c.DataBytes {
			t.Errorf("case %s: image %d bytes < %d bytes of data", c.Name, c.ImageBytes, c.DataBytes)
		}
		if c.Pss && (c.PssBeforeKiB <= 0 || c.PssAfterKiB <= 0) {
			t.Errorf("case %s: Pss before %d after %d KiB", c.Name, c.PssBeforeKiB, c.PssAfterKiB)
		}
	}
	if len(rep.Rows) < 20 {
		t.Errorf("%d rows, want at least 20", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if math.IsInf(r.Ratio, 0) || math.IsNaN(r.Ratio) {
			t.Errorf("row %q: value %g ref %g ratio %g", r.Name, r.Value, r.Ref, r.Ratio)
		}
		// A difference of two noisy times may be negative or zero; a time,
		// size or reference may not.
		if !strings.Contains(r.Name, "per added") && (r.Value <= 0 || r.Ref <= 0 || r.Ratio <= 0) {
			t.Errorf("row %q: value %g ref %g ratio %g", r.Name, r.Value, r.Ref, r.Ratio)
		}
		switch r.Verdict {
		case "n/a":
			if !strings.Contains(r.Name, "per added") {
				t.Errorf("row %q: verdict n/a", r.Name)
			}
		case "PASS", "MISS":
			if r.Target == "" {
				t.Errorf("row %q: verdict %s without a target", r.Name, r.Verdict)
			}
		case "info":
		default:
			t.Errorf("row %q: verdict %q", r.Name, r.Verdict)
		}
	}
	// The guest's free page reporting is as it was, and the report says
	// the run held free pages where the guest has the knob (and lets
	// root set it).
	if knobErr == nil && unix.Access(minFreeMsPath, unix.W_OK) == nil {
		if now, err := os.ReadFile(minFreeMsPath); err != nil || string(now) != string(minFreeBefore) {
			t.Errorf("%s is %q (%v) after the run, %q before", minFreeMsPath, now, err, minFreeBefore)
		}
		if !strings.Contains(rep.FreePages, "were held") {
			t.Errorf("report's free page line %q does not say they were held", rep.FreePages)
		}
	} else if knobErr != nil && rep.FreePages != "" {
		t.Errorf("no %s here, yet the report says %q", minFreeMsPath, rep.FreePages)
	}
	// Everything is cleaned up: no process left, no work dir left.
	if left := descendants(os.Getpid()); len(left) > 1 {
		t.Errorf("processes left: %v", left[1:])
	}
	after, _ := filepath.Glob("/dev/shm/mmcr-bench-*")
	if len(after) > len(before) {
		t.Errorf("work dirs left in /dev/shm: %v (before: %v)", after, before)
	}
}

// BenchmarkDumpRestore runs single cases of the full plan through the
// harness, one dump and restore (with its memory check) per iteration,
// and reports mmcr's times and the references as metrics:
//
//	sudo go test -run '^$' -bench DumpRestore -benchtime 3x ./bench
func BenchmarkDumpRestore(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the benchmark needs root")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		b.Skip("the benchmark needs gcc for its workloads")
	}
	e, err := prepare(config{runs: 1, baseDir: "/dev/shm", mmcr: os.Getenv("MMCR_BENCH_MMCR")})
	if err != nil {
		b.Fatal(err)
	}
	defer e.cleanup()
	specs := map[string]caseSpec{}
	for _, c := range fullPlan().cases {
		specs[c.Name] = c
	}
	for _, name := range []string{"anon-256m", "shared-tree-256m", "vmas-10000", "tasks-16"} {
		c := specs[name]
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(e.work, c.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if _, err := e.references(dir, c.DataBytes); err != nil { // warm-up
				b.Fatal(err)
			}
			var dump, restore, write, read int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ref, err := e.references(dir, c.DataBytes)
				if err != nil {
					b.Fatal(err)
				}
				one, err := e.runOnce(c, dir, i)
				if err != nil {
					killDescendants()
					b.Fatal(err)
				}
				dump += one.dump.wall.Nanoseconds()
				restore += one.restore.wall.Nanoseconds()
				write += ref.write
				read += min(ref.readPlain, ref.readPVW)
			}
			n := float64(b.N) * 1e6
			b.ReportMetric(float64(dump)/n, "dump-ms")
			b.ReportMetric(float64(restore)/n, "restore-ms")
			b.ReportMetric(float64(dump)/float64(write), "dump/dd")
			b.ReportMetric(float64(restore)/float64(read), "restore/read")
		})
	}
}
