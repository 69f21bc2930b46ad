package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// VumiTimeFormat is Vumi's timestamp format (VUMI_DATE_FORMAT,
// "%Y-%m-%d %H:%M:%S.%f"), always UTC.
const VumiTimeFormat = "2006-01-02 15:04:05.000000"

// FormatVumiTime formats t in Vumi's timestamp format, in UTC.
func FormatVumiTime(t time.Time) string { return t.UTC().Format(VumiTimeFormat) }

// ParseVumiTime parses a Vumi timestamp, with or without microseconds, as
// UTC. RFC 3339 timestamps are accepted too.
func ParseVumiTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02 15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC().Truncate(time.Microsecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid Vumi timestamp %q (want YYYY-MM-DD HH:MM:SS[.ffffff])", s)
}

// FieldError reports a bad field of a message.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Reason }

func fieldError(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// ErrNotJSONObject is returned when a message is not a JSON object.
var ErrNotJSONObject = errors.New("message is not a JSON object")

// decodeJSONValue decodes one JSON value with numbers kept as json.Number,
// rejecting trailing data.
func decodeJSONValue(b []byte) (any, error) {
	if v, i, ok := parseValue(b, skipWS(b, 0), 0); ok && skipWS(b, i) == len(b) {
		return v, nil // the common case, without reflection (metadata_fast.go)
	}
	return decodeJSONSlow(b)
}

// ParseJSONObject decodes a JSON object (with surrounding white space and
// nothing else) as encoding/json with UseNumber decodes it into a
// map[string]any, without reflection; ok is false when the fast path does
// not take it (escapes or invalid UTF-8 in strings, duplicate keys, deep
// nesting, invalid JSON): the caller then uses encoding/json, which also
// reports the errors.
func ParseJSONObject(b []byte) (map[string]any, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	v, i, ok := parseValue(b, i, 0)
	if !ok || skipWS(b, i) != len(b) {
		return nil, false
	}
	return v.(map[string]any), true
}

// decodeJSONSlow is decodeJSONValue through encoding/json, for what the
// fast path does not take (and the errors of invalid JSON).
func decodeJSONSlow(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// fields is a decoded JSON object whose known keys are taken one by one;
// whatever is left over becomes the message's Extra.
type fields struct {
	m   map[string]any
	err error
}

func parseObject(b []byte) (*fields, error) {
	v, err := decodeJSONValue(b)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w (got %s)", ErrNotJSONObject, jsonKind(v))
	}
	return &fields{m: m}, nil
}

func (f *fields) fail(field, reason string) {
	if f.err == nil {
		f.err = fieldError(field, reason)
	}
}

func (f *fields) take(key string) (any, bool) {
	v, ok := f.m[key]
	delete(f.m, key)
	return v, ok
}

// str takes a required string.
func (f *fields) str(key string) string {
	v, ok := f.take(key)
	if !ok || v == nil {
		f.fail(key, "is required")
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "must be a string, got "+jsonKind(v))
	}
	return s
}

// optStr takes an optional, nullable string.
func (f *fields) optStr(key string) *string {
	v, ok := f.take(key)
	if !ok || v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "must be a string or null, got "+jsonKind(v))
		return nil
	}
	return &s
}

// strDefault takes an optional string with a default.
func (f *fields) strDefault(key, def string) string {
	if p := f.optStr(key); p != nil {
		return *p
	}
	return def
}

func (f *fields) meta(key string) Metadata {
	v, ok := f.take(key)
	if !ok || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.fail(key, "must be an object, got "+jsonKind(v))
		return nil
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func (f *fields) timestamp(key string) time.Time {
	v, ok := f.take(key)
	if !ok || v == nil {
		return Now()
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "must be a string, got "+jsonKind(v))
		return time.Time{}
	}
	t, err := ParseVumiTime(s)
	if err != nil {
		f.fail(key, err.Error())
	}
	return t
}

func (f *fields) strList(key string) []string {
	v, ok := f.take(key)
	if !ok || v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		f.fail(key, "must be an array of strings, got "+jsonKind(v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			f.fail(fmt.Sprintf("%s[%d]", key, i), "must be a string, got "+jsonKind(item))
			return nil
		}
		out = append(out, s)
	}
	return out
}

