package management

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// historyLen is how many samples a channel's rate history keeps.
const historyLen = 60

// recentLen is how many statuses and failures are kept.
const recentLen = 50

// StatusView is a status event as the API shows it.
type StatusView struct {
	Component     string    `json:"component"`
	Status        string    `json:"status"`
	Type          string    `json:"type"`
	Message       string    `json:"message"`
	Timestamp     time.Time `json:"timestamp"`
	Worker        string    `json:"worker,omitempty"`
	TransportName string    `json:"transport_name,omitempty"`
	Reasons       []string  `json:"reasons,omitempty"`
}

// FailureView is a failure as the API shows it.
type FailureView struct {
	FailureID   string    `json:"failure_id"`
	Timestamp   time.Time `json:"timestamp"`
	Topic       string    `json:"topic"`
	Worker      string    `json:"worker,omitempty"`
	FailureCode string    `json:"failure_code"`
	Reason      string    `json:"reason"`
}

// InstanceView is one process's latest heartbeat of a worker.
type InstanceView struct {
	InstanceID      string             `json:"instance_id"`
	Hostname        string             `json:"hostname"`
	PID             int32              `json:"pid"`
	Timestamp       time.Time          `json:"timestamp"`
	AgeSeconds      float64            `json:"age_seconds"`
	IntervalSeconds int32              `json:"interval_seconds"`
	Silent          bool               `json:"silent"`
	Figures         map[string]float64 `json:"figures"`
}

// Rates of a channel's topics, in messages per second.
type Rates struct {
	Inbound  float64 `json:"inbound"`
	Outbound float64 `json:"outbound"`
	Event    float64 `json:"event"`
}

// Lag of a channel's topics: records not yet consumed by the slowest
// consumer group of each.
type Lag struct {
	Inbound  int64 `json:"inbound"`
	Outbound int64 `json:"outbound"`
	Event    int64 `json:"event"`
}

type topicStat struct {
	end    int64
	at     time.Time
	rate   float64
	known  bool
	lag    int64
	hasLag bool
}

type history struct {
	inbound, outbound []float64
}

// Monitor follows vumi.heartbeat, vumi.status and every failures topic,
// and samples the end offsets and consumer lag of every channel's topics:
// the figures of the dashboard and of the channel status endpoint.
type Monitor struct {
	names    topology.Names
	deps     *topology.Deps
	log      *slog.Logger
	lookback time.Duration
	interval time.Duration
	started  time.Time
	dec      *schemas.AnyDecoder
	// channels returns the transport names to sample.
	channels func() []string

	mu       sync.Mutex
	beats    map[string]map[string]*schemas.Heartbeat // worker -> instance -> latest
	byKey    map[string][]StatusView                  // status key -> newest last
	statuses []StatusView
	failures []FailureView
	topics   map[string]*topicStat
	hist     map[string]*history
	sampled  time.Time
}

// NewMonitor returns a monitor of the deployment; Run starts it.
func NewMonitor(deps *topology.Deps, lookback, interval time.Duration, channels func() []string, log *slog.Logger) *Monitor {
	return &Monitor{
		names: deps.Names, deps: deps, log: log, lookback: lookback, interval: interval, channels: channels,
		started: time.Now(), dec: schemas.NewAnyDecoder(deps.Registry),
		beats: map[string]map[string]*schemas.Heartbeat{}, byKey: map[string][]StatusView{},
		topics: map[string]*topicStat{}, hist: map[string]*history{},
	}
}

// Run follows and samples until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	q := regexp.QuoteMeta
	p := m.names.Prefix
	cl, err := kgo.NewClient(append(m.deps.KafkaOpts("monitor"),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics("^"+q(m.names.Heartbeat())+"$", "^"+q(m.names.Status())+"$", "^"+q(p)+`.+\.failures$`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-m.lookback).UnixMilli())),
		kgo.MetadataMaxAge(10*time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("monitor: kafka client: %w", err)
	}
	defer cl.Close()
	go m.sampleLoop(ctx, kadm.NewClient(cl))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			m.log.Debug("monitor: fetch error", "topic", t, "partition", p, "error", err)
		})
		fs.EachRecord(func(r *kgo.Record) { m.apply(ctx, r) })
	}
}

