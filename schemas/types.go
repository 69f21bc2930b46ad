package schemas

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// MessageVersion is the only Vumi message format version this project
// speaks (Vumi's TransportMessage.MESSAGE_VERSION).
const MessageVersion = "20110921"

// Vumi message_type values.
const (
	TypeUserMessage = "user_message"
	TypeEvent       = "event"
	TypeStatus      = "status_event"
	TypeFailure     = "failure_message"
)

// SessionEvent is a user message's session_event. A nil *SessionEvent is
// Vumi's SESSION_NONE.
type SessionEvent string

// Session events.
const (
	SessionNew    SessionEvent = "new"
	SessionResume SessionEvent = "resume"
	SessionClose  SessionEvent = "close"
)

// Valid reports whether s is one of Vumi's session events.
func (s SessionEvent) Valid() bool {
	return s == SessionNew || s == SessionResume || s == SessionClose
}

// EventType is an event's event_type.
type EventType string

// Event types.
const (
	EventAck            EventType = "ack"
	EventNack           EventType = "nack"
	EventDeliveryReport EventType = "delivery_report"
)

// Valid reports whether t is one of Vumi's event types.
func (t EventType) Valid() bool {
	return t == EventAck || t == EventNack || t == EventDeliveryReport
}

// DeliveryStatus is a delivery report's delivery_status.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryDelivered DeliveryStatus = "delivered"
)

// Valid reports whether d is one of Vumi's delivery statuses.
func (d DeliveryStatus) Valid() bool {
	return d == DeliveryPending || d == DeliveryFailed || d == DeliveryDelivered
}

// StatusLevel is a status event's status.
type StatusLevel string

// Status levels.
const (
	StatusOK       StatusLevel = "ok"
	StatusDegraded StatusLevel = "degraded"
	StatusDown     StatusLevel = "down"
)

// Valid reports whether l is one of Vumi's status levels.
func (l StatusLevel) Valid() bool {
	return l == StatusOK || l == StatusDegraded || l == StatusDown
}

// FailureCode classifies a failure. A nil *FailureCode is Vumi's
// FC_UNSPECIFIED.
type FailureCode string

// Failure codes.
const (
	FailurePermanent FailureCode = "permanent"
	FailureTemporary FailureCode = "temporary"
)

// Valid reports whether c is one of Vumi's failure codes.
func (c FailureCode) Valid() bool { return c == FailurePermanent || c == FailureTemporary }

// Canonical Vumi transport types.
const (
	TransportHTTPAPI = "http_api"
	TransportIRC     = "irc"
	TransportTelnet  = "telnet"
	TransportTwitter = "twitter"
	TransportSMS     = "sms"
	TransportUSSD    = "ussd"
	TransportXMPP    = "xmpp"
	TransportMxit    = "mxit"
	TransportWeChat  = "wechat"
)

// Canonical Vumi address types.
const (
	AddrIRCNickname   = "irc_nickname"
	AddrTwitterHandle = "twitter_handle"
	AddrMSISDN        = "msisdn"
	AddrGTalkID       = "gtalk_id"
	AddrJabberID      = "jabber_id"
	AddrMxitID        = "mxit_id"
	AddrWeChatID      = "wechat_id"
)

// DefaultEndpoint is the routing endpoint used when a message names none.
const DefaultEndpoint = "default"

// Metadata is a free-form, JSON-compatible dict (Vumi's routing_metadata,
// helper_metadata, transport_metadata and status details). Numbers decoded
// from JSON are json.Number so that large integers survive a round trip.
// In Avro it is a string holding a JSON object, and the empty string when
// the dict is empty (one byte on the wire instead of three).
type Metadata map[string]any

var emptyObject = []byte("{}")

// MarshalText encodes m as a JSON object; nil and empty encode as "".
func (m Metadata) MarshalText() ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if b, ok := appendMetadataJSON(make([]byte, 0, 64), m); ok {
		return b, nil
	}
	b, err := json.Marshal(map[string]any(m))
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return b, nil
}

