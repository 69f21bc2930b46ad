// Package failures is Vumi's FailureWorker on Kafka: it consumes
// <transport>.failures, retries temporary failures of outbound messages
// with exponential backoff (Vumi's retry_initial_delay, retry_delay_factor,
// retry_max_delay), and parks everything else — permanent failures,
// unspecified ones, and retries exhausted — in the compacted dead-letter
// topic <transport>.dead-letters, where `vumi failures` lists, inspects,
// retries and discards them.
//
// Pending retries live in the worker's group table, keyed like the failed
// record, so they survive restarts; a timer visits the table every
// retry_delivery_period and republishes what is due.
package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's FailureWorker config. Durations are in seconds, as in
// Vumi.
type Config struct {
	// TransportName whose failures are handled. Required.
	TransportName string `yaml:"transport_name"`
	// RetryRoutingKey is where retried messages go; "%(transport_name)s"
	// is replaced. Default "%(transport_name)s.outbound".
	RetryRoutingKey string `yaml:"retry_routing_key"`
	// FailuresRoutingKey is what is consumed; default
	// "%(transport_name)s.failures".
	FailuresRoutingKey string `yaml:"failures_routing_key"`
	// RetryInitialDelay before the first retry; default 1.
	RetryInitialDelay float64 `yaml:"retry_initial_delay"`
	// RetryDelayFactor multiplies the delay at each retry; default 3.
	RetryDelayFactor float64 `yaml:"retry_delay_factor"`
	// RetryMaxDelay caps the delay; default 3600.
	RetryMaxDelay float64 `yaml:"retry_max_delay"`
	// RetryGranularity rounds retry times up to a multiple of this;
	// default 5 (Vumi's buckets). 0 or less: no rounding.
	RetryGranularity float64 `yaml:"retry_granularity"`
	// RetryDeliveryPeriod: how often due retries are sent; default 3.
	RetryDeliveryPeriod float64 `yaml:"retry_delivery_period"`
	// MaxRetries before a temporary failure is parked; default 10
	// (Vumi retried for ever); 0 or less means no limit.
	MaxRetries int `yaml:"max_retries"`
	// RedisManager is accepted for Vumi compatibility and ignored: state
	// is in the group table.
	RedisManager  map[string]any `yaml:"redis_manager"`
	worker.Common `yaml:",inline"`

	defaulted bool
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if !c.defaulted {
		c.defaulted = true
		if c.RetryRoutingKey == "" {
			c.RetryRoutingKey = "%(transport_name)s.outbound"
		}
		if c.FailuresRoutingKey == "" {
			c.FailuresRoutingKey = "%(transport_name)s.failures"
		}
		if c.RetryInitialDelay == 0 {
			c.RetryInitialDelay = 1
		}
		if c.RetryDelayFactor == 0 {
			c.RetryDelayFactor = 3
		}
		if c.RetryMaxDelay == 0 {
			c.RetryMaxDelay = 3600
		}
		if c.RetryGranularity == 0 {
			c.RetryGranularity = 5
		}
		if c.RetryDeliveryPeriod == 0 {
			c.RetryDeliveryPeriod = 3
		}
		if c.MaxRetries == 0 {
			c.MaxRetries = 10
		}
		c.Common.Defaults()
	}
	var errs []error
	if !nameRe.MatchString(c.TransportName) {
		errs = append(errs, fmt.Errorf("key transport_name: %q is required and may only contain letters, digits, '_' and '-'", c.TransportName))
	}
	if c.RetryInitialDelay <= 0 || c.RetryMaxDelay < c.RetryInitialDelay {
		errs = append(errs, fmt.Errorf("key retry_max_delay: must be at least retry_initial_delay (%v), got %v", c.RetryInitialDelay, c.RetryMaxDelay))
	}
	if c.RetryDelayFactor < 1 {
		errs = append(errs, fmt.Errorf("key retry_delay_factor: must be at least 1, got %v", c.RetryDelayFactor))
	}
	if c.RetryDeliveryPeriod <= 0 {
		errs = append(errs, fmt.Errorf("key retry_delivery_period: must be positive, got %v", c.RetryDeliveryPeriod))
	}
	for key, v := range map[string]string{"retry_routing_key": c.retryTopic(), "failures_routing_key": c.failuresTopic()} {
		if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(v) {
			errs = append(errs, fmt.Errorf("key %s: %q is not a topic name", key, v))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) expand(pattern string) string {
	return regexp.MustCompile(`%\(transport_name\)s`).ReplaceAllString(pattern, c.TransportName)
}

func (c *Config) retryTopic() string    { return c.expand(c.RetryRoutingKey) }
func (c *Config) failuresTopic() string { return c.expand(c.FailuresRoutingKey) }

// DeadLetterTopic is the compacted topic parked failures live in.
func DeadLetterTopic(transportName string) string { return transportName + ".dead-letters" }

// IO implements topology.WorkerConfig.
func (c *Config) IO(name string) topology.IO {
	table := string(goka.GroupTable(goka.Group(name)))
	return topology.IO{
		Consumes: []topology.Stream{{Topic: c.failuresTopic(), Kind: "failure"}, {Topic: table, Kind: "state", Compacted: true}},
		Produces: []topology.Stream{
			{Topic: c.retryTopic(), Kind: "user_message"},
			{Topic: DeadLetterTopic(c.TransportName), Kind: "failure", Compacted: true},
			{Topic: table, Kind: "state", Compacted: true},
		},
		CoPartitioned: [][]string{{c.failuresTopic(), table}},
	}
}

// Kind is the failure worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "failure_worker", Aliases: []string{"vumi.transports.failures.FailureWorker"},
		Role: topology.RoleSink, Summary: "retries temporary failures with backoff; parks the rest in <transport>.dead-letters",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				return (&Worker{Base: b, cfg: cfg, now: time.Now}).Run(ctx)
			}), nil
		},
	}
}