func (m *Monitor) apply(ctx context.Context, r *kgo.Record) {
	v, err := m.dec.Decode(ctx, r.Value)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch x := v.(type) {
	case *schemas.Heartbeat:
		ins := m.beats[x.WorkerName]
		if ins == nil {
			ins = map[string]*schemas.Heartbeat{}
			m.beats[x.WorkerName] = ins
		}
		if old, ok := ins[x.InstanceID]; !ok || !x.Timestamp.Before(old.Timestamp) {
			ins[x.InstanceID] = x
		}
	case *schemas.Status:
		sv := StatusView{Component: x.Component, Status: string(x.Status), Type: x.Type, Message: x.Message, Timestamp: x.Timestamp, Reasons: x.Reasons}
		if x.Worker != nil {
			sv.Worker = *x.Worker
		}
		if x.TransportName != nil {
			sv.TransportName = *x.TransportName
		}
		for _, k := range []string{sv.Worker, sv.TransportName} {
			if k != "" {
				m.byKey[k] = appendCapped(m.byKey[k], sv, 20)
			}
		}
		m.statuses = appendCapped(m.statuses, sv, recentLen)
	case *schemas.Failure:
		fv := FailureView{FailureID: x.FailureID, Timestamp: x.Timestamp, Topic: r.Topic, Reason: x.Reason, FailureCode: "unspecified"}
		if x.Worker != nil {
			fv.Worker = *x.Worker
		}
		if x.FailureCode != nil {
			fv.FailureCode = string(*x.FailureCode)
		}
		m.failures = appendCapped(m.failures, fv, recentLen)
	}
}

func appendCapped[T any](s []T, v T, n int) []T {
	s = append(s, v)
	if len(s) > n {
		s = append(s[:0:0], s[len(s)-n:]...)
	}
	return s
}

func (m *Monitor) sampleLoop(ctx context.Context, adm *kadm.Client) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if err := m.sample(ctx, adm); err != nil && ctx.Err() == nil {
			m.log.Debug("monitor: sample failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads the end offsets of every channel's topics (for rates) and
// the lag of every consumer group (for lag).
func (m *Monitor) sample(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	chans := m.channels()
	var topics []string
	for _, c := range chans {
		topics = append(topics, m.names.Inbound(c), m.names.Outbound(c), m.names.Event(c))
	}
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		var err error
		if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
			return err
		}
	}
	lagBy := map[string]int64{} // topic -> max over groups of summed lag
	hasLag := map[string]bool{}
	if listed, err := adm.ListGroups(ctx); err == nil && len(listed.Groups()) > 0 {
		if lags, err := adm.Lag(ctx, listed.Groups()...); err == nil {
			for _, g := range lags {
				per := map[string]int64{}
				for _, l := range g.Lag.Sorted() {
					if l.Err == nil && l.Lag >= 0 {
						per[l.Topic] += l.Lag
					}
				}
				for t, v := range per {
					hasLag[t] = true
					lagBy[t] = max(lagBy[t], v)
				}
			}
		}
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range topics {
		var total int64
		ok := false
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == t && o.Err == nil {
				total += o.Offset
				ok = true
			}
		})
		st := m.topics[t]
		if st == nil {
			st = &topicStat{}
			m.topics[t] = st
		}
		if ok {
			if st.known && now.After(st.at) {
				st.rate = float64(max(total-st.end, 0)) / now.Sub(st.at).Seconds()
			}
			st.end, st.at, st.known = total, now, true
		}
		st.lag, st.hasLag = lagBy[t], hasLag[t]
	}
	for _, c := range chans {
		h := m.hist[c]
		if h == nil {
			h = &history{}
			m.hist[c] = h
		}
		h.inbound = appendCapped(h.inbound, m.rateLocked(m.names.Inbound(c)), historyLen)
		h.outbound = appendCapped(h.outbound, m.rateLocked(m.names.Outbound(c)), historyLen)
	}
	// Instances silent for longer than the lookback are forgotten (each
	// restart of a worker is a new instance).
	if m.lookback > 0 {
		for w, ins := range m.beats {
			for id, hb := range ins {
				if now.Sub(hb.Timestamp) > m.lookback {
					delete(ins, id)
				}
			}
			if len(ins) == 0 {
				delete(m.beats, w)
			}
		}
	}
	m.sampled = now
	return nil
}

