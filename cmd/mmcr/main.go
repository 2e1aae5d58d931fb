// Command mmcr checkpoints and restores Linux process trees, memory first.
//
// It is a thin layer of flags over the dump, restore, image and check
// packages: every decision is made there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mmcr/mmcr/check"
	"github.com/mmcr/mmcr/dump"
	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/restore"
)

func main() {
	// restore execs mmcr with restore.StubArg to get a stub task, stopped
	// at exec and never run; if it ever runs, it just exits.
	if len(os.Args) == 2 && os.Args[1] == restore.StubArg {
		os.Exit(1)
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// exitError carries an exit status that is not a failure of mmcr itself
// (the restored root's own status).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run runs mmcr with args (os.Args) and returns its exit status. Help
// and usage go to stdout and stderr, and so does the one-line error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		usage(stderr)
		return 2
	}
	err := dispatch(args[1:], stdout)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// One line, always: a user's script greps it, a person reads it.
	fmt.Fprintf(stderr, "mmcr: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	return 1
}

// commands are mmcr's subcommands, in the order help lists them.
var commands = []command{
	{
		name:     "dump",
		summary:  "checkpoint the process tree rooted at PID into an image directory",
		synopsis: "mmcr dump -t PID -D DIR [--leave-running | --leave-stopped] [-v...] [--log-file F]",
		options:  func() options { return new(dumpOptions) },
	},
	{
		name:     "restore",
		summary:  "bring a dumped process tree back, running, with its original pids",
		synopsis: "mmcr restore -D DIR [-d|--restore-detached] [--pidfile F] [--trust-images] [--leave-stopped] [-v...] [--log-file F]",
		options:  func() options { return new(restoreOptions) },
	},
	{
		name:     "show",
		summary:  "print what an image directory holds: the tree, every VMA, page counts",
		synopsis: "mmcr show -D DIR [--json]",
		options:  func() options { return new(showOptions) },
	},
	{
		name:     "check",
		summary:  "check that this kernel has what mmcr relies on",
		synopsis: "mmcr check",
		options:  func() options { return new(checkOptions) },
	},
}

// logOptions are the logging flags of dump and restore.
type logOptions struct {
	verbose counter
	file    string
}

func (o *logOptions) define(f *flags) {
	f.add(&o.verbose, "", "log more (repeat: -vv for debug)", "verbose", "v")
	f.string(&o.file, "FILE", "write the log to FILE instead of stderr", "log-file")
}

// newLogger builds the logger -v/-vv and --log-file ask for. The returned
// closer closes the log file, if any.
func newLogger(o logOptions) (*slog.Logger, func(), error) {
	level := slog.LevelWarn
	switch n := o.verbose; {
	case n == 1:
		level = slog.LevelInfo
	case n >= 2:
		level = slog.LevelDebug
	}
	var w io.Writer = os.Stderr
	closer := func() {}
	if path := o.file; path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		w, closer = f, func() { f.Close() }
		if level > slog.LevelInfo {
			level = slog.LevelInfo // a log file asked for is worth filling
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closer, nil
}

// interruptible returns a context that SIGINT or SIGTERM cancels, with
// the signal as its cause, and the function that stops catching them.
// dump and restore check it between steps, so an interrupted mmcr takes
// its ordinary failure path (the dumped tree detached as it was, the
// restored tasks killed) instead of dying with tracees half-changed.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			cancel(fmt.Errorf("interrupted by %v", sig))
		case <-done:
		}
	}()
	var once bool
	return ctx, func() {
		if once {
			return
		}
		once = true
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// dumpOptions are mmcr dump's flags.
type dumpOptions struct {
	log          logOptions
	pid          int
	dir          string
	leaveRunning bool
	leaveStopped bool
}

func (o *dumpOptions) define(f *flags) {
	f.int(&o.pid, "PID", "PID of the tree's root", "tree", "t").require()
	f.string(&o.dir, "DIR", "image DIR", "images-dir", "D").require()
	f.bool(&o.leaveRunning, "resume the tree after dumping instead of killing it", "leave-running", "R")
	f.bool(&o.leaveStopped, "leave the tree stopped after dumping, as by SIGSTOP, instead of killing it", "leave-stopped")
	o.log.define(f)
}

func (o *dumpOptions) run() error {
	log, closeLog, err := newLogger(o.log)
	if err != nil {
		return err
	}
	defer closeLog()
	if o.pid <= 0 {
		return fmt.Errorf("dump: invalid pid %d", o.pid)
	}
	ctx, stop := interruptible()
	defer stop()
	return dump.Run(dump.Options{
		PID:          o.pid,
		Dir:          o.dir,
		LeaveRunning: o.leaveRunning,
		LeaveStopped: o.leaveStopped,
		Log:          log,
		Ctx:          ctx,
	})
}

// restoreOptions are mmcr restore's flags. Without -d, run waits for the
// restored root and passes its exit status on (exitError).
type restoreOptions struct {
	log         logOptions
	dir         string
	detached    bool
	pidFile     string
	trustImages bool
	stopped     bool
}

func (o *restoreOptions) define(f *flags) {
	f.string(&o.dir, "DIR", "image DIR", "images-dir", "D").require()
	f.bool(&o.detached, "return once the tree runs instead of waiting for its root", "restore-detached", "d")
	f.string(&o.pidFile, "FILE", "write the restored root's pid to FILE", "pidfile")
	f.bool(&o.trustImages, "restore even from an image dir owned by another user, writable by others, or holding symbolic links", "trust-images")
	f.bool(&o.stopped, "leave the restored tree stopped, as by SIGSTOP, for SIGCONT to resume", "leave-stopped")
	o.log.define(f)
}

func (o *restoreOptions) run() error {
	log, closeLog, err := newLogger(o.log)
	if err != nil {
		return err
	}
	defer closeLog()
	ctx, stop := interruptible()
	root, err := restore.Run(restore.Options{
		Dir:          o.dir,
		Detached:     o.detached,
		PidFile:      o.pidFile,
		TrustImages:  o.trustImages,
		LeaveStopped: o.stopped,
		Log:          log,
		Stdin:        os.Stdin,
		Stdout:       os.Stdout,
		Stderr:       os.Stderr,
		Ctx:          ctx,
	})
	// The tree runs on its own now: signals take their default
	// action on mmcr again.
	stop()
	if err != nil {
		return err
	}
	if o.detached {
		return nil
	}
	code, err := restore.Wait(root)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

// showOptions are mmcr show's flags.
type showOptions struct {
	dir  string
	json bool
}

func (o *showOptions) define(f *flags) {
	f.string(&o.dir, "DIR", "image DIR", "images-dir", "D").require()
	f.bool(&o.json, "print JSON for scripts", "json")
}

func (o *showOptions) run() error {
	r, err := image.Open(o.dir)
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := image.Summarize(r)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	return sum.WriteText(os.Stdout)
}

// checkOptions has no flags: check only takes --help.
type checkOptions struct{}

func (checkOptions) define(*flags) {}

func (checkOptions) run() error {
	if !check.Run(os.Stdout) {
		return errors.New("check: this machine lacks features mmcr needs (see above)")
	}
	return nil
}