// UnmarshalText decodes a JSON object into m. "" and "{}" give a nil map.
func (m *Metadata) UnmarshalText(b []byte) error {
	if len(b) == 0 || bytes.Equal(b, emptyObject) {
		*m = nil
		return nil
	}
	if flat, ok := parseMetadataJSON(b); ok {
		*m = flat
		return nil
	}
	v, err := decodeJSONValue(b)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("metadata: expected a JSON object, got %s", jsonKind(v))
	}
	*m = obj
	return nil
}

// Clone returns a deep copy of m.
func (m Metadata) Clone() Metadata {
	if m == nil {
		return nil
	}
	out := make(Metadata, len(m))
	for k, v := range m {
		out[k] = cloneJSON(v)
	}
	return out
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = cloneJSON(v)
		}
		return out
	case Metadata:
		return map[string]any(x.Clone())
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = cloneJSON(v)
		}
		return out
	default:
		return v
	}
}

// String returns a pointer to s, for the nullable fields of messages.
func String(s string) *string { return &s }

// deref returns *p, or "" when p is nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// UserMessage is a Vumi user message (message_type "user_message").
type UserMessage struct {
	MessageID         string        `avro:"message_id"`
	Timestamp         time.Time     `avro:"timestamp"`
	ToAddr            *string       `avro:"to_addr"`
	FromAddr          *string       `avro:"from_addr"`
	ToAddrType        *string       `avro:"to_addr_type"`
	FromAddrType      *string       `avro:"from_addr_type"`
	InReplyTo         *string       `avro:"in_reply_to"`
	SessionEvent      *SessionEvent `avro:"session_event"`
	Content           *string       `avro:"content"`
	TransportName     *string       `avro:"transport_name"`
	TransportType     *string       `avro:"transport_type"`
	Group             *string       `avro:"group"`
	Provider          *string       `avro:"provider"`
	RoutingMetadata   Metadata      `avro:"routing_metadata"`
	HelperMetadata    Metadata      `avro:"helper_metadata"`
	TransportMetadata Metadata      `avro:"transport_metadata"`
	// Extra holds any other top-level fields of the Vumi JSON message.
	Extra Metadata `avro:"extra"`
}

// NewUserMessage returns a user message with a fresh message_id and the
// current time, as Vumi's TransportUserMessage constructor does.
func NewUserMessage() *UserMessage {
	return &UserMessage{MessageID: GenerateID(), Timestamp: Now()}
}

// To returns to_addr, or "" when it is null.
func (m *UserMessage) To() string { return deref(m.ToAddr) }

// From returns from_addr, or "" when it is null.
func (m *UserMessage) From() string { return deref(m.FromAddr) }

// Text returns content, or "" when it is null.
func (m *UserMessage) Text() string { return deref(m.Content) }

// Transport returns transport_name, or "" when it is null.
func (m *UserMessage) Transport() string { return deref(m.TransportName) }

// Session returns the session event, or "" (SESSION_NONE) when null.
func (m *UserMessage) Session() SessionEvent {
	if m.SessionEvent == nil {
		return ""
	}
	return *m.SessionEvent
}

// Endpoint returns routing_metadata.endpoint_name, or DefaultEndpoint.
func (m *UserMessage) Endpoint() string { return endpointOf(m.RoutingMetadata) }

// SetEndpoint sets routing_metadata.endpoint_name ("" means default).
func (m *UserMessage) SetEndpoint(name string) {
	m.RoutingMetadata = setEndpoint(m.RoutingMetadata, name)
}

// Reply builds a reply to m as Vumi's TransportUserMessage.reply does:
// addresses swapped, in_reply_to set, transport fields and helper_metadata
// carried over, the routing endpoint kept, and session_event close when
// continueSession is false.
func (m *UserMessage) Reply(content string, continueSession bool) *UserMessage {
	out := &UserMessage{
		MessageID:         GenerateID(),
		Timestamp:         Now(),
		ToAddr:            m.FromAddr,
		FromAddr:          m.ToAddr,
		Group:             m.Group,
		InReplyTo:         String(m.MessageID),
		Provider:          m.Provider,
		Content:           &content,
		TransportName:     m.TransportName,
		TransportType:     m.TransportType,
		TransportMetadata: m.TransportMetadata.Clone(),
		HelperMetadata:    m.HelperMetadata.Clone(),
		ToAddrType:        m.FromAddrType,
		FromAddrType:      m.ToAddrType,
	}
	if !continueSession {
		ev := SessionClose
		out.SessionEvent = &ev
	}
	out.SetEndpoint(m.Endpoint())
	return out
}

