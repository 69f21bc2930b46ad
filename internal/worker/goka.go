package worker

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/lovoo/goka"

	"github.com/vumi-kafka/vumi/internal/kafka"
)

// NewProcessor builds a goka processor with the project's settings: the
// deployment's brokers and sarama config for consuming (modern protocol),
// a franz-go producer (topology.Deps.GokaProducerBuilder: acks=all,
// idempotent, 1 ms linger), Kafka's murmur2 key hashing so goka and franz-go
// put a key on the same partition, table storage under the state
// directory, and goka's logs through slog. Topics are created by the topology beforehand.
//
// extra options are applied last (goka.WithTester in unit tests). Visit the
// processor's table with VisitAll, never goka's own VisitAll (see
// visitGuard).
func (b *Base) NewProcessor(g *goka.GroupGraph, extra ...goka.ProcessorOption) (*goka.Processor, error) {
	cfg := b.Deps.SaramaConfig(b.Name)
	guard := newVisitGuard()
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = max(b.Deps.Cluster.ReplicationFactor, 1)
	tm.Stream.Replication = max(b.Deps.Cluster.ReplicationFactor, 1)
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorWarn
	opts := []goka.ProcessorOption{
		goka.WithProducerBuilder(b.Deps.GokaProducerBuilder(b.Name + ".goka")),
		goka.WithConsumerGroupBuilder(guardedGroupBuilder(goka.ConsumerGroupBuilderWithConfig(cfg), guard)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, tm)),
		goka.WithStorageBuilder(b.tableStorage()),
		goka.WithHasher(kafka.KafkaHasher()),
		goka.WithLogger(gokaLogger{b.Log.With("component", "goka")}),
		goka.WithClientID(b.Deps.Cluster.Kafka.ClientID + "." + b.Name),
	}
	p, err := goka.NewProcessor(b.Deps.Brokers, g, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("worker %s: goka processor: %w", b.Name, err)
	}
	registerGuard(p, guard)
	return p, nil
}

// gokaLogger sends goka's log lines to slog at debug level.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)   { g.l.Debug(strings.TrimSpace(fmt.Sprint(v...))) }
func (g gokaLogger) Println(v ...any) { g.l.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }
func (g gokaLogger) Printf(f string, v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprintf(f, v...)))
}

// NewView builds a goka view of a table (every partition, kept in a local
// LevelDB copy under the worker's state directory), with the same settings
// as NewProcessor, so that any instance can look any key up. extra options
// are applied last (e.g. goka.WithViewCallback to learn of updates).
func (b *Base) NewView(table goka.Table, codec goka.Codec, extra ...goka.ViewOption) (*goka.View, error) {
	cfg := b.Deps.SaramaConfig(b.Name + ".view")
	tm := goka.NewTopicManagerConfig()
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorWarn
	tm.NoCreate = true
	opts := []goka.ViewOption{
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, tm)),
		goka.WithViewStorageBuilder(b.viewStorage()),
		goka.WithViewHasher(kafka.KafkaHasher()),
		goka.WithViewLogger(gokaLogger{b.Log.With("component", "goka-view")}),
		goka.WithViewClientID(b.Deps.Cluster.Kafka.ClientID + "." + b.Name + ".view"),
	}
	v, err := goka.NewView(b.Deps.Brokers, table, codec, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("worker %s: goka view of %s: %w", b.Name, table, err)
	}
	return v, nil
}
