package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"
)

// row is one line of the summary: a measured value of mmcr, the
// reference it is compared with, their ratio and the target.
type row struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	RefName  string  `json:"ref_name"`
	Ref      float64 `json:"ref"`
	Unit     string  `json:"unit"` // of Value and Ref: ms, us/vma, MiB
	Ratio    float64 `json:"ratio"`
	Target   string  `json:"target,omitempty"` // e.g. "<= 1.30"; empty: for information
	TargetLo float64 `json:"-"`
	TargetHi float64 `json:"-"`
	Verdict  string  `json:"verdict"` // PASS, MISS, info, n/a, or error
}

// report is the whole output (-json writes it as is).
type report struct {
	Machine string `json:"machine"`
	Mode    string `json:"mode"`
	Runs    int    `json:"runs"`
	// FreePages says what the run did about the guest's free page
	// reporting (bench/host.go); empty where the guest has none.
	FreePages string        `json:"free_pages,omitempty"`
	Rows      []row         `json:"rows"`
	Cases     []*caseResult `json:"cases"`
}

func machine() string {
	var u unix.Utsname
	unix.Uname(&u)
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	return fmt.Sprintf("%s, %d CPUs, %d GiB RAM, Linux %s", model, runtime.NumCPU(),
		(uint64(si.Totalram)*uint64(si.Unit)+(1<<29))>>30, unix.ByteSliceToString(u.Release[:]))
}

