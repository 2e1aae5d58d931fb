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

	"github.com/urfave/cli/v2"

	"github.com/mmcr/mmcr/check"
	"github.com/mmcr/mmcr/dump"
	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/restore"
)

// stubArg is the argument restore execs mmcr with to get a stub task. The
// stub is stopped at exec and never runs; if it ever does, it just exits.
const stubArg = "__restore-stub"

func main() {
	if len(os.Args) == 2 && os.Args[1] == stubArg {
		os.Exit(1)
	}
	os.Exit(run(os.Args))
}

// exitError carries an exit status that is not a failure of mmcr itself
// (the restored root's own status).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(args []string) int {
	app := &cli.App{
		Name:                   "mmcr",
		Usage:                  "checkpoint and restore Linux process trees, memory first",
		UseShortOptionHandling: true,
		HideHelpCommand:        true,
		Commands: []*cli.Command{
			dumpCommand(),
			restoreCommand(),
			showCommand(),
			checkCommand(),
		},
	}
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// One line, always: a user's script greps it, a person reads it.
	fmt.Fprintf(os.Stderr, "mmcr: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	return 1
}

var logFlags = []cli.Flag{
	&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more (repeat: -vv for debug)", Count: new(int)},
	&cli.StringFlag{Name: "log-file", Usage: "write the log to `FILE` instead of stderr"},
}

// newLogger builds the logger -v/-vv and --log-file ask for. The returned
// closer closes the log file, if any.
func newLogger(c *cli.Context) (*slog.Logger, func(), error) {
	level := slog.LevelWarn
	switch n := c.Count("verbose"); {
	case n == 1:
		level = slog.LevelInfo
	case n >= 2:
		level = slog.LevelDebug
	}
	var w io.Writer = os.Stderr
	closer := func() {}
	if path := c.String("log-file"); path != "" {
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

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "checkpoint the process tree rooted at PID into an image directory",
		UsageText: "mmcr dump -t PID -D DIR [--leave-running] [-v...] [--log-file F]",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "tree", Aliases: []string{"t"}, Usage: "`PID` of the tree's root", Required: true},
			&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "image `DIR`", Required: true},
			&cli.BoolFlag{Name: "leave-running", Aliases: []string{"R"}, Usage: "resume the tree after dumping instead of killing it"},
		}, logFlags...),
		Action: func(c *cli.Context) error {
			log, closeLog, err := newLogger(c)
			if err != nil {
				return err
			}
			defer closeLog()
			if c.Int("tree") <= 0 {
				return fmt.Errorf("dump: invalid pid %d", c.Int("tree"))
			}
			ctx, stop := interruptible()
			defer stop()
			return dump.Run(dump.Options{
				PID:          c.Int("tree"),
				Dir:          c.String("images-dir"),
				LeaveRunning: c.Bool("leave-running"),
				Log:          log,
				Ctx:          ctx,
			})
		},
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "bring a dumped process tree back, running, with its original pids",
		UsageText: "mmcr restore -D DIR [-d|--restore-detached] [--pidfile F] [--trust-images] [-v...] [--log-file F]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "image `DIR`", Required: true},
			&cli.BoolFlag{Name: "restore-detached", Aliases: []string{"d"}, Usage: "return once the tree runs instead of waiting for its root"},
			&cli.StringFlag{Name: "pidfile", Usage: "write the restored root's pid to `FILE`"},
			&cli.BoolFlag{Name: "trust-images", Usage: "restore even from an image dir owned by another user, writable by others, or holding symbolic links"},
		}, logFlags...),
		Action: func(c *cli.Context) error {
			log, closeLog, err := newLogger(c)
			if err != nil {
				return err
			}
			defer closeLog()
			ctx, stop := interruptible()
			root, err := restore.Run(restore.Options{
				Dir:         c.String("images-dir"),
				Detached:    c.Bool("restore-detached"),
				PidFile:     c.String("pidfile"),
				TrustImages: c.Bool("trust-images"),
				Log:         log,
				Stdin:       os.Stdin,
				Stdout:      os.Stdout,
				Stderr:      os.Stderr,
				Ctx:         ctx,
			})
			// The tree runs on its own now: signals take their default
			// action on mmcr again.
			stop()
			if err != nil {
				return err
			}
			if c.Bool("restore-detached") {
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
		},
	}
}

func showCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "print what an image directory holds: the tree, every VMA, page counts",
		UsageText: "mmcr show -D DIR [--json]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "images-dir", Aliases: []string{"D"}, Usage: "image `DIR`", Required: true},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			r, err := image.Open(c.String("images-dir"))
			if err != nil {
				return err
			}
			defer r.Close()
			sum, err := image.Summarize(r)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			return sum.WriteText(os.Stdout)
		},
	}
}

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check that this kernel has what mmcr relies on",
		UsageText: "mmcr check",
		Action: func(c *cli.Context) error {
			if !check.Run(os.Stdout) {
				return errors.New("check: this machine lacks features mmcr needs (see above)")
			}
			return nil
		},
	}
}
