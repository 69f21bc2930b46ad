package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/vumi-kafka/vumi/internal/management"
	"github.com/vumi-kafka/vumi/topology"
)

const defaultConfig = "deploy/local/vumi.yaml"

func runCommand() *command {
	c := &command{
		name:    "run",
		summary: "run every worker of a deployment config in one process (with the embedded broker and registry when no brokers are configured)",
		usage:   "[-c FILE]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		file := fs.String("c", envOr("VUMI_CONFIG", defaultConfig), "deployment config file ($VUMI_CONFIG)")
		metricsAddr := fs.String("metrics-addr", envOr("VUMI_METRICS_ADDR", "127.0.0.1:9464"), "where to serve /metrics in the Prometheus format, empty for nowhere ($VUMI_METRICS_ADDR)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("unexpected arguments %v (use 'vumi worker NAME' to run one worker)", fs.Args())
		}
		cfg, err := topology.LoadFile(*file, kinds())
		if err != nil {
			return err
		}
		opts := topology.RunOptions{Logger: e.log, MetricsAddr: *metricsAddr}
		withManagement(cfg, &opts, true)
		return topology.Run(ctx, cfg, kinds(), opts)
	}
	return c
}

func workerCommand() *command {
	c := &command{
		name:    "worker",
		summary: "run some workers of a deployment config against its cluster (or a running 'vumi broker')",
		usage:   "[-c FILE] NAME...",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		file := fs.String("c", envOr("VUMI_CONFIG", defaultConfig), "deployment config file ($VUMI_CONFIG)")
		metricsAddr := fs.String("metrics-addr", envOr("VUMI_METRICS_ADDR", "127.0.0.1:0"), "where to serve /metrics in the Prometheus format (default any free loopback port, logged), empty for nowhere ($VUMI_METRICS_ADDR)")
		dynamic := fs.Bool("dynamic", false, "also run the channels and routers created through the management API (the config's control topic); with no NAME, only those")
		serve := fs.Bool("serve-management", false, "also serve the management API and dashboard at management.addr")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 && !*dynamic {
			return usagef("name at least one worker to run (or -dynamic)")
		}
		cfg, err := topology.LoadFile(*file, kinds())
		if err != nil {
			return err
		}
		if (*dynamic || *serve) && !cfg.Management.Enabled() {
			return usagef("-dynamic and -serve-management need a management section in %s", *file)
		}
		opts := topology.RunOptions{Workers: fs.Args(), Attach: true, Logger: e.log, MetricsAddr: *metricsAddr}
		if fs.NArg() == 0 {
			opts.NoWorkers = true
		}
		if *dynamic || *serve {
			withManagement(cfg, &opts, *serve)
		}
		return topology.Run(ctx, cfg, kinds(), opts)
	}
	return c
}

func topologyCommand() *command {
	c := &command{
		name:    "topology",
		summary: "validate a deployment config and print its workers and topics (text, mermaid or dot)",
		usage:   "[-c FILE] [-format text|mermaid|dot]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		file := fs.String("c", envOr("VUMI_CONFIG", defaultConfig), "deployment config file ($VUMI_CONFIG)")
		format := fs.String("format", "text", "output format: text, mermaid or dot")
		if err := parse(fs, args); err != nil {
			return err
		}
		cfg, err := topology.LoadFile(*file, kinds())
		if err != nil {
			return err
		}
		g := topology.BuildGraph(cfg)
		verr := g.Validate()
		switch *format {
		case "text":
			err = g.WriteText(e.stdout)
		case "mermaid":
			err = g.WriteMermaid(e.stdout)
		case "dot":
			err = g.WriteDot(e.stdout)
		default:
			return usagef("-format must be text, mermaid or dot, got %q", *format)
		}
		if err != nil {
			return err
		}
		if verr != nil {
			return fmt.Errorf("%s: invalid topology:\n%w", *file, verr)
		}
		return nil
	}
	return c
}

func kindsCommand() *command {
	c := &command{name: "kinds", summary: "list the worker and middleware kinds this binary knows", usage: ""}
	c.run = func(_ context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		if err := parse(fs, args); err != nil {
			return err
		}
		r := kinds()
		fmt.Fprintln(e.stdout, "workers:")
		for _, k := range r.Kinds() {
			aliases := ""
			if len(k.Aliases) > 0 {
				aliases = " (also " + strings.Join(k.Aliases, ", ") + ")"
			}
			fmt.Fprintf(e.stdout, "  %-18s %-12s %s%s\n", k.Name, k.Role, k.Summary, aliases)
		}
		fmt.Fprintln(e.stdout, "middleware:")
		for _, n := range r.MiddlewareNames() {
			k, _ := r.Middleware(n)
			fmt.Fprintf(e.stdout, "  %-18s %s (also %s)\n", k.Name, k.Summary, strings.Join(k.Aliases, ", "))
		}
		return nil
	}
	return c
}

// withManagement adds the management plane to a process of a config with
// a management section: the control topic's channels and routers run here,
// and with serve the API and dashboard are served at management.addr. The
// process's log records are kept for the logs endpoints.
func withManagement(cfg *topology.Config, opts *topology.RunOptions, serve bool) {
	if !cfg.Management.Enabled() {
		return
	}
	logs := management.NewLogBuffer(cfg.Management.LogBuffer)
	opts.Logger = slog.New(management.Tee(opts.Logger.Handler(), logs))
	opts.OnRunning = management.Hook(management.Options{Logs: logs, Serve: serve})
}