// pending is one scheduled retry.
type pending struct {
	Due     int64   `json:"due_ms"`
	Retries int     `json:"retries"`
	Delay   float64 `json:"delay"`
	Message string  `json:"message"` // Vumi JSON
}

// Worker is a running failure worker.
type Worker struct {
	*worker.Base
	cfg *Config
	now func() time.Time
}

const visitDeliver = "deliver"

// Run runs the processor and the delivery timer until ctx is cancelled.
func (w *Worker) Run(ctx context.Context) error {
	n := w.Deps.Names
	um := schemas.GokaCodec[schemas.UserMessage]{C: w.Deps.Codecs.UserMessage}
	fc := schemas.GokaCodec[schemas.Failure]{C: w.Deps.Codecs.Failure}
	g := goka.DefineGroup(goka.Group(n.Prefix+w.Name),
		goka.Input(goka.Stream(n.Prefix+w.cfg.failuresTopic()), new(gokacodec.Bytes), w.onFailure),
		goka.Visitor(visitDeliver, w.onDeliver),
		goka.Output(goka.Stream(n.Prefix+w.cfg.retryTopic()), um),
		goka.Output(goka.Stream(n.Prefix+DeadLetterTopic(w.cfg.TransportName)), fc),
		goka.Persist(new(gokacodec.Bytes)),
	)
	p, err := w.NewProcessor(g)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.RunHeartbeat(runCtx)
	go func() {
		t := time.NewTicker(time.Duration(w.cfg.RetryDeliveryPeriod * float64(time.Second)))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if _, err := worker.VisitAll(runCtx, p, visitDeliver, nil); err != nil && runCtx.Err() == nil {
					w.Log.Debug("retry delivery visit", "error", err)
				}
			}
		}
	}()
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("failure worker %s: %w", w.Name, err)
	}
	return nil
}

func (w *Worker) load(g goka.Context) []pending {
	b, _ := g.Value().([]byte)
	var ps []pending
	if b != nil {
		if err := json.Unmarshal(b, &ps); err != nil {
			w.Log.Error("corrupt retry schedule; dropping it", "key", g.Key(), "error", err)
			return nil
		}
	}
	return ps
}

