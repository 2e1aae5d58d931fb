package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The command line is parsed with the flag package, not a CLI framework:
// mmcr's start-up is part of every timed dump and restore, and the
// framework it used (urfave/cli) cost ~7 ms of package init per run.

// command is one mmcr subcommand as help shows it; options makes the
// value its flags are read into.
type command struct {
	name     string
	summary  string // one line, for mmcr --help
	synopsis string // for mmcr COMMAND --help
	options  func() options
}

// options is one command's flags and what the command does with them.
type options interface {
	define(f *flags)
	run() error
}

// lookup finds the command called name.
func lookup(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// dispatch runs the command args names; help goes to stdout. It returns
// what the command returns, or why args name none.
func dispatch(args []string, stdout io.Writer) error {
	switch args[0] {
	case "help", "-h", "-help", "--help":
		switch len(args) {
		case 1:
			usage(stdout)
			return nil
		case 2:
			c, ok := lookup(args[1])
			if !ok {
				return unknownCommand(args[1])
			}
			c.help(stdout)
			return nil
		}
		return fmt.Errorf("help: unexpected argument %q", args[2])
	}
	c, o, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	return o.run()
}

// parse finds the command args[0] names and reads the rest of args into
// its options. It returns flag.ErrHelp if they ask for the command's help.
func parse(args []string) (command, options, error) {
	c, ok := lookup(args[0])
	if !ok {
		return command{}, nil, unknownCommand(args[0])
	}
	o := c.options()
	f := newFlags(c.name)
	o.define(f)
	if err := f.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, nil, err
		}
		return c, nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return c, o, nil
}

func unknownCommand(name string) error {
	if strings.HasPrefix(name, "-") {
		return fmt.Errorf("flag %s before the command (mmcr --help lists the commands)", name)
	}
	return fmt.Errorf("unknown command %q (mmcr --help lists the commands)", name)
}

// usage prints mmcr's help: the commands.
func usage(w io.Writer) {
	fmt.Fprintf(w, "mmcr - checkpoint and restore Linux process trees, memory first\n\n")
	fmt.Fprintf(w, "Usage: mmcr COMMAND [flags]  (mmcr COMMAND --help lists its flags)\n\nCommands:\n")
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
}

// help prints the command's help: its synopsis and every flag.
func (c command) help(w io.Writer) {
	f := newFlags(c.name)
	c.options().define(f)
	f.specs = append(f.specs, &flagSpec{names: []string{"help", "h"}, usage: "show this help"})
	fmt.Fprintf(w, "mmcr %s - %s\n\nUsage: %s\n\nFlags:\n", c.name, c.summary, c.synopsis)
	width := 0
	for _, s := range f.specs {
		width = max(width, len(s.String()))
	}
	for _, s := range f.specs {
		u := s.usage
		if s.required {
			u += " (required)"
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, s, u)
	}
}

// flags is a command's flag.FlagSet plus what the flag package lacks:
// aliases shown as one flag in help, and required flags.
type flags struct {
	set   *flag.FlagSet
	specs []*flagSpec // in the order help lists them
}

// flagSpec is one flag, under all its names, as help and the required
// check see it; the flag package holds its value under each name.
type flagSpec struct {
	names    []string // the long name first
	arg      string   // the value's name in help ("PID"); "" for a switch
	usage    string
	required bool
}

func newFlags(name string) *flags {
	set := flag.NewFlagSet(name, flag.ContinueOnError)
	// run prints the error on one line and --help the full help; the
	// flag package would print both, every time.
	set.SetOutput(io.Discard)
	set.Usage = func() {}
	return &flags{set: set}
}

// add registers v under every one of names.
func (f *flags) add(v flag.Value, arg, usage string, names ...string) *flagSpec {
	f.set.Var(v, names[0], usage)
	return f.alias(arg, usage, names)
}

// The flag package keeps its value types to itself: each of these
// registers the first name its own way and the aliases with that value.

func (f *flags) string(p *string, arg, usage string, names ...string) *flagSpec {
	f.set.StringVar(p, names[0], "", usage)
	return f.alias(arg, usage, names)
}

func (f *flags) int(p *int, arg, usage string, names ...string) *flagSpec {
	f.set.IntVar(p, names[0], 0, usage)
	return f.alias(arg, usage, names)
}

func (f *flags) bool(p *bool, usage string, names ...string) *flagSpec {
	f.set.BoolVar(p, names[0], false, usage)
	return f.alias("", usage, names)
}

func (f *flags) alias(arg, usage string, names []string) *flagSpec {
	v := f.set.Lookup(names[0]).Value
	for _, n := range names[1:] {
		f.set.Var(v, n, usage)
	}
	s := &flagSpec{names: names, arg: arg, usage: usage}
	f.specs = append(f.specs, s)
	return s
}

// require makes parse fail unless the flag is given.
func (s *flagSpec) require() { s.required = true }

// String is the flag as help shows it: "--tree PID, -t PID".
func (s *flagSpec) String() string {
	var b strings.Builder
	for i, n := range s.names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(dashed(n))
		if s.arg != "" {
			b.WriteString(" " + s.arg)
		}
	}
	return b.String()
}

// short names the flag in an error: "--tree/-t".
func (s *flagSpec) short() string {
	names := make([]string, len(s.names))
	for i, n := range s.names {
		names[i] = dashed(n)
	}
	return strings.Join(names, "/")
}

// dashed spells a flag the way mmcr's docs do: -t, --tree.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// parse reads args into the flags' variables. No command takes operands,
// so anything left after the flags is an error, as is a required flag
// not given. It returns flag.ErrHelp for -h, --help.
func (f *flags) parse(args []string) error {
	if err := f.set.Parse(splitShort(f.set, args)); err != nil {
		return err
	}
	if f.set.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.set.Arg(0))
	}
	given := map[string]bool{}
	f.set.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var missing []string
	for _, s := range f.specs {
		if s.required && !slices.ContainsFunc(s.names, func(n string) bool { return given[n] }) {
			missing = append(missing, s.short())
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("missing required flag %s", missing[0])
	}
	return fmt.Errorf("missing required flags %s", strings.Join(missing, ", "))
}

// splitShort spells combined one-letter switches out the way getopt reads
// them, "-vv" as "-v -v" and "-Rv" as "-R -v": the flag package would look
// for a flag named "vv". Only an argument made wholly of one-letter
// switches is split, and never a flag's value ("-D -vv" is the dir "-vv").
func splitShort(set *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			// The flag package stops here too.
			return append(out, args[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if fl := set.Lookup(name); fl != nil {
			out = append(out, a)
			if !hasValue && !isSwitch(fl) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		if a[1] != '-' && !hasValue && len(name) > 1 && allSwitches(set, name) {
			for _, r := range name {
				out = append(out, "-"+string(r))
			}
			continue
		}
		out = append(out, a) // unknown: the flag package says so
	}
	return out
}

func allSwitches(set *flag.FlagSet, letters string) bool {
	for _, r := range letters {
		fl := set.Lookup(string(r))
		if fl == nil || !isSwitch(fl) {
			return false
		}
	}
	return true
}

// isSwitch reports whether fl takes no value, as the flag package decides.
func isSwitch(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// counter is a switch that counts how often it is given: -v -v,
// --verbose --verbose and -vv all make 2. -v=false resets it.
type counter int

func (c *counter) String() string {
	if c == nil {
		return "0"
	}
	return strconv.Itoa(int(*c))
}

func (c *counter) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if on {
		*c++
	} else {
		*c = 0
	}
	return nil
}

func (c *counter) IsBoolFlag() bool { return true }
