package aggregator

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lovoo/goka"
	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/topology"
)

// Seconds is a duration given either as a number of seconds, as Vumi's
// configs give bucket_size and lag (5, 0.5), or as a Go duration ("5s").
type Seconds time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("must be a number of seconds or a duration such as 5s")
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*s = Seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("must be a number of seconds or a duration such as 5s, got %q", n.Value)
	}
	*s = Seconds(d)
	return nil
}

// D returns s as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// Defaults.
const (
	DefaultBucketSize   = 5 * time.Second
	DefaultLateness     = 5 * time.Second
	DefaultTickInterval = 500 * time.Millisecond
	DefaultForgetAfter  = 10 * time.Minute
)

// Config is the metric_aggregator's config (Vumi's MetricTimeBucket and
// MetricAggregator in one worker).
type Config struct {
	// BucketSize is the window length, whole seconds; default 5 (Vumi's
	// bucket_size).
	BucketSize Seconds `yaml:"bucket_size"`
	// Lateness is how long after its end a window waits for late
	// datapoints before it is emitted; later ones are counted and dropped.
	// Default 5s. Vumi called it lag, which is accepted too.
	Lateness Seconds `yaml:"lateness"`
	Lag      Seconds `yaml:"lag"`
	// TickInterval is how often due windows are looked for; default 0.5s,
	// so a window is emitted within about that of its close.
	TickInterval Seconds `yaml:"tick_interval"`
	// EmitEmpty emits 0.0 for each window of a known metric that got no
	// datapoint (Vumi's aggregators return 0.0 for no values). Default true.
	EmitEmpty *bool `yaml:"emit_empty"`
	// ForgetAfter is how long a metric that gets no datapoints keeps its
	// state (and, with emit_empty, keeps emitting 0.0); default 10m.
	ForgetAfter Seconds `yaml:"forget_after"`
	// Buckets and Bucket are Vumi's way of spreading metrics over
	// aggregators; here the partitions of vumi.metrics do that, so they are
	// accepted for compatibility and ignored.
	Buckets       *int `yaml:"buckets"`
	Bucket        *int `yaml:"bucket"`
	worker.Common `yaml:",inline"`
}

// Validate implements topology.WorkerConfig: fills defaults and names the
// key at fault.
func (c *Config) Validate() error {
	if c.BucketSize == 0 {
		c.BucketSize = Seconds(DefaultBucketSize)
	}
	if c.BucketSize.D() < time.Second || c.BucketSize.D()%time.Second != 0 {
		return fmt.Errorf("key bucket_size: must be a whole number of seconds (at least 1), got %v", c.BucketSize.D())
	}
	if c.Lateness != 0 && c.Lag != 0 {
		return errors.New("key lag: give only one of lateness and lag (lag is Vumi's name for lateness)")
	}
	if c.Lag != 0 {
		c.Lateness = c.Lag
	}
	if c.Lateness == 0 {
		c.Lateness = Seconds(DefaultLateness)
	}
	if c.Lateness < 0 {
		return fmt.Errorf("key lateness: must not be negative, got %v", c.Lateness.D())
	}
	if c.TickInterval == 0 {
		c.TickInterval = Seconds(DefaultTickInterval)
	}
	if c.TickInterval.D() < 10*time.Millisecond || c.TickInterval.D() > c.BucketSize.D() {
		return fmt.Errorf("key tick_interval: must be between 10ms and bucket_size (%v), got %v", c.BucketSize.D(), c.TickInterval.D())
	}
	if c.EmitEmpty == nil {
		t := true
		c.EmitEmpty = &t
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = Seconds(DefaultForgetAfter)
	}
	if c.ForgetAfter.D() < c.BucketSize.D()+c.Lateness.D() {
		return fmt.Errorf("key forget_after: must be at least bucket_size + lateness (%v), got %v", c.BucketSize.D()+c.Lateness.D(), c.ForgetAfter.D())
	}
	c.Common.Defaults()
	return nil
}

// Params returns the windowing rules of the config.
func (c *Config) Params() Params {
	return Params{
		Bucket:      int64(c.BucketSize.D() / time.Second),
		Lateness:    c.Lateness.D(),
		ForgetAfter: c.ForgetAfter.D(),
		EmitEmpty:   c.EmitEmpty == nil || *c.EmitEmpty,
	}
}

// IO implements topology.WorkerConfig: the aggregator called name reads
// vumi.metrics, writes vumi.metrics.aggregates, and keeps its windows in
// its group table, co-partitioned with vumi.metrics.
func (c *Config) IO(name string) topology.IO {
	table := string(goka.GroupTable(goka.Group(name)))
	return topology.IO{
		Consumes: []topology.Stream{
			{Topic: topology.TopicMetrics, Kind: "metric_datapoint"},
			{Topic: table, Kind: "metric_windows", Compacted: true},
		},
		Produces: []topology.Stream{
			{Topic: topology.TopicMetricAggregates, Kind: "metric_aggregate"},
			{Topic: table, Kind: "metric_windows", Compacted: true},
		},
		CoPartitioned: [][]string{{topology.TopicMetrics, table}},
	}
}
