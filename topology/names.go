// Package topology turns a deployment config into the graph of workers and
// topics: topic naming, record keys, validation and creation.
package topology

import (
	"strings"

	"github.com/vumi-kafka/vumi/schemas"
)

// Topic suffixes of a transport or exposed name (Vumi's routing keys).
const (
	SuffixInbound  = ".inbound"
	SuffixOutbound = ".outbound"
	SuffixEvent    = ".event"
	SuffixFailures = ".failures"
)

// Cluster-wide topics.
const (
	TopicStatus           = "vumi.status"
	TopicMetrics          = "vumi.metrics"
	TopicMetricAggregates = "vumi.metrics.aggregates"
	TopicHeartbeat        = "vumi.heartbeat"
)

// Names builds topic names with an optional cluster-wide prefix.
type Names struct {
	// Prefix is prepended to every topic, e.g. "prod.".
	Prefix string
}

// Inbound is the topic of user messages from end users for name.
func (n Names) Inbound(name string) string { return n.Prefix + name + SuffixInbound }

// Outbound is the topic of user messages towards end users for name.
func (n Names) Outbound(name string) string { return n.Prefix + name + SuffixOutbound }

// Event is the topic of events about name's outbound messages.
func (n Names) Event(name string) string { return n.Prefix + name + SuffixEvent }

// Failures is the topic of what name's workers could not handle.
func (n Names) Failures(name string) string { return n.Prefix + name + SuffixFailures }

// Status is the status topic.
func (n Names) Status() string { return n.Prefix + TopicStatus }

// Metrics is the raw metrics topic.
func (n Names) Metrics() string { return n.Prefix + TopicMetrics }

// Heartbeat is the worker heartbeat topic.
func (n Names) Heartbeat() string { return n.Prefix + TopicHeartbeat }

// MetricAggregates is the aggregated metrics topic.
func (n Names) MetricAggregates() string { return n.Prefix + TopicMetricAggregates }

// Direction is what a topic carries, judged from its suffix.
type Direction int

// Directions.
const (
	DirUnknown Direction = iota
	DirInbound
	DirOutbound
	DirEvent
	DirFailures
)

// DirectionOf returns the direction of a topic from its suffix.
func DirectionOf(topic string) Direction {
	switch {
	case strings.HasSuffix(topic, SuffixInbound):
		return DirInbound
	case strings.HasSuffix(topic, SuffixOutbound):
		return DirOutbound
	case strings.HasSuffix(topic, SuffixEvent):
		return DirEvent
	case strings.HasSuffix(topic, SuffixFailures):
		return DirFailures
	}
	return DirUnknown
}

// InboundKey is the key of an inbound message: the end user's address
// (from_addr), so that a user's conversation stays on one partition.
func InboundKey(m *schemas.UserMessage) []byte { return keyOf(m.FromAddr, m.MessageID) }

// OutboundKey is the key of an outbound message: the end user's address
// (to_addr). Group messages with no to_addr are keyed by group.
func OutboundKey(m *schemas.UserMessage) []byte {
	if m.ToAddr == nil && m.Group != nil {
		return []byte(*m.Group)
	}
	return keyOf(m.ToAddr, m.MessageID)
}

// EventKey is the key of an event: the user_message_id it is about.
func EventKey(e *schemas.Event) []byte { return []byte(e.UserMessageID) }

// StatusKey is the key of a status event: its component, qualified by the
// transport or worker that published it.
func StatusKey(s *schemas.Status) []byte {
	owner := ""
	if s.TransportName != nil {
		owner = *s.TransportName
	} else if s.Worker != nil {
		owner = *s.Worker
	}
	if owner == "" {
		return []byte(s.Component)
	}
	return []byte(owner + "/" + s.Component)
}

// UserMessageKey keys a user message for the given topic's direction.
func UserMessageKey(topic string, m *schemas.UserMessage) []byte {
	if DirectionOf(topic) == DirOutbound {
		return OutboundKey(m)
	}
	return InboundKey(m)
}

func keyOf(addr *string, fallback string) []byte {
	if addr != nil && *addr != "" {
		return []byte(*addr)
	}
	return []byte(fallback)
}