// ReplyGroup is Reply, but when the message came from a group the reply
// goes to the whole group (to_addr null), as Vumi's reply_group does.
func (m *UserMessage) ReplyGroup(content string, continueSession bool) *UserMessage {
	out := m.Reply(content, continueSession)
	if m.Group != nil {
		out.ToAddr = nil
	}
	return out
}

// Event is a Vumi event (message_type "event").
type Event struct {
	EventID           string          `avro:"event_id"`
	EventType         EventType       `avro:"event_type"`
	UserMessageID     string          `avro:"user_message_id"`
	Timestamp         time.Time       `avro:"timestamp"`
	SentMessageID     *string         `avro:"sent_message_id"`
	NackReason        *string         `avro:"nack_reason"`
	DeliveryStatus    *DeliveryStatus `avro:"delivery_status"`
	TransportName     *string         `avro:"transport_name"`
	RoutingMetadata   Metadata        `avro:"routing_metadata"`
	HelperMetadata    Metadata        `avro:"helper_metadata"`
	TransportMetadata Metadata        `avro:"transport_metadata"`
	Extra             Metadata        `avro:"extra"`
}

// Endpoint returns routing_metadata.endpoint_name, or DefaultEndpoint.
func (e *Event) Endpoint() string { return endpointOf(e.RoutingMetadata) }

// SetEndpoint sets routing_metadata.endpoint_name ("" means default).
func (e *Event) SetEndpoint(name string) { e.RoutingMetadata = setEndpoint(e.RoutingMetadata, name) }

// Status returns Vumi's event status string: the event type, or
// "delivery_report.<status>" for delivery reports.
func (e *Event) Status() string {
	if e.EventType == EventDeliveryReport && e.DeliveryStatus != nil {
		return string(e.EventType) + "." + string(*e.DeliveryStatus)
	}
	return string(e.EventType)
}

// Validate checks the per-type required fields of Vumi's TransportEvent.
func (e *Event) Validate() error {
	if e.EventID == "" {
		return fieldError("event_id", "is required")
	}
	if e.UserMessageID == "" {
		return fieldError("user_message_id", "is required")
	}
	switch e.EventType {
	case EventAck:
		if e.SentMessageID == nil {
			return fieldError("sent_message_id", "is required for an ack")
		}
	case EventNack:
		if e.NackReason == nil {
			return fieldError("nack_reason", "is required for a nack")
		}
	case EventDeliveryReport:
		if e.DeliveryStatus == nil || !e.DeliveryStatus.Valid() {
			return fieldError("delivery_status", "must be pending, failed or delivered for a delivery_report")
		}
	default:
		return fieldError("event_type", fmt.Sprintf("unknown event type %q", e.EventType))
	}
	return nil
}

// Status is a Vumi status event (message_type "status_event").
type Status struct {
	Component       string      `avro:"component"`
	Status          StatusLevel `avro:"status"`
	Type            string      `avro:"type"`
	Message         string      `avro:"message"`
	Timestamp       time.Time   `avro:"timestamp"`
	TransportName   *string     `avro:"transport_name"`
	Worker          *string     `avro:"worker"`
	Reasons         []string    `avro:"reasons"`
	Details         Metadata    `avro:"details"`
	RoutingMetadata Metadata    `avro:"routing_metadata"`
	HelperMetadata  Metadata    `avro:"helper_metadata"`
	Extra           Metadata    `avro:"extra"`
}

