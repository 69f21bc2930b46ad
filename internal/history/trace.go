package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// ErrNotFound is wrapped by Trace's error when no record of the message is
// in the range.
var ErrNotFound = errors.New("message not found")

// Step types.
const (
	TypeInbound    = "inbound"
	TypeOutbound   = "outbound"
	TypeEvent      = "event"
	TypeFailure    = "failure"
	TypeDeadLetter = "dead_letter"
	TypeCopy       = "copy"
)

// Step is one record of a message's life.
type Step struct {
	Time      time.Time `json:"time"`
	ElapsedMS float64   `json:"elapsed_ms"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       string    `json:"key"`
	// Type is inbound, outbound, event, failure, dead_letter or copy (a
	// middleware's copy, e.g. the storing middleware's message_store.*).
	Type string `json:"type"`
	// Step says what happened: received, routed, reply, sent, ack, nack,
	// delivery_report, failed, dead_letter, stored.
	Step      string `json:"step"`
	MessageID string `json:"message_id"`
	EventID   string `json:"event_id,omitempty"`
	FailureID string `json:"failure_id,omitempty"`
	// Generation is 0 for the traced message, 1 for its replies, 2 for
	// replies to those, and -1 for the message the traced one replies to.
	Generation int `json:"generation"`
	// WrittenBy are the workers of the config that write the topic.
	WrittenBy []string `json:"written_by,omitempty"`
	// ReadBy are the workers of the config that consume the topic.
	ReadBy []string `json:"read_by,omitempty"`
	// ConsumedBy are the consumer groups whose committed offset on the
	// record's partition is past it (they have handled it: for the send
	// API's "<name>.callbacks" group, the callback was made or failed);
	// PendingFor those that have not got to it yet.
	ConsumedBy []string `json:"consumed_by,omitempty"`
	PendingFor []string `json:"pending_for,omitempty"`
	Detail     string   `json:"detail"`
	// Protocol is what the transport recorded of its protocol exchange
	// for this step (the event's or inbound message's transport_metadata:
	// e.g. the SMPP submit_sm sequence numbers, command status and SMSC
	// message ids of an ack).
	Protocol map[string]any  `json:"protocol,omitempty"`
	Value    json.RawMessage `json:"value"`

	class int    // ordering: direction and hop depth
	sub   string // ordering: the event id of event steps
	rank  int    // ordering at equal times: records, failures, dead letters
}

// Timeline is the life of one message.
type Timeline struct {
	MessageID string    `json:"message_id"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Topics    []string  `json:"topics"`
	// Scanned is how many records of the range were read.
	Scanned int64  `json:"records_scanned"`
	Steps   []Step `json:"steps"`
}

// TraceOptions configure Trace.
type TraceOptions struct {
	// Topics to search (full names). Required.
	Topics []string
	Range  Range
	// Graph, when set, names the workers writing and reading each topic
	// and orders a message's hops through dispatchers.
	Graph *topology.Graph
	// Copies maps topics that only hold middleware copies (the storing
	// middleware's store topics) to a description.
	Copies  map[string]string
	Decoder *schemas.AnyDecoder
	// Progress reports the scan (see ReadOptions.Progress).
	Progress func(done, total int64)
	// Now is the end of an open range (default time.Now), for the report.
	Now time.Time
}

// entry is the index of one record: just the ids.
type entry struct {
	topic     string
	partition int32
	offset    int64
	kind      byte // 'm' user message, 'e' event, 'f' failure
	id        string
	inReplyTo string
	userMsgID string // events; failures of events
	msgID     string // failures: the failed message's id
	src       string // failures: topic/partition/offset of the failed record
}