func (w *Worker) save(g goka.Context, ps []pending) {
	if len(ps) == 0 {
		g.Delete()
		return
	}
	b, _ := json.Marshal(ps)
	g.SetValue(b)
}

// park writes a failure to the dead-letter topic, keyed by its id.
func (w *Worker) park(g goka.Context, f *schemas.Failure, why string) {
	if why != "" {
		f.Reason = why + ": " + f.Reason
	}
	g.Emit(goka.Stream(w.Deps.Names.Prefix+DeadLetterTopic(w.cfg.TransportName)), f.FailureID, f)
	w.Count("parked", 1)
}

// nextDelay is Vumi's next_retry_delay.
func (w *Worker) nextDelay(delay float64) float64 {
	if delay <= 0 {
		return w.cfg.RetryInitialDelay
	}
	return min(delay*w.cfg.RetryDelayFactor, w.cfg.RetryMaxDelay)
}

func (w *Worker) onFailure(g goka.Context, v any) {
	raw, _ := v.([]byte)
	var f schemas.Failure
	if err := w.Deps.Codecs.Failure.DecodeContext(w.RegistryWaitInProcessor(g), raw, &f); err != nil {
		if schemas.IsRegistryUnavailable(err) {
			w.HoldInProcessor(g, err)
			return
		}
		w.Log.Error("undecodable failure record; skipped", "offset", g.Offset(), "error", err)
		return
	}
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary {
		w.park(g, &f, "")
		return
	}
	if f.Message == nil || (f.MessageType != nil && *f.MessageType != schemas.TypeUserMessage) {
		w.park(g, &f, "not retryable (not a user message)")
		return
	}
	m, err := schemas.ParseUserMessage([]byte(*f.Message))
	if err != nil {
		w.park(g, &f, "not retryable ("+err.Error()+")")
		return
	}
	// Vumi's update_retry_metadata: retries + 1, the next delay.
	retries, delay := 0, 0.0
	if rmd, ok := m.Extra["retry_metadata"].(map[string]any); ok {
		retries = int(number(rmd["retries"]))
		delay = number(rmd["delay"])
	}
	retries++
	delay = w.nextDelay(delay)
	if w.cfg.MaxRetries > 0 && retries > w.cfg.MaxRetries {
		w.park(g, &f, fmt.Sprintf("gave up after %d retries", w.cfg.MaxRetries))
		return
	}
	if m.Extra == nil {
		m.Extra = schemas.Metadata{}
	}
	m.Extra["retry_metadata"] = map[string]any{"retries": retries, "delay": delay}
	js, err := m.MarshalJSON()
	if err != nil {
		w.park(g, &f, "not retryable ("+err.Error()+")")
		return
	}
	due := w.now().Add(time.Duration(delay * float64(time.Second)))
	if gran := w.cfg.RetryGranularity; gran > 0 {
		step := time.Duration(gran * float64(time.Second))
		due = due.Truncate(step).Add(step)
	}
	ps := append(w.load(g), pending{Due: due.UnixMilli(), Retries: retries, Delay: delay, Message: string(js)})
	w.save(g, ps)
	w.Count("scheduled", 1)
}

// onDeliver republishes the key's due retries.
func (w *Worker) onDeliver(g goka.Context, _ any) {
	ps := w.load(g)
	if len(ps) == 0 {
		return
	}
	now := w.now().UnixMilli()
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Due < ps[j].Due })
	var keep []pending
	for _, p := range ps {
		if p.Due > now {
			keep = append(keep, p)
			continue
		}
		m, err := schemas.ParseUserMessage([]byte(p.Message))
		if err != nil {
			w.Log.Error("scheduled retry no longer parses; dropped", "key", g.Key(), "error", err)
			continue
		}
		g.Emit(goka.Stream(w.Deps.Names.Prefix+w.cfg.retryTopic()), string(topology.OutboundKey(m)), m)
		w.Count("retried", 1)
	}
	if len(keep) != len(ps) {
		w.save(g, keep)
	}
}

func number(v any) float64 {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}
