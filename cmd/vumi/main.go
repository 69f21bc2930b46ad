// Command vumi is the one binary of the platform: the embedded broker and
// registry, workers, and tools to send, tail and inspect topics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // after "vumi <name> "
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what commands share: output streams and the logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

// usageError is a bad command line: printed with the command's usage and
// exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func commands() []*command {
	return []*command{
		brokerCommand(),
		smscCommand(),
		runCommand(),
		workerCommand(),
		topologyCommand(),
		kindsCommand(),
		healthCommand(),
		failuresCommand(),
		sendCommand(),
		tailCommand(),
		traceCommand(),
		replayCommand(),
		messagesCommand(),
		queryCommand(),
		exportCommand(),
		accountsCommand(),
		topicsCommand(),
		versionCommand(),
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

func runMain(ctx context.Context, args []string, e *env) int {
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: logLevel()}))
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c := find(cmds, args[1]); c != nil {
				return runCmd(ctx, e, c, []string{"-h"})
			}
		}
		if len(args) == 0 {
			printUsage(e.stderr, cmds)
			return 2
		}
		printUsage(e.stdout, cmds)
		return 0
	}
	c := find(cmds, args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "vumi: unknown command %q\n\n", args[0])
		printUsage(e.stderr, cmds)
		return 2
	}
	return runCmd(ctx, e, c, args[1:])
}

func runCmd(ctx context.Context, e *env, c *command, args []string) int {
	err := c.run(ctx, e, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "vumi %s: %v\nusage: vumi %s %s\n", c.name, err, c.name, c.usage)
		return 2
	default:
		fmt.Fprintf(e.stderr, "vumi %s: %v\n", c.name, err)
		return 1
	}
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprintln(w, "vumi: a multi-channel mobile messaging platform on Kafka")
	fmt.Fprintln(w, "\nusage: vumi <command> [flags]\n\ncommands:")
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'vumi <command> -h' for a command's flags.")
	fmt.Fprintln(w, "Environment: VUMI_CONFIG, VUMI_DATA_DIR, VUMI_BROKERS, VUMI_REGISTRY_URL, VUMI_REGISTRY_USERNAME,\n  VUMI_REGISTRY_PASSWORD, VUMI_METRICS_ADDR, VUMI_LOG_LEVEL.")
}

// newFlags returns a flag set whose -h prints the command's usage.
func newFlags(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("vumi "+c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: vumi %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, turning errors other than -h into usage errors.
// Flags may come before, between or after the positional arguments
// ("vumi topics create sms.inbound -partitions 8"); "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			positional = append(positional, rest...) // after "--": all positional
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Leave the positional arguments as fs.Args().
	return fs.Parse(append([]string{"--"}, positional...))
}

func logLevel() slog.Level {
	switch strings.ToLower(os.Getenv("VUMI_LOG_LEVEL")) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func versionCommand() *command {
	c := &command{name: "version", summary: "print the version", usage: ""}
	c.run = func(_ context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "vumi %s\n", version)
		return nil
	}
	return c
}