// Trace finds every record of message id in the range: the message on every
// topic it crossed, the replies to it (in_reply_to) and their hops, the
// events of each (user_message_id), and failures and dead letters about any
// of them. The range is read once to index ids, then only the matching
// records are read again and decoded in full.
func Trace(ctx context.Context, cl *kgo.Client, id string, opts TraceOptions) (*Timeline, error) {
	if opts.Decoder == nil {
		return nil, errors.New("trace: no decoder")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	tl := &Timeline{MessageID: id, From: opts.Range.From, To: opts.Range.To, Topics: opts.Topics}
	if tl.To.IsZero() {
		tl.To = opts.Now
	}
	adm := kadm.NewClient(cl)
	spans, err := Spans(ctx, adm, opts.Topics, opts.Range)
	if err != nil {
		return nil, err
	}
	var idx []entry
	intern := map[string]string{}
	err = Read(ctx, cl, spans, ReadOptions{Range: opts.Range, Progress: opts.Progress}, func(r *kgo.Record) error {
		tl.Scanned++
		if r.Value == nil {
			return nil // a tombstone (compacted dead letters)
		}
		v, err := opts.Decoder.Decode(ctx, r.Value)
		if err != nil {
			return nil // not ours to judge here; `vumi tail` reports these
		}
		t, ok := intern[r.Topic]
		if !ok {
			t = r.Topic
			intern[t] = t
		}
		e := entry{topic: t, partition: r.Partition, offset: r.Offset}
		switch v := v.(type) {
		case *schemas.UserMessage:
			e.kind, e.id, e.inReplyTo = 'm', v.MessageID, deref(v.InReplyTo)
		case *schemas.Event:
			e.kind, e.userMsgID = 'e', v.UserMessageID // the event's own id is not needed to link
		case *schemas.Failure:
			e.kind, e.id = 'f', v.FailureID
			if v.Message != nil {
				var ids struct {
					MessageID     string `json:"message_id"`
					UserMessageID string `json:"user_message_id"`
				}
				if json.Unmarshal([]byte(*v.Message), &ids) == nil {
					e.msgID, e.userMsgID = ids.MessageID, ids.UserMessageID
				}
			}
			if v.SourceTopic != nil && v.SourcePartition != nil && v.SourceOffset != nil {
				e.src = fmt.Sprintf("%s/%d/%d", *v.SourceTopic, *v.SourcePartition, *v.SourceOffset)
			}
		default:
			return nil
		}
		idx = append(idx, e)
		return nil
	})
	if err != nil {
		return nil, err
	}

	gen := closure(idx, id)
	matched := map[string]bool{} // topic/partition/offset of matched records
	want := map[string]map[int32][]int64{}
	add := func(e entry) {
		if want[e.topic] == nil {
			want[e.topic] = map[int32][]int64{}
		}
		want[e.topic][e.partition] = append(want[e.topic][e.partition], e.offset)
		matched[fmt.Sprintf("%s/%d/%d", e.topic, e.partition, e.offset)] = true
	}
	var fails []entry
	for _, e := range idx {
		switch e.kind {
		case 'm':
			if _, ok := gen[e.id]; ok {
				add(e)
			}
		case 'e':
			if _, ok := gen[e.userMsgID]; ok {
				add(e)
			}
		case 'f':
			fails = append(fails, e)
		}
	}
	for _, e := range fails {
		_, byMsg := gen[e.msgID]
		_, byEvent := gen[e.userMsgID]
		if byMsg || byEvent || (e.src != "" && matched[e.src]) {
			add(e)
		}
	}
	found := false
	for _, e := range idx {
		if e.kind == 'm' && e.id == id {
			found = true
			break
		}
	}
	if !found {
		// Events or failures alone still make a timeline (the message
		// may be older than the range); nothing at all is an error.
		if len(matched) == 0 {
			return nil, fmt.Errorf("%w: no record of %s on %d topic(s) from %s (%d records searched); widen the range (-since, -until) or check the id",
				ErrNotFound, id, len(opts.Topics), Range{From: tl.From, To: tl.To}, tl.Scanned)
		}
	}

	// Read the matched records again, in full: per partition, runs of
	// nearby offsets, so that a message and its retry a million records
	// later do not mean reading the million.
	var rounds [][]Span
	for t, ps := range want {
		for p, offs := range ps {
			for i, run := range offsetRuns(offs, 1000) {
				if i == len(rounds) {
					rounds = append(rounds, nil)
				}
				rounds[i] = append(rounds[i], Span{Topic: t, Partition: p, Start: run[0], End: run[1] + 1})
			}
		}
	}
	var recs []*kgo.Record
	for _, spans := range rounds {
		err = Read(ctx, cl, spans, ReadOptions{}, func(r *kgo.Record) error {
			if matched[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] {
				recs = append(recs, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	steps, err := buildSteps(ctx, recs, gen, opts)
	if err != nil {
		return nil, err
	}
	markConsumers(ctx, adm, steps)
	tl.Steps = steps
	return tl, nil
}

// markConsumers fills ConsumedBy and PendingFor from the committed offsets
// of every consumer group (read only). Without the rights to list groups
// the fields stay empty.
func markConsumers(ctx context.Context, adm *kadm.Client, steps []Step) {
	if len(steps) == 0 {
		return
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil || len(groups) == 0 {
		return
	}
	type tp struct {
		t string
		p int32
	}
	committed := map[tp]map[string]int64{}
	for _, f := range adm.FetchManyOffsets(ctx, groups.Groups()...) {
		if f.Err != nil {
			continue
		}
		f.Fetched.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil || o.At < 0 {
				return
			}
			k := tp{o.Topic, o.Partition}
			if committed[k] == nil {
				committed[k] = map[string]int64{}
			}
			committed[k][f.Group] = o.At
		})
	}
	for i := range steps {
		s := &steps[i]
		for g, at := range committed[tp{s.Topic, s.Partition}] {
			if at > s.Offset {
				s.ConsumedBy = append(s.ConsumedBy, g)
			} else {
				s.PendingFor = append(s.PendingFor, g)
			}
		}
		sort.Strings(s.ConsumedBy)
		sort.Strings(s.PendingFor)
	}
}

// offsetRuns splits offsets into runs [first, last] whose neighbours are
// at most gap apart, in order.
func offsetRuns(offs []int64, gap int64) [][2]int64 {
	sorted := slices.Clone(offs)
	slices.Sort(sorted)
	var runs [][2]int64
	for _, o := range sorted {
		if n := len(runs); n > 0 && o-runs[n-1][1] <= gap {
			runs[n-1][1] = o
			continue
		}
		runs = append(runs, [2]int64{o, o})
	}
	return runs
}

// closure returns the ids of the trace with their generation: the message,
// replies to it (transitively), and the message it replies to.
func closure(idx []entry, id string) map[string]int {
	gen := map[string]int{id: 0}
	for changed := true; changed; {
		changed = false
		for _, e := range idx {
			if e.kind != 'm' {
				continue
			}
			if g, ok := gen[e.id]; ok {
				if g == 0 && e.inReplyTo != "" {
					if _, ok := gen[e.inReplyTo]; !ok {
						gen[e.inReplyTo] = -1
						changed = true
					}
				}
				continue
			}
			if g, ok := gen[e.inReplyTo]; ok && e.inReplyTo != "" && g >= 0 {
				gen[e.id] = g + 1
				changed = true
			}
		}
	}
	return gen
}

// Classes order the steps of one message: inbound hops, then outbound
// hops, then events, each by hop depth; failures after what failed.
const (
	classInbound  = 0
	classOutbound = 10000
	classEvent    = 20000
	classOther    = 30000
	depthCopy     = 9000
)

func buildSteps(ctx context.Context, recs []*kgo.Record, gen map[string]int, opts TraceOptions) ([]Step, error) {
	depth := topicDepths(opts.Graph)
	classOf := func(topic string) int {
		base := classOther
		switch topology.DirectionOf(topic) {
		case topology.DirInbound:
			base = classInbound
		case topology.DirOutbound:
			base = classOutbound
		case topology.DirEvent:
			base = classEvent
		}
		if _, ok := opts.Copies[topic]; ok {
			return base + depthCopy
		}
		return base + depth[topic]*10
	}
	steps := make([]Step, 0, len(recs))
	for _, r := range recs {
		v, err := opts.Decoder.Decode(ctx, r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		s := Step{Time: r.Timestamp.UTC(), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: js}
		if opts.Graph != nil {
			if t, ok := opts.Graph.Topics[r.Topic]; ok {
				s.WrittenBy, s.ReadBy = t.Producers, t.Consumers
			}
		}
		switch v := v.(type) {
		case *schemas.UserMessage:
			s.MessageID, s.Generation = v.MessageID, gen[v.MessageID]
			s.class = classOf(r.Topic)
			s.Type = TypeInbound
			if topology.DirectionOf(r.Topic) == topology.DirOutbound {
				s.Type = TypeOutbound
			}
			if d, ok := opts.Copies[r.Topic]; ok {
				s.Type, s.Step, s.Detail = TypeCopy, "stored", d
			}
			s.Detail = joinDetail(s.Detail, messageDetail(v))
			s.Protocol = v.TransportMetadata.Clone()
		case *schemas.Event:
			s.MessageID, s.EventID, s.Generation = v.UserMessageID, v.EventID, gen[v.UserMessageID]
			s.class, s.sub = classOf(r.Topic), v.EventID
			s.Type, s.Step, s.Detail = TypeEvent, string(v.EventType), eventDetail(v)
			s.Protocol = v.TransportMetadata.Clone()
		case *schemas.Failure:
			s.FailureID = v.FailureID
			s.Type, s.Step = TypeFailure, "failed"
			if strings.HasSuffix(r.Topic, ".dead-letters") {
				s.Type, s.Step = TypeDeadLetter, "dead_letter"
			}
			s.Detail = failureDetail(v)
			if v.Message != nil {
				var ids struct {
					MessageID     string `json:"message_id"`
					UserMessageID string `json:"user_message_id"`
					EventID       string `json:"event_id"`
				}
				_ = json.Unmarshal([]byte(*v.Message), &ids)
				s.MessageID, s.sub = ids.MessageID, ids.EventID
				if _, ok := gen[ids.MessageID]; !ok && ids.UserMessageID != "" {
					s.MessageID = ids.UserMessageID
				}
			}
			s.Generation = gen[s.MessageID]
			// With the record that failed, after it in time (a failure
			// worker's retry of it comes later).
			s.class, s.rank = classOther, 1
			if v.SourceTopic != nil {
				s.class = classOf(*v.SourceTopic)
			}
			if s.Type == TypeDeadLetter {
				s.rank = 2
			}
		}
		steps = append(steps, s)
	}
	// Group by message (in generation order, then first appearance), then
	// by direction (inbound, outbound, events: each event with its hops),
	// then by hop depth, then by time.
	first, firstSub := map[string]time.Time{}, map[string]time.Time{}
	for _, s := range steps {
		if t, ok := first[s.MessageID]; !ok || s.Time.Before(t) {
			first[s.MessageID] = s.Time
		}
		if t, ok := firstSub[s.sub]; s.sub != "" && (!ok || s.Time.Before(t)) {
			firstSub[s.sub] = s.Time
		}
	}
	sort.SliceStable(steps, func(i, j int) bool {
		a, b := &steps[i], &steps[j]
		if a.Generation != b.Generation {
			return a.Generation < b.Generation
		}
		if a.MessageID != b.MessageID {
			if !first[a.MessageID].Equal(first[b.MessageID]) {
				return first[a.MessageID].Before(first[b.MessageID])
			}
			return a.MessageID < b.MessageID
		}
		if sa, sb := a.class/classOutbound, b.class/classOutbound; sa != sb {
			return sa < sb
		}
		if a.sub != b.sub {
			// Each event with its hops, in the order the events happened.
			if !firstSub[a.sub].Equal(firstSub[b.sub]) {
				return firstSub[a.sub].Before(firstSub[b.sub])
			}
			return a.sub < b.sub
		}
		if a.class != b.class {
			return a.class < b.class
		}
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Offset < b.Offset
	})
	// Name the user-message steps by their place in the message's life.
	seen := map[string]map[int]bool{} // message id -> directions seen
	seenEvent := map[string]bool{}
	for i := range steps {
		s := &steps[i]
		if s.Type == TypeEvent {
			// An event routed on by a dispatcher: the transport's record
			// was shown at its first hop.
			if seenEvent[s.EventID] {
				s.Detail, s.Protocol = joinDetail("routed", s.Detail), nil
			}
			seenEvent[s.EventID] = true
			continue
		}
		if s.Type != TypeInbound && s.Type != TypeOutbound {
			continue
		}
		dir := s.class / classOutbound
		if seen[s.MessageID] == nil {
			seen[s.MessageID] = map[int]bool{}
		}
		var m schemas.UserMessage
		_ = json.Unmarshal(s.Value, &m)
		switch {
		case seen[s.MessageID][dir]:
			s.Step = "routed"
			s.Detail = ""
			if len(m.RoutingMetadata) > 0 {
				s.Detail = "endpoint " + m.Endpoint()
			}
		case s.Type == TypeInbound:
			s.Step = "received"
		case m.InReplyTo != nil:
			s.Step = "reply"
		default:
			s.Step = "sent"
		}
		seen[s.MessageID][dir] = true
		// The transport's record is shown where the message enters or
		// leaves; routed copies carry the same metadata.
		if s.Step == "routed" {
			s.Protocol = nil
		}
	}
	// The same message (or event) on the same topic once more: a failure
	// worker's retry, a re-sent dead letter, or an at-least-once
	// redelivery.
	onTopic := map[string]bool{}
	for i := range steps {
		s := &steps[i]
		if s.Type != TypeInbound && s.Type != TypeOutbound && s.Type != TypeEvent {
			continue
		}
		k := s.MessageID + "|" + s.EventID + "|" + s.Topic
		if onTopic[k] {
			s.Detail = joinDetail("again (a retry or redelivery)", s.Detail)
		}
		onTopic[k] = true
	}
	var start time.Time
	for i := range steps {
		if i == 0 || steps[i].Time.Before(start) {
			start = steps[i].Time
		}
	}
	for i := range steps {
		steps[i].ElapsedMS = float64(steps[i].Time.Sub(start).Microseconds()) / 1000
	}
	return steps, nil
}

// topicDepths gives each topic its hop count within its direction: 0 where
// messages enter it (inbound and events from transports, outbound from
// applications), one more for each dispatcher between.
func topicDepths(g *topology.Graph) map[string]int {
	out := map[string]int{}
	if g == nil {
		return out
	}
	roles := map[string]*topology.WorkerNode{}
	for _, w := range g.Workers {
		roles[w.Name] = w
	}
	visiting := map[string]bool{}
	var depth func(topic string) int
	depth = func(topic string) int {
		if d, ok := out[topic]; ok {
			return d
		}
		if visiting[topic] {
			return 0
		}
		visiting[topic] = true
		defer delete(visiting, topic)
		t, ok := g.Topics[topic]
		dir := topology.DirectionOf(topic)
		best := -1
		if ok {
			for _, p := range t.Producers {
				w := roles[p]
				if w == nil || w.Role != topology.RoleDispatcher {
					best = 0
					continue
				}
				for _, c := range w.Consumes {
					if topology.DirectionOf(c) == dir && c != topic {
						if d := depth(c) + 1; best == -1 || d < best {
							best = d
						}
					}
				}
			}
		}
		best = max(best, 0)
		out[topic] = best
		return best
	}
	for name := range g.Topics {
		depth(name)
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func messageDetail(m *schemas.UserMessage) string {
	var parts []string
	if m.FromAddr != nil || m.ToAddr != nil {
		parts = append(parts, fmt.Sprintf("from %s to %s", orDash(m.FromAddr), orDash(m.ToAddr)))
	}
	if m.InReplyTo != nil {
		parts = append(parts, "in reply to "+*m.InReplyTo)
	}
	if m.SessionEvent != nil {
		parts = append(parts, "session "+string(*m.SessionEvent))
	}
	if m.Content != nil {
		parts = append(parts, fmt.Sprintf("%q", clip(*m.Content, 60)))
	}
	return strings.Join(parts, " ")
}

func eventDetail(e *schemas.Event) string {
	switch e.EventType {
	case schemas.EventAck:
		return "sent_message_id " + deref(e.SentMessageID)
	case schemas.EventNack:
		return "reason: " + deref(e.NackReason)
	case schemas.EventDeliveryReport:
		d := "status " + string(deref((*string)(e.DeliveryStatus)))
		if s, ok := e.TransportMetadata["smpp_delivery_status"].(string); ok {
			d += " (" + s + ")"
		}
		return d
	}
	return string(e.EventType)
}

func failureDetail(f *schemas.Failure) string {
	code := "unspecified"
	if f.FailureCode != nil {
		code = string(*f.FailureCode)
	}
	d := fmt.Sprintf("[%s] %s", code, clip(strings.Join(strings.Fields(f.Reason), " "), 200))
	if f.Worker != nil {
		d += " (worker " + *f.Worker + ")"
	}
	if f.SourceTopic != nil {
		d += " from " + *f.SourceTopic
	}
	return d
}

func orDash(p *string) string {
	if p == nil || *p == "" {
		return "-"
	}
	return *p
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