// header checks message_version and message_type.
func (f *fields) header(wantType string) {
	if v, ok := f.take("message_version"); ok && v != nil && v != MessageVersion {
		f.fail("message_version", fmt.Sprintf("unsupported version %v (want %s)", v, MessageVersion))
	}
	if v, ok := f.take("message_type"); ok && v != nil && v != wantType {
		f.fail("message_type", fmt.Sprintf("is %v, want %s", v, wantType))
	}
}

func (f *fields) extra() Metadata {
	if len(f.m) == 0 {
		return nil
	}
	return f.m
}

// MessageType returns the message_type field of a Vumi JSON message, or ""
// when it has none.
func MessageType(b []byte) (string, error) {
	var probe struct {
		MessageType *string `json:"message_type"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("invalid JSON message: %w", err)
	}
	if probe.MessageType == nil {
		return "", nil
	}
	return *probe.MessageType, nil
}

// ParseUserMessage parses a Vumi JSON user message. Like Vumi's message
// constructor it fills defaults for absent fields (a new message_id, the
// current timestamp, nulls); fields it does not know are kept in Extra.
func ParseUserMessage(b []byte) (*UserMessage, error) {
	f, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	f.header(TypeUserMessage)
	m := &UserMessage{
		MessageID:         f.strDefault("message_id", ""),
		Timestamp:         f.timestamp("timestamp"),
		ToAddr:            f.optStr("to_addr"),
		FromAddr:          f.optStr("from_addr"),
		ToAddrType:        f.optStr("to_addr_type"),
		FromAddrType:      f.optStr("from_addr_type"),
		InReplyTo:         f.optStr("in_reply_to"),
		Content:           f.optStr("content"),
		TransportName:     f.optStr("transport_name"),
		TransportType:     f.optStr("transport_type"),
		Group:             f.optStr("group"),
		Provider:          f.optStr("provider"),
		RoutingMetadata:   f.meta("routing_metadata"),
		HelperMetadata:    f.meta("helper_metadata"),
		TransportMetadata: f.meta("transport_metadata"),
	}
	if m.MessageID == "" {
		m.MessageID = GenerateID()
	}
	if se := f.optStr("session_event"); se != nil {
		ev := SessionEvent(*se)
		if !ev.Valid() {
			f.fail("session_event", fmt.Sprintf("invalid session event %q (want null, new, resume or close)", *se))
		}
		m.SessionEvent = &ev
	}
	if f.err != nil {
		return nil, f.err
	}
	m.Extra = f.extra()
	return m, nil
}

// ParseEvent parses a Vumi JSON event and validates it as Vumi does.
func ParseEvent(b []byte) (*Event, error) {
	f, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	f.header(TypeEvent)
	e := &Event{
		EventID:           f.strDefault("event_id", ""),
		EventType:         EventType(f.str("event_type")),
		UserMessageID:     f.str("user_message_id"),
		Timestamp:         f.timestamp("timestamp"),
		SentMessageID:     f.optStr("sent_message_id"),
		NackReason:        f.optStr("nack_reason"),
		TransportName:     f.optStr("transport_name"),
		RoutingMetadata:   f.meta("routing_metadata"),
		HelperMetadata:    f.meta("helper_metadata"),
		TransportMetadata: f.meta("transport_metadata"),
	}
	if e.EventID == "" {
		e.EventID = GenerateID()
	}
	if ds := f.optStr("delivery_status"); ds != nil {
		d := DeliveryStatus(*ds)
		e.DeliveryStatus = &d
	}
	if f.err != nil {
		return nil, f.err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	e.Extra = f.extra()
	return e, nil
}

// ParseStatus parses a Vumi JSON status event.
func ParseStatus(b []byte) (*Status, error) {
	f, err := parseObject(b)
	if err != nil {
		return nil, err
	}
	f.header(TypeStatus)
	s := &Status{
		Component:       f.str("component"),
		Status:          StatusLevel(f.str("status")),
		Type:            f.str("type"),
		Message:         f.str("message"),
		Timestamp:       f.timestamp("timestamp"),
		TransportName:   f.optStr("transport_name"),
		Worker:          f.optStr("worker"),
		Reasons:         f.strList("reasons"),
		Details:         f.meta("details"),
		RoutingMetadata: f.meta("routing_metadata"),
		HelperMetadata:  f.meta("helper_metadata"),
	}
	if f.err == nil && !s.Status.Valid() {
		f.fail("status", fmt.Sprintf("invalid status %q (want ok, degraded or down)", s.Status))
	}
	if f.err != nil {
		return nil, f.err
	}
	s.Extra = f.extra()
	return s, nil
}

// jsonWriter writes a JSON object field by field in a fixed order.
type jsonWriter struct {
	buf   bytes.Buffer
	first bool
	err   error
}

func newJSONWriter() *jsonWriter {
	w := &jsonWriter{first: true}
	w.buf.Grow(512)
	w.buf.WriteByte('{')
	return w
}

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.buf.WriteString(", ")
	}
	w.first = false
	writeJSONString(&w.buf, k)
	w.buf.WriteString(": ")
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	writeJSONString(&w.buf, v)
}

func (w *jsonWriter) optStr(k string, v *string) {
	w.key(k)
	if v == nil {
		w.buf.WriteString("null")
		return
	}
	writeJSONString(&w.buf, *v)
}

func (w *jsonWriter) value(k string, v any) {
	w.key(k)
	b, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("field %s: %w", k, err)
	}
	w.buf.Write(b)
}

func (w *jsonWriter) meta(k string, m Metadata) {
	if m == nil {
		m = Metadata{}
	}
	w.key(k)
	// The usual metadata without reflection (byte-identical output).
	if b, ok := appendMetadataJSON(w.buf.AvailableBuffer(), m); ok {
		w.buf.Write(b)
		return
	}
	b, err := json.Marshal(map[string]any(m))
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("field %s: %w", k, err)
	}
	w.buf.Write(b)
}

func (w *jsonWriter) extra(m Metadata) {
	for _, k := range sortedKeys(m) {
		w.value(k, m[k])
	}
}

func (w *jsonWriter) done() ([]byte, error) {
	w.buf.WriteByte('}')
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	buf.Write(appendJSONString(buf.AvailableBuffer(), s)) // as encoding/json quotes it
}

func sortedKeys(m Metadata) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// small maps: insertion sort keeps this dependency-free and cheap
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && strings.Compare(keys[j-1], keys[j]) > 0; j-- {
			keys[j-1], keys[j] = keys[j], keys[j-1]
		}
	}
	return keys
}

// MarshalJSON encodes m in Vumi's JSON message format, with every field
// Vumi's TransportUserMessage has (nulls included) plus the Extra fields.
func (m *UserMessage) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("message_version", MessageVersion)
	w.str("message_type", TypeUserMessage)
	w.str("message_id", m.MessageID)
	w.str("timestamp", FormatVumiTime(m.Timestamp))
	w.optStr("to_addr", m.ToAddr)
	w.optStr("from_addr", m.FromAddr)
	w.optStr("to_addr_type", m.ToAddrType)
	w.optStr("from_addr_type", m.FromAddrType)
	w.optStr("in_reply_to", m.InReplyTo)
	w.optStr("session_event", (*string)(m.SessionEvent))
	w.optStr("content", m.Content)
	w.optStr("transport_name", m.TransportName)
	w.optStr("transport_type", m.TransportType)
	w.optStr("group", m.Group)
	w.optStr("provider", m.Provider)
	w.meta("routing_metadata", m.RoutingMetadata)
	w.meta("helper_metadata", m.HelperMetadata)
	w.meta("transport_metadata", m.TransportMetadata)
	w.extra(m.Extra)
	return w.done()
}

// UnmarshalJSON parses Vumi's JSON message format (see ParseUserMessage).
func (m *UserMessage) UnmarshalJSON(b []byte) error {
	p, err := ParseUserMessage(b)
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

// MarshalJSON encodes e in Vumi's JSON event format. sent_message_id,
// nack_reason and delivery_status appear only when set, as in Vumi.
func (e *Event) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("message_version", MessageVersion)
	w.str("message_type", TypeEvent)
	w.str("event_id", e.EventID)
	w.str("event_type", string(e.EventType))
	w.str("user_message_id", e.UserMessageID)
	w.str("timestamp", FormatVumiTime(e.Timestamp))
	if e.SentMessageID != nil {
		w.optStr("sent_message_id", e.SentMessageID)
	}
	if e.NackReason != nil {
		w.optStr("nack_reason", e.NackReason)
	}
	if e.DeliveryStatus != nil {
		w.optStr("delivery_status", (*string)(e.DeliveryStatus))
	}
	w.optStr("transport_name", e.TransportName)
	w.meta("routing_metadata", e.RoutingMetadata)
	w.meta("helper_metadata", e.HelperMetadata)
	w.meta("transport_metadata", e.TransportMetadata)
	w.extra(e.Extra)
	return w.done()
}

// UnmarshalJSON parses Vumi's JSON event format (see ParseEvent).
func (e *Event) UnmarshalJSON(b []byte) error {
	p, err := ParseEvent(b)
	if err != nil {
		return err
	}
	*e = *p
	return nil
}

// MarshalJSON encodes s in Vumi's JSON status format.
func (s *Status) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("message_version", MessageVersion)
	w.str("message_type", TypeStatus)
	w.str("component", s.Component)
	w.str("status", string(s.Status))
	w.str("type", s.Type)
	w.str("message", s.Message)
	w.str("timestamp", FormatVumiTime(s.Timestamp))
	w.optStr("transport_name", s.TransportName)
	if s.Worker != nil {
		w.optStr("worker", s.Worker)
	}
	reasons := s.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	w.value("reasons", reasons)
	w.meta("details", s.Details)
	w.meta("routing_metadata", s.RoutingMetadata)
	w.meta("helper_metadata", s.HelperMetadata)
	w.extra(s.Extra)
	return w.done()
}

// UnmarshalJSON parses Vumi's JSON status format (see ParseStatus).
func (s *Status) UnmarshalJSON(b []byte) error {
	p, err := ParseStatus(b)
	if err != nil {
		return err
	}
	*s = *p
	return nil
}

// MarshalJSON encodes f as Vumi's failure_message: the failed message is
// embedded as a JSON object under "message" when it was decodable.
func (f *Failure) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("message_version", MessageVersion)
	w.str("message_type", TypeFailure)
	w.str("failure_id", f.FailureID)
	w.str("timestamp", FormatVumiTime(f.Timestamp))
	w.optStr("failure_code", (*string)(f.FailureCode))
	w.str("reason", f.Reason)
	w.optStr("worker", f.Worker)
	w.optStr("failed_message_type", f.MessageType)
	w.key("message")
	if f.Message != nil && json.Valid([]byte(*f.Message)) {
		w.buf.WriteString(*f.Message)
	} else {
		w.buf.WriteString("null")
	}
	w.optStr("source_topic", f.SourceTopic)
	w.value("source_partition", f.SourcePartition)
	w.value("source_offset", f.SourceOffset)
	// Keys and raw values are bytes: UTF-8 text is shown as is, anything
	// else base64-encoded with a "_base64" key so nothing is mangled.
	w.bytesField("key", f.Key)
	w.bytesField("raw", f.Raw)
	w.value("retries", f.Retries)
	return w.done()
}

func (w *jsonWriter) bytesField(k string, b []byte) {
	switch {
	case b == nil:
		w.value(k, nil)
	case utf8.Valid(b):
		w.value(k, string(b))
	default:
		w.value(k+"_base64", base64.StdEncoding.EncodeToString(b))
	}
}

// MarshalJSON encodes h as a JSON object with a Vumi timestamp.
func (h *Heartbeat) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("message_type", "heartbeat")
	w.str("version", h.Version)
	w.str("system_id", h.SystemID)
	w.str("worker_id", h.WorkerID)
	w.str("worker_name", h.WorkerName)
	w.str("instance_id", h.InstanceID)
	w.str("hostname", h.Hostname)
	w.value("pid", h.PID)
	w.str("timestamp", FormatVumiTime(h.Timestamp))
	w.value("interval_seconds", h.IntervalSeconds)
	figures := h.Figures
	if figures == nil {
		figures = map[string]float64{}
	}
	w.value("figures", figures)
	return w.done()
}

// MarshalJSON encodes d as a JSON object.
func (d *MetricDatapoint) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("name", d.Name)
	w.value("aggregators", d.Aggregators)
	w.str("timestamp", FormatVumiTime(d.Timestamp))
	w.value("value", d.Value)
	w.optStr("source", d.Source)
	w.value("count", d.Count)
	return w.done()
}

// MarshalJSON encodes a as a JSON object.
func (a *MetricAggregate) MarshalJSON() ([]byte, error) {
	w := newJSONWriter()
	w.str("name", a.Name)
	w.str("aggregator", a.Aggregator)
	w.str("window_start", FormatVumiTime(a.WindowStart))
	w.value("window_seconds", a.WindowSeconds)
	w.value("value", a.Value)
	w.value("count", a.Count)
	return w.done()
}