// buildRows compares the cases as the targets say. A row whose
// cases did not all run cleanly is marked error.
func buildRows(p plan, results []*caseResult) []row {
	by := map[string]*caseResult{}
	for _, r := range results {
		by[r.Name] = r
	}
	var rows []row
	// paired, when > 0, is the row's ratio as the median of per-run
	// ratios (see caseResult.DumpRatio); else it is value/ref.
	addPaired := func(name string, cases []string, value, ref, paired float64, refName, unit string, lo, hi float64) {
		rw := row{Name: name, Value: value, Ref: ref, RefName: refName, Unit: unit, TargetLo: lo, TargetHi: hi}
		for _, c := range cases {
			r := by[c]
			if r == nil {
				return // not run (-cases)
			}
			if !r.ok() {
				rw.Verdict = "error"
			}
		}
		switch {
		case paired > 0:
			rw.Ratio = paired
		case ref > 0:
			rw.Ratio = value / ref
		}
		switch {
		case lo > 0 && hi > 0:
			rw.Target = fmt.Sprintf("%.2f-%.2f", lo, hi)
		case hi > 0:
			rw.Target = fmt.Sprintf("<= %.2f", hi)
		}
		if rw.Verdict == "" {
			switch {
			case rw.Target == "":
				rw.Verdict = "info"
			case ref <= 0:
				rw.Verdict = "n/a" // nothing to compare with (noise made a difference negative)
			case rw.Ratio <= hi && (lo == 0 || rw.Ratio >= lo):
				rw.Verdict = "PASS"
			default:
				rw.Verdict = "MISS"
			}
		}
		rows = append(rows, rw)
	}
	add := func(name string, cases []string, value, ref float64, refName, unit string, lo, hi float64) {
		addPaired(name, cases, value, ref, 0, refName, unit, lo, hi)
	}
	get := func(name string) *caseResult {
		if r := by[name]; r != nil {
			return r
		}
		return &caseResult{}
	}
	msf := func(ns int64) float64 { return float64(ns) / 1e6 }
	big, mid, small, sparse := get(p.big), get(p.mid), get(p.small), get(p.sparse)

	// Dump and restore against dd and read of the same bytes.
	for _, c := range []string{p.mid, p.big} {
		r, hi := get(c), 0.0
		if c == p.big {
			hi = 1.3
		}
		addPaired("dump "+c, []string{c}, msf(r.DumpNs), msf(r.RefWriteNs), r.DumpRatio, "dd to tmpfs", "ms", 0, hi)
		add("dump "+c+" vs a bare copy", []string{c}, msf(r.DumpNs), msf(r.RefCopyNs), "process_vm_readv+write", "ms", 0, 0)
		if c == p.big {
			addPaired("(no mmcr) one copy (vmsplice+splice) "+c, []string{c}, msf(r.RefSpliceNs), msf(r.RefWriteNs), r.SpliceRatio, "dd to tmpfs", "ms", 0, 0)
		}
		addPaired("restore "+c, []string{c}, msf(r.RestoreNs), msf(r.RefReadNs), r.RestoreRatio, "tmpfs file to anon", "ms", 0, hi)
	}
	add("peak RSS dump "+p.big, []string{p.big}, float64(big.DumpMaxRSS)/1024, 64, "64 MiB", "MiB", 0, 1)
	add("peak RSS restore "+p.big, []string{p.big}, float64(big.RestoreMaxRSS)/1024, 64, "64 MiB", "MiB", 0, 1)

	// The shared tree must cost about one copy of its bytes.
	st := get(p.sharedTree)
	addPaired("dump "+p.sharedTree, []string{p.sharedTree, p.mid}, msf(st.DumpNs), msf(mid.DumpNs),
		pairedRatio(st.DumpRunsNs, mid.DumpRunsNs), "mmcr dump "+p.mid, "ms", 0, 1.3)
	addPaired("restore "+p.sharedTree, []string{p.sharedTree, p.mid}, msf(st.RestoreNs), msf(mid.RestoreNs),
		pairedRatio(st.RestoreRunsNs, mid.RestoreRunsNs), "mmcr restore "+p.mid, "ms", 0, 1.3)

	// Unpopulated memory costs nothing.
	addPaired("dump "+p.sparse, []string{p.sparse, p.small}, msf(sparse.DumpNs), msf(small.DumpNs),
		pairedRatio(sparse.DumpRunsNs, small.DumpRunsNs), "mmcr dump "+p.small, "ms", 0, 1.5)
	addPaired("restore "+p.sparse, []string{p.sparse, p.small}, msf(sparse.RestoreNs), msf(small.RestoreNs),
		pairedRatio(sparse.RestoreRunsNs, small.RestoreRunsNs), "mmcr restore "+p.small, "ms", 0, 1.5)

	// VMA scaling: time per VMA against the smallest count's.
	if len(p.vmas) > 0 {
		first := get(p.vmas[0])
		per := func(ns int64, r *caseResult) float64 {
			if r.VMAs == 0 {
				return 0
			}
			return float64(ns) / 1e3 / float64(r.VMAs)
		}
		for i, c := range p.vmas {
			r, hi := get(c), 2.0
			if i == 0 {
				hi = 0
			}
			add("dump "+c+" per VMA", []string{c, p.vmas[0]}, per(r.DumpNs, r), per(first.DumpNs, first), p.vmas[0], "us/vma", 0, hi)
			add("restore "+c+" per VMA", []string{c, p.vmas[0]}, per(r.RestoreNs, r), per(first.RestoreNs, first), p.vmas[0], "us/vma", 0, hi)
		}
		// Time per added VMA between consecutive counts, against the first
		// interval's: the fixed cost of a dump or restore (tens of ms)
		// hides in plain time per VMA at small counts, not here.
		marginal := func(ns0, ns1 int64, r0, r1 *caseResult) float64 {
			if r1.VMAs <= r0.VMAs {
				return 0
			}
			return float64(ns1-ns0) / 1e3 / float64(r1.VMAs-r0.VMAs)
		}
		if len(p.vmas) >= 3 {
			second := get(p.vmas[1])
			base := fmt.Sprintf("%s to %s", strings.TrimPrefix(p.vmas[0], "vmas-"), strings.TrimPrefix(p.vmas[1], "vmas-"))
			for i := 2; i < len(p.vmas); i++ {
				prev, r := get(p.vmas[i-1]), get(p.vmas[i])
				span := fmt.Sprintf("%s to %s", strings.TrimPrefix(p.vmas[i-1], "vmas-"), strings.TrimPrefix(p.vmas[i], "vmas-"))
				cases := []string{p.vmas[0], p.vmas[1], p.vmas[i-1], p.vmas[i]}
				add("dump per added VMA, "+span, cases, marginal(prev.DumpNs, r.DumpNs, prev, r),
					marginal(first.DumpNs, second.DumpNs, first, second), base, "us/vma", 0, 2)
				add("restore per added VMA, "+span, cases, marginal(prev.RestoreNs, r.RestoreNs, prev, r),
					marginal(first.RestoreNs, second.RestoreNs, first, second), base, "us/vma", 0, 2)
			}
		}
		if p.restoreVMAs != "" {
			add("restore "+p.restoreVMAs+" wall", []string{p.restoreVMAs}, msf(get(p.restoreVMAs).RestoreNs), 500, "0.5 s", "ms", 0, 1)
		}
	}

	// Task scaling: one object shared by more and more tasks. Besides the
	// times against the references, the time per added task between
	// consecutive counts against the first interval's shows any step that
	// grows with the task count (no target in the issue: information).
	for _, c := range p.tasks {
		r := get(c)
		addPaired("dump "+c, []string{c}, msf(r.DumpNs), msf(r.RefWriteNs), r.DumpRatio, "dd to tmpfs", "ms", 0, 0)
		addPaired("restore "+c, []string{c}, msf(r.RestoreNs), msf(r.RefReadNs), r.RestoreRatio, "tmpfs file to anon", "ms", 0, 0)
	}
	if len(p.tasks) >= 3 {
		perTask := func(ns0, ns1 int64, r0, r1 *caseResult) float64 {
			if r1.Tasks <= r0.Tasks {
				return 0
			}
			return float64(ns1-ns0) / 1e6 / float64(r1.Tasks-r0.Tasks)
		}
		t0, t1 := get(p.tasks[0]), get(p.tasks[1])
		base := fmt.Sprintf("%d to %d tasks", t0.Tasks, t1.Tasks)
		for i := 2; i < len(p.tasks); i++ {
			prev, r := get(p.tasks[i-1]), get(p.tasks[i])
			span := fmt.Sprintf("%d to %d tasks", prev.Tasks, r.Tasks)
			cases := []string{p.tasks[0], p.tasks[1], p.tasks[i-1], p.tasks[i]}
			add("dump per added task, "+span, cases, perTask(prev.DumpNs, r.DumpNs, prev, r),
				perTask(t0.DumpNs, t1.DumpNs, t0, t1), base, "ms", 0, 0)
			add("restore per added task, "+span, cases, perTask(prev.RestoreNs, r.RestoreNs, prev, r),
				perTask(t0.RestoreNs, t1.RestoreNs, t0, t1), base, "ms", 0, 0)
		}
	}

	// Copy-on-write after fork.
	cw := get(p.cow)
	addPaired("dump "+p.cow, []string{p.cow}, msf(cw.DumpNs), msf(cw.RefWriteNs), cw.DumpRatio, "dd to tmpfs", "ms", 0, 0)
	addPaired("restore "+p.cow, []string{p.cow}, msf(cw.RestoreNs), msf(cw.RefReadNs), cw.RestoreRatio, "tmpfs file to anon", "ms", 0, 0)
	add("image size "+p.cow, []string{p.cow}, float64(cw.ImageBytes)/mib, float64(cw.DataBytes)/mib, "shared+modified pages", "MiB", 0, 1.1)
	add("restored Pss "+p.cow, []string{p.cow}, float64(cw.PssAfterKiB)/1024, float64(cw.PssBeforeKiB)/1024, "Pss before dump", "MiB", 0.9, 1.1)
	return rows
}

