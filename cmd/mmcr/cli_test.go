package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParseDump(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want dumpOptions
	}{
		{[]string{"-t", "42", "-D", "img"}, dumpOptions{pid: 42, dir: "img"}},
		{[]string{"--tree", "42", "--images-dir", "img", "--leave-running"}, dumpOptions{pid: 42, dir: "img", leaveRunning: true}},
		{[]string{"--tree=42", "-D=img", "-R"}, dumpOptions{pid: 42, dir: "img", leaveRunning: true}},
		{[]string{"-t", "42", "-D", "img", "--leave-stopped"}, dumpOptions{pid: 42, dir: "img", leaveStopped: true}},
		{[]string{"-tree", "42", "-images-dir", "img"}, dumpOptions{pid: 42, dir: "img"}},
		{[]string{"-t", "42", "-D", "img", "-v"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 1}}},
		{[]string{"-t", "42", "-D", "img", "-vv"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 2}}},
		{[]string{"-t", "42", "-D", "img", "-v", "-v"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 2}}},
		{[]string{"-t", "42", "-D", "img", "--verbose", "--verbose", "-v"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 3}}},
		{[]string{"-vv", "-v", "-t", "42", "-D", "img"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 3}}},
		{[]string{"-t", "42", "-D", "img", "-Rvv"}, dumpOptions{pid: 42, dir: "img", leaveRunning: true, log: logOptions{verbose: 2}}},
		{[]string{"-t", "42", "-D", "img", "-vv", "--log-file", "d.log"}, dumpOptions{pid: 42, dir: "img", log: logOptions{verbose: 2, file: "d.log"}}},
		{[]string{"-t", "42", "-D", "img", "--log-file=d.log"}, dumpOptions{pid: 42, dir: "img", log: logOptions{file: "d.log"}}},
		// A flag's value is never split or taken for a flag.
		{[]string{"-t", "42", "-D", "-vv"}, dumpOptions{pid: 42, dir: "-vv"}},
		{[]string{"-t", "42", "--log-file", "-R", "-D", "img"}, dumpOptions{pid: 42, dir: "img", log: logOptions{file: "-R"}}},
		{[]string{"-t", "42", "-D", "img", "-v=false"}, dumpOptions{pid: 42, dir: "img"}},
	} {
		_, o, err := parse(append([]string{"dump"}, tc.args...))
		if err != nil {
			t.Errorf("dump %q: %v", tc.args, err)
			continue
		}
		if got := *o.(*dumpOptions); got != tc.want {
			t.Errorf("dump %q: got %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

func TestParseRestore(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want restoreOptions
	}{
		{[]string{"-D", "img"}, restoreOptions{dir: "img"}},
		{[]string{"-D", "img", "-d", "--pidfile", "p", "-vv", "--log-file", "r.log"},
			restoreOptions{dir: "img", detached: true, pidFile: "p", log: logOptions{verbose: 2, file: "r.log"}}},
		{[]string{"--images-dir=img", "--restore-detached", "--pidfile=p", "--trust-images"},
			restoreOptions{dir: "img", detached: true, pidFile: "p", trustImages: true}},
		{[]string{"-D", "img", "-dv"}, restoreOptions{dir: "img", detached: true, log: logOptions{verbose: 1}}},
		{[]string{"-D", "img", "-d", "--leave-stopped"}, restoreOptions{dir: "img", detached: true, stopped: true}},
	} {
		_, o, err := parse(append([]string{"restore"}, tc.args...))
		if err != nil {
			t.Errorf("restore %q: %v", tc.args, err)
			continue
		}
		if got := *o.(*restoreOptions); got != tc.want {
			t.Errorf("restore %q: got %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

func TestParseShowCheck(t *testing.T) {
	_, o, err := parse([]string{"show", "-D", "img", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *o.(*showOptions), (showOptions{dir: "img", json: true}); got != want {
		t.Errorf("show: got %+v, want %+v", got, want)
	}
	if _, o, err = parse([]string{"check"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.(*checkOptions); !ok {
		t.Errorf("check parsed into %T", o)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dump"}, "dump: missing required flags --tree/-t, --images-dir/-D"},
		{[]string{"dump", "-t", "1"}, "dump: missing required flag --images-dir/-D"},
		{[]string{"dump", "-D", "img", "-v"}, "dump: missing required flag --tree/-t"},
		{[]string{"restore", "-d"}, "restore: missing required flag --images-dir/-D"},
		{[]string{"show", "--json"}, "show: missing required flag --images-dir/-D"},
		{[]string{"dump", "-t", "1", "-D", "img", "extra"}, `dump: unexpected argument "extra"`},
		{[]string{"dump", "-t", "1", "extra", "-D", "img"}, `dump: unexpected argument "extra"`},
		{[]string{"dump", "-t", "1", "-D", "img", "--", "-R"}, `dump: unexpected argument "-R"`},
		{[]string{"check", "now"}, `check: unexpected argument "now"`},
		{[]string{"dump", "--bogus", "-t", "1", "-D", "img"}, "dump: flag provided but not defined: -bogus"},
		{[]string{"dump", "-t", "1", "-D", "img", "-vx"}, "dump: flag provided but not defined: -vx"},
		{[]string{"dump", "-t", "1", "-D", "img", "--vv"}, "dump: flag provided but not defined: -vv"},
		{[]string{"show", "-D", "img", "-d"}, "show: flag provided but not defined: -d"},
		{[]string{"dump", "-t", "x", "-D", "img"}, `dump: invalid value "x" for flag -t: parse error`},
		{[]string{"dump", "-t", "1", "-D"}, "dump: flag needs an argument: -D"},
		{[]string{"undump"}, `unknown command "undump" (mmcr --help lists the commands)`},
		{[]string{"-v", "dump"}, "flag -v before the command (mmcr --help lists the commands)"},
	} {
		_, _, err := parse(tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseHelp(t *testing.T) {
	for _, args := range [][]string{{"dump", "-h"}, {"dump", "--help"}, {"restore", "-D", "img", "-help"}, {"check", "-h"}} {
		if _, _, err := parse(args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: got error %v, want flag.ErrHelp", args, err)
		}
	}
}

// runOut runs mmcr with args and returns its exit status, stdout, stderr.
func runOut(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(append([]string{"mmcr"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runOut(args...)
		if code != 0 || errOut != "" {
			t.Errorf("mmcr %q: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		for _, c := range commands {
			if !strings.Contains(out, "  "+c.name+" ") || !strings.Contains(out, c.summary) {
				t.Errorf("mmcr %q: help lacks %s: %q", args, c.name, out)
			}
		}
	}
	for _, args := range [][]string{{"dump", "--help"}, {"dump", "-h"}, {"help", "dump"}, {"-h", "dump"}} {
		code, out, errOut := runOut(args...)
		if code != 0 || errOut != "" {
			t.Errorf("mmcr %q: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		for _, want := range []string{
			"mmcr dump -t PID -D DIR",
			"--tree PID, -t PID", "PID of the tree's root (required)",
			"--images-dir DIR, -D DIR", "--leave-running, -R",
			"--verbose, -v", "log more (repeat: -vv for debug)", "--log-file FILE",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("mmcr %q: help lacks %q: %q", args, want, out)
			}
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	code, out, errOut := runOut()
	if code != 2 || out != "" || !strings.Contains(errOut, "Commands:") {
		t.Errorf("mmcr: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dump"}, "mmcr: dump: missing required flags --tree/-t, --images-dir/-D\n"},
		{[]string{"dump", "-t", "1", "-D", "img", "-R", "extra"}, "mmcr: dump: unexpected argument \"extra\"\n"},
		{[]string{"dump", "-t", "0", "-D", "img"}, "mmcr: dump: invalid pid 0\n"},
		{[]string{"restore", "--bogus"}, "mmcr: restore: flag provided but not defined: -bogus\n"},
		{[]string{"frobnicate"}, "mmcr: unknown command \"frobnicate\" (mmcr --help lists the commands)\n"},
		{[]string{"help", "frobnicate"}, "mmcr: unknown command \"frobnicate\" (mmcr --help lists the commands)\n"},
		{[]string{"help", "dump", "restore"}, "mmcr: help: unexpected argument \"restore\"\n"},
	} {
		code, out, errOut := runOut(tc.args...)
		if code != 1 || out != "" || errOut != tc.want {
			t.Errorf("mmcr %q: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestSplitShort(t *testing.T) {
	f := newFlags("test")
	var o dumpOptions
	o.define(f)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-vv"}, []string{"-v", "-v"}},
		{[]string{"-Rvv", "-t", "1"}, []string{"-R", "-v", "-v", "-t", "1"}},
		{[]string{"--vv"}, []string{"--vv"}},         // long: never split
		{[]string{"-vv=true"}, []string{"-vv=true"}}, // with a value: never split
		{[]string{"-vt"}, []string{"-vt"}},           // -t takes a value
		{[]string{"-D", "-vv", "-vv"}, []string{"-D", "-vv", "-v", "-v"}},
		{[]string{"-D=-vv", "-vv"}, []string{"-D=-vv", "-v", "-v"}},
		{[]string{"x", "-vv"}, []string{"x", "-vv"}},   // after an operand: flags end
		{[]string{"--", "-vv"}, []string{"--", "-vv"}}, // after --: flags end
	} {
		if got := splitShort(f.set, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitShort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
