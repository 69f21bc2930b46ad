// Package builtin registers the middleware kinds that ship with the
// project, for the binary's explicit registry: every middleware of Vumi
// 0.6, under short names and Vumi's class paths.
package builtin

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/kvtopic"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Kinds returns every built-in middleware kind.
func Kinds() []*topology.MiddlewareKind {
	return []*topology.MiddlewareKind{
		{
			Name:      "logging",
			Aliases:   []string{"vumi.middleware.logging.LoggingMiddleware", "vumi.middleware.LoggingMiddleware"},
			Summary:   "logs every message, event and failure passing through",
			NewConfig: func() topology.MiddlewareConfig { return middleware.NewLoggingConfig() },
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewLogging(spec.Name, spec.Config.(*middleware.LoggingConfig), deps.WorkerLogger(worker))
			},
		},
		{
			Name: "address_translator",
			Aliases: []string{"vumi.middleware.address_translator.AddressTranslationMiddleware",
				"vumi.middleware.AddressTranslationMiddleware"},
			Summary:   "maps outbound to_addr through outbound_map and inbound from_addr through its inverse",
			NewConfig: func() topology.MiddlewareConfig { return &middleware.AddressTranslationConfig{} },
			Build: func(_ *topology.Deps, _ string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewAddressTranslation(spec.Name, spec.Config.(*middleware.AddressTranslationConfig))
			},
		},
		{
			Name:      "tagger",
			Aliases:   []string{"vumi.middleware.tagger.TaggingMiddleware", "vumi.middleware.TaggingMiddleware"},
			Summary:   "tags inbound messages by to_addr pattern; adds fields to outbound messages by tag name",
			NewConfig: func() topology.MiddlewareConfig { return &middleware.TaggingConfig{} },
			Build: func(_ *topology.Deps, _ string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewTagging(spec.Name, spec.Config.(*middleware.TaggingConfig))
			},
		},
		{
			Name:      "storing",
			Aliases:   []string{"vumi.middleware.message_storing.StoringMiddleware", "vumi.middleware.StoringMiddleware"},
			Summary:   "copies messages and events to a message store's history topics",
			NewConfig: func() topology.MiddlewareConfig { return middleware.NewStoringConfig() },
			IO: func(_ string, spec *topology.MiddlewareSpec) topology.IO {
				p := spec.Config.(*middleware.StoringConfig).StorePrefix
				return topology.IO{Produces: []topology.Stream{
					{Topic: p + topology.SuffixInbound, Kind: "user_message"},
					{Topic: p + topology.SuffixOutbound, Kind: "user_message"},
					{Topic: p + topology.SuffixEvent, Kind: "event"},
				}}
			},
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				cfg := spec.Config.(*middleware.StoringConfig)
				cl, err := kgo.NewClient(append(deps.KafkaOpts(worker+"."+spec.Name), kgo.ProducerLinger(0))...)
				if err != nil {
					return nil, fmt.Errorf("kafka client: %w", err)
				}
				n := deps.Names
				return middleware.NewStoring(spec.Name, cfg, middleware.StoringDeps{
					Topics: middleware.StoreTopics{Inbound: n.Inbound(cfg.StorePrefix), Outbound: n.Outbound(cfg.StorePrefix), Event: n.Event(cfg.StorePrefix)},
					Codecs: deps.Codecs, Writer: kafkaWriter{cl},
					InboundKey: topology.InboundKey, OutboundKey: topology.OutboundKey, EventKey: topology.EventKey,
				})
			},
		},
		{
			Name:      "session_length",
			Aliases:   []string{"vumi.middleware.session_length.SessionLengthMiddleware"},
			Summary:   "stamps session start and end times into helper_metadata",
			NewConfig: func() topology.MiddlewareConfig { return middleware.NewSessionLengthConfig() },
			IO: func(worker string, spec *topology.MiddlewareSpec) topology.IO {
				s := topology.Stream{Topic: SessionTopic(worker, spec.Name), Kind: "state", Compacted: true}
				return topology.IO{Consumes: []topology.Stream{s}, Produces: []topology.Stream{s}}
			},
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				log := deps.WorkerLogger(worker)
				kv, err := kvtopic.Open(ctx, deps.Names.Prefix+SessionTopic(worker, spec.Name), deps.KafkaOpts(worker+"."+spec.Name), log)
				if err != nil {
					return nil, err
				}
				mw, err := middleware.NewSessionLength(spec.Name, spec.Config.(*middleware.SessionLengthConfig), kv, log, nil)
				if err != nil {
					_ = kv.Close()
					return nil, err
				}
				return mw, nil
			},
		},
		{
			Name:      "accounts",
			Summary:   "links every message to an account (helper_metadata.go.user_account); rejects messages of inactive accounts to the failures topic",
			NewConfig: func() topology.MiddlewareConfig { return middleware.NewAccountConfig() },
			IO: func(_ string, spec *topology.MiddlewareSpec) topology.IO {
				s := topology.Stream{Topic: spec.Config.(*middleware.AccountConfig).Topic, Kind: "state", Compacted: true}
				return topology.IO{Consumes: []topology.Stream{s}, Produces: []topology.Stream{s}}
			},
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				cfg := spec.Config.(*middleware.AccountConfig)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				log := deps.WorkerLogger(worker)
				kv, err := kvtopic.Open(ctx, deps.Names.Prefix+cfg.Topic, deps.KafkaOpts(worker+"."+spec.Name), log)
				if err != nil {
					return nil, err
				}
				cl, err := kgo.NewClient(append(deps.KafkaOpts(worker+"."+spec.Name+".failures"), kgo.ProducerLinger(0))...)
				if err != nil {
					_ = kv.Close()
					return nil, fmt.Errorf("kafka client: %w", err)
				}
				fw := failureWriter{kafkaWriter{cl}, deps}
				mw, err := middleware.NewAccounts(spec.Name, worker, cfg, kv, fw, log)
				if err != nil {
					_ = kv.Close()
					_ = fw.Close()
					return nil, err
				}
				return mw, nil
			},
		},
		{
			Name:      "static_provider",
			Aliases:   []string{"vumi.middleware.provider_setter.StaticProviderSettingMiddleware"},
			Summary:   "sets a fixed provider on inbound and outbound messages",
			NewConfig: func() topology.MiddlewareConfig { return &middleware.StaticProviderConfig{} },
			Build: func(_ *topology.Deps, _ string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewStaticProvider(spec.Name, spec.Config.(*middleware.StaticProviderConfig))
			},
		},
		{
			Name:      "address_prefix_provider",
			Aliases:   []string{"vumi.middleware.provider_setter.AddressPrefixProviderSettingMiddleware"},
			Summary:   "sets provider from the end user's address prefix",
			NewConfig: func() topology.MiddlewareConfig { return &middleware.AddressPrefixProviderConfig{} },
			Build: func(deps *topology.Deps, worker string, spec *topology.MiddlewareSpec) (middleware.Middleware, error) {
				return middleware.NewAddressPrefixProvider(spec.Name, spec.Config.(*middleware.AddressPrefixProviderConfig), deps.WorkerLogger(worker))
			},
		},
	}
}

// SessionTopic is the compacted topic (without the cluster prefix) where a
// session_length middleware of a worker keeps session start times.
func SessionTopic(worker, middlewareName string) string {
	return worker + "." + middlewareName + ".sessions"
}

// kafkaWriter writes store records with acks=all and waits for them.
type kafkaWriter struct{ cl *kgo.Client }

func (k kafkaWriter) Write(ctx context.Context, topic string, key, value []byte) error {
	if err := kafka.ProduceSync(ctx, k.cl, &kgo.Record{Topic: topic, Key: key, Value: value}); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	return nil
}

func (k kafkaWriter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := k.cl.Flush(ctx)
	k.cl.Close()
	return err
}

// failureWriter produces failures to <connector>.failures.
type failureWriter struct {
	kafkaWriter
	deps *topology.Deps
}

func (f failureWriter) WriteFailure(ctx context.Context, connector string, fl *schemas.Failure) error {
	val, err := f.deps.Codecs.Failure.Encode(fl)
	if err != nil {
		return fmt.Errorf("encode failure: %w", err)
	}
	return f.Write(ctx, f.deps.Names.Failures(connector), fl.Key, val)
}
