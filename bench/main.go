// Command bench is the benchmark of issue 5: it runs C workloads (built
// from workloads/ with gcc) through `mmcr dump` and `mmcr restore -d` on
// tmpfs, several times each, and compares mmcr's median wall time with
// references measured in the same run on the same filesystem: dd of the
// same bytes into a tmpfs file (dump) and reading that file back into
// fresh anonymous memory (restore). Every restored tree checks its own
// memory; a run whose check fails does not count.
//
//	sudo go run ./bench [-quick] [-runs N] [-cases a,b] [-json FILE] [-markdown]
//
// It needs root and gcc. It exits 1 when a case failed to run or verify;
// a missed target is reported, not an error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "tiny sizes, one run: a smoke run of the harness")
	runs := fs.Int("runs", 0, "runs per case (default 3, or 1 with -quick)")
	cases := fs.String("cases", "", "comma-separated case names to run (default: all)")
	mmcr := fs.String("mmcr", "", "mmcr binary (default: build ./cmd/mmcr into the work dir)")
	dir := fs.String("dir", "/dev/shm", "tmpfs directory for images and references")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file ('-': stdout instead of the table)")
	markdown := fs.Bool("markdown", false, "print the summary as a markdown table")
	keep := fs.Bool("keep", false, "keep the work dir (logs; images of failed runs)")
	debug := fs.Bool("v", false, "run mmcr with -vv (its logs, with phase timings, stay in the work dir with -keep)")
	holdFree := fs.Bool("hold-free-pages", true, "on guests that report free pages to their host (bench/host.go), keep them for the run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := config{runs: *runs, quick: *quick, mmcr: *mmcr, baseDir: *dir, keep: *keep, debug: *debug, holdFree: *holdFree, log: os.Stderr}
	if cfg.runs <= 0 {
		cfg.runs = 3
		if cfg.quick {
			cfg.runs = 1
		}
	}
	if *cases != "" {
		cfg.only = map[string]bool{}
		for _, c := range strings.Split(*cases, ",") {
			cfg.only[strings.TrimSpace(c)] = true
		}
	}
	rep, err := benchmark(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if *jsonOut == "-" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printTable(os.Stdout, rep, *markdown)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", err)
				return 1
			}
		}
	}
	for _, c := range rep.Cases {
		if !c.ok() {
			return 1
		}
	}
	return 0
}

// benchmark prepares, runs the plan of cfg's mode and builds the report.
func benchmark(cfg config) (*report, error) {
	p, mode := fullPlan(), "full"
	if cfg.quick {
		p, mode = quickPlan(), "quick"
	}
	if cfg.only != nil {
		known := map[string]bool{}
		for _, c := range p.cases {
			known[c.Name] = true
		}
		for c := range cfg.only {
			if !known[c] {
				return nil, fmt.Errorf("no case %q in %s mode", c, mode)
			}
		}
	}
	e, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	// Interrupted: kill the workloads and restored trees, remove the work
	// dir, and go.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			fmt.Fprintln(os.Stderr, "bench: interrupted, cleaning up")
			e.cleanup()
			os.Exit(130)
		}
	}()
	results := e.runPlan(p)
	return &report{Machine: machine(), Mode: mode, Runs: cfg.runs, FreePages: e.hold.describe(cfg.holdFree),
		Rows: buildRows(p, results), Cases: results}, nil
}
