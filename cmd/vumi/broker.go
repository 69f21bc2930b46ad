package main

import (
	"context"
	"fmt"

	"github.com/vumi-kafka/vumi/internal/broker"
)

func brokerCommand() *command {
	c := &command{
		name:    "broker",
		summary: "run the embedded Kafka broker and schema registry (data persisted under -data-dir)",
		usage:   "[-data-dir DIR] [-kafka-port N] [-registry-port N]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		cfg := broker.Config{}
		fs.StringVar(&cfg.DataDir, "data-dir", envOr("VUMI_DATA_DIR", broker.DefaultDataDir), "directory for the broker's data (kept across restarts) ($VUMI_DATA_DIR)")
		fs.IntVar(&cfg.KafkaPort, "kafka-port", broker.DefaultKafkaPort, "Kafka listener port on 127.0.0.1")
		fs.IntVar(&cfg.RegistryPort, "registry-port", broker.DefaultRegistryPort, "schema registry port on 127.0.0.1")
		fs.BoolVar(&cfg.NoRegistry, "no-registry", false, "do not run the schema registry")
		fs.StringVar(&cfg.RegistryUsername, "registry-username", envOr("VUMI_REGISTRY_USERNAME", ""), "require this basic-auth user on the registry ($VUMI_REGISTRY_USERNAME)")
		fs.StringVar(&cfg.RegistryPassword, "registry-password", envOr("VUMI_REGISTRY_PASSWORD", ""), "basic-auth password of the registry ($VUMI_REGISTRY_PASSWORD)")
		fs.IntVar(&cfg.DefaultPartitions, "partitions", broker.DefaultPartitions, "partitions of topics created without a partition count")
		fs.BoolVar(&cfg.SyncWrites, "sync-writes", false, "fsync every produced batch")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("unexpected arguments %v", fs.Args())
		}
		cfg.Logger = e.log
		b, err := broker.Start(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "kafka    %s\nregistry %s\ndata     %s\n", b.KafkaAddr(), b.RegistryURL(), cfg.DataDir)
		<-ctx.Done()
		e.log.Info("shutting down")
		return b.Close()
	}
	return c
}