// Failure is a message a worker could not handle (Vumi's failure_message).
type Failure struct {
	FailureID       string       `avro:"failure_id"`
	Timestamp       time.Time    `avro:"timestamp"`
	FailureCode     *FailureCode `avro:"failure_code"`
	Reason          string       `avro:"reason"`
	Worker          *string      `avro:"worker"`
	MessageType     *string      `avro:"message_type"`
	Message         *string      `avro:"message"`
	SourceTopic     *string      `avro:"source_topic"`
	SourcePartition *int32       `avro:"source_partition"`
	SourceOffset    *int64       `avro:"source_offset"`
	Key             []byte       `avro:"key"`
	Raw             []byte       `avro:"raw"`
	Retries         int32        `avro:"retries"`
}

// MetricDatapoint is one raw metric value.
type MetricDatapoint struct {
	Name        string    `avro:"name"`
	Aggregators []string  `avro:"aggregators"`
	Timestamp   time.Time `avro:"timestamp"`
	Value       float64   `avro:"value"`
	Source      *string   `avro:"source"`
	// Count is how many values the datapoint stands for (Value is their
	// mean); records written before the field existed read as 1.
	Count int64 `avro:"count"`
}

// MetricAggregate is one aggregated metric value for one window.
type MetricAggregate struct {
	Name          string    `avro:"name"`
	Aggregator    string    `avro:"aggregator"`
	WindowStart   time.Time `avro:"window_start"`
	WindowSeconds int32     `avro:"window_seconds"`
	Value         float64   `avro:"value"`
	Count         int64     `avro:"count"`
}

// Heartbeat is a worker's periodic sign of life.
type Heartbeat struct {
	Version         string             `avro:"version" json:"version"`
	SystemID        string             `avro:"system_id" json:"system_id"`
	WorkerID        string             `avro:"worker_id" json:"worker_id"`
	WorkerName      string             `avro:"worker_name" json:"worker_name"`
	InstanceID      string             `avro:"instance_id" json:"instance_id"`
	Hostname        string             `avro:"hostname" json:"hostname"`
	PID             int32              `avro:"pid" json:"pid"`
	Timestamp       time.Time          `avro:"timestamp" json:"timestamp"`
	IntervalSeconds int32              `avro:"interval_seconds" json:"interval_seconds"`
	Figures         map[string]float64 `avro:"figures" json:"figures"`
}

// HeartbeatVersion is Vumi's heartbeat message version.
const HeartbeatVersion = "20130319"

// GenerateID returns a new random message id: 32 lowercase hex characters,
// a version 4 UUID without dashes, like Vumi's generate_id.
func GenerateID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		panic("schemas: crypto/rand failed: " + err.Error())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return hex.EncodeToString(b[:])
}

// Now returns the current UTC time truncated to microseconds, the precision
// of Vumi timestamps and of the Avro timestamp-micros fields.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func endpointOf(rm Metadata) string {
	if s, ok := rm["endpoint_name"].(string); ok && s != "" {
		return s
	}
	return DefaultEndpoint
}

func setEndpoint(rm Metadata, name string) Metadata {
	if name == "" {
		name = DefaultEndpoint
	}
	if rm == nil {
		rm = Metadata{}
	}
	rm["endpoint_name"] = name
	return rm
}

// SetString sets one of the user message's string fields by its Vumi name
// (to_addr, from_addr, content, group, provider, transport_name,
// transport_type, to_addr_type, from_addr_type, in_reply_to,
// session_event), for code that fills messages from configuration or
// request parameters.
func (m *UserMessage) SetString(field, value string) error {
	v := value
	switch field {
	case "to_addr":
		m.ToAddr = &v
	case "from_addr":
		m.FromAddr = &v
	case "content":
		m.Content = &v
	case "group":
		m.Group = &v
	case "provider":
		m.Provider = &v
	case "transport_name":
		m.TransportName = &v
	case "transport_type":
		m.TransportType = &v
	case "to_addr_type":
		m.ToAddrType = &v
	case "from_addr_type":
		m.FromAddrType = &v
	case "in_reply_to":
		m.InReplyTo = &v
	case "session_event":
		ev := SessionEvent(v)
		if !ev.Valid() {
			return fieldError(field, fmt.Sprintf("invalid session event %q (want new, resume or close)", v))
		}
		m.SessionEvent = &ev
	default:
		return fieldError(field, "not a settable string field of a user message")
	}
	return nil
}