func (m *Monitor) rateLocked(topic string) float64 {
	if st := m.topics[topic]; st != nil {
		return st.rate
	}
	return 0
}

func (m *Monitor) lagLocked(topic string) int64 {
	if st := m.topics[topic]; st != nil {
		return st.lag
	}
	return 0
}

// ChannelFigures are a channel's rates, lag, in-flight count and history.
type ChannelFigures struct {
	Rates    Rates `json:"rates"`
	Lag      Lag   `json:"lag"`
	InFlight int64 `json:"in_flight"`
	History  struct {
		Inbound  []float64 `json:"inbound"`
		Outbound []float64 `json:"outbound"`
	} `json:"history"`
}

// Channel returns the figures of a transport name; worker is the worker
// whose heartbeats carry its in-flight count.
func (m *Monitor) Channel(transportName, worker string) ChannelFigures {
	m.mu.Lock()
	defer m.mu.Unlock()
	var f ChannelFigures
	in, out, ev := m.names.Inbound(transportName), m.names.Outbound(transportName), m.names.Event(transportName)
	f.Rates = Rates{Inbound: m.rateLocked(in), Outbound: m.rateLocked(out), Event: m.rateLocked(ev)}
	f.Lag = Lag{Inbound: m.lagLocked(in), Outbound: m.lagLocked(out), Event: m.lagLocked(ev)}
	now := time.Now()
	for _, hb := range m.beats[worker] {
		if !silent(hb, now) {
			f.InFlight += int64(hb.Figures["in_flight"])
		}
	}
	f.History.Inbound, f.History.Outbound = []float64{}, []float64{}
	if h := m.hist[transportName]; h != nil {
		f.History.Inbound = append(f.History.Inbound, h.inbound...)
		f.History.Outbound = append(f.History.Outbound, h.outbound...)
	}
	return f
}

// silent is Blinkenlights' rule: no heartbeat for two intervals.
func silent(hb *schemas.Heartbeat, now time.Time) bool {
	iv := time.Duration(hb.IntervalSeconds) * time.Second
	if iv <= 0 {
		iv = 10 * time.Second
	}
	return now.Sub(hb.Timestamp) > 2*iv
}

// Instances returns the latest heartbeat of each instance of a worker.
func (m *Monitor) Instances(worker string) []InstanceView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.instancesLocked(worker, time.Now())
}

func (m *Monitor) instancesLocked(worker string, now time.Time) []InstanceView {
	out := []InstanceView{}
	for _, hb := range m.beats[worker] {
		out = append(out, InstanceView{
			InstanceID: hb.InstanceID, Hostname: hb.Hostname, PID: hb.PID, Timestamp: hb.Timestamp,
			AgeSeconds: now.Sub(hb.Timestamp).Seconds(), IntervalSeconds: hb.IntervalSeconds,
			Silent: silent(hb, now), Figures: hb.Figures,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	return out
}

// Statuses returns the newest status events of a worker or transport
// name, newest first.
func (m *Monitor) Statuses(keys ...string) []StatusView {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	out := []StatusView{}
	for _, k := range keys {
		for _, s := range m.byKey[k] {
			key := s.Timestamp.String() + "\x00" + s.Component + "\x00" + s.Type + "\x00" + s.Message
			if !seen[key] {
				seen[key] = true
				out = append(out, s)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	return out
}

// Recent returns the newest statuses and failures, newest first.
func (m *Monitor) Recent() ([]StatusView, []FailureView) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := append([]StatusView{}, m.statuses...)
	fs := append([]FailureView{}, m.failures...)
	sort.SliceStable(st, func(i, j int) bool { return st[i].Timestamp.After(st[j].Timestamp) })
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Timestamp.After(fs[j].Timestamp) })
	return st, fs
}

// HeartbeatWorkers returns the names of every worker seen in heartbeats.
func (m *Monitor) HeartbeatWorkers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.beats))
	for w := range m.beats {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// Sampled is when rates were last sampled.
func (m *Monitor) Sampled() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sampled
}

func hostID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}
