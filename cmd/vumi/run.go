package main

import (
	"context"
	"fmt"
	"strings"

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
		return topology.Run(ctx, cfg, kinds(), topology.RunOptions{Logger: e.log, MetricsAddr: *metricsAddr})
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
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return usagef("name at least one worker to run")
		}
		cfg, err := topology.LoadFile(*file, kinds())
		if err != nil {
			return err
		}
		return topology.Run(ctx, cfg, kinds(), topology.RunOptions{Workers: fs.Args(), Attach: true, Logger: e.log, MetricsAddr: *metricsAddr})
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