// pairedRatio is the median of a[i]/b[i] over the runs both cases have:
// runPlan runs the cases in turn, so run i of one case and run i of
// another are neighbours in time. 0 when there is none.
func pairedRatio(a, b []int64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, float64(a[i])/float64(b[i]))
		}
	}
	return medianFloat(rs)
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "ms":
		if v >= 1000 {
			return fmt.Sprintf("%.2f s", v/1000)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "us/vma":
		return fmt.Sprintf("%.1f us/VMA", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// ratioNote says how the ratios are taken.
const ratioNote = "The cases run in turn, one run of each at a time (a full run first makes one untimed run of each); each run times " +
	"dd right before its dump (after an untimed dd, both files removed) and its other references just before " +
	"its workload starts. Ratios against dd or read and between two cases are the medians of the runs' own " +
	"ratios; the others (per VMA, per task, sizes) are ratios of medians."

// printTable writes the summary rows and a per-case detail table.
func printTable(w io.Writer, rep *report, markdown bool) {
	fmt.Fprintf(w, "mmcr benchmark (%s mode, median of %d runs) on %s\n", rep.Mode, rep.Runs, rep.Machine)
	fmt.Fprintf(w, "%s\n", ratioNote)
	if rep.FreePages != "" {
		fmt.Fprintf(w, "%s\n", rep.FreePages)
	}
	fmt.Fprintln(w)
	if markdown {
		fmt.Fprintln(w, "| case | mmcr median | reference median | ratio | target | result |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
		for _, r := range rep.Rows {
			fmt.Fprintf(w, "| %s | %s | %s (%s) | %.2f | %s | %s |\n", r.Name, fmtVal(r.Value, r.Unit),
				fmtVal(r.Ref, r.Unit), r.RefName, r.Ratio, orDash(r.Target), r.Verdict)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tmmcr median\treference median\tratio\ttarget\tresult")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%.2f\t%s\t%s\n", r.Name, fmtVal(r.Value, r.Unit),
			fmtVal(r.Ref, r.Unit), r.RefName, r.Ratio, orDash(r.Target), r.Verdict)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "case\ttasks\tdata\tdump\trestore\tdd\tbare copy\tone copy\tread()\tread+pvw\timage\tpeak RSS dump/restore\tverified")
	for _, c := range rep.Cases {
		fmt.Fprintf(tw, "%s\t%d\t%.1f MiB\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f MiB\t%.1f/%.1f MiB\t%d/%d\n", c.Name, c.Tasks,
			float64(c.DataBytes)/mib, fmtVal(float64(c.DumpNs)/1e6, "ms"), fmtVal(float64(c.RestoreNs)/1e6, "ms"),
			fmtVal(float64(c.RefWriteNs)/1e6, "ms"), fmtVal(float64(c.RefCopyNs)/1e6, "ms"),
			fmtVal(float64(c.RefSpliceNs)/1e6, "ms"), fmtVal(float64(c.RefReadPlainNs)/1e6, "ms"),
			fmtVal(float64(c.RefReadPVWNs)/1e6, "ms"), float64(c.ImageBytes)/mib,
			float64(c.DumpMaxRSS)/1024, float64(c.RestoreMaxRSS)/1024, c.Verified, c.Runs)
	}
	tw.Flush()
	for _, c := range rep.Cases {
		for _, e := range c.Errors {
			fmt.Fprintf(w, "error: %s: %s\n", c.Name, e)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
