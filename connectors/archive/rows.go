package archive

import (
	"time"

	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

// MessageRow is one archived user message (files under kind=inbound and
// kind=outbound). Column names follow Vumi's field names; the free-form
// dicts are JSON text ("{}" when empty). account is the account the
// accounts middleware linked the message to (helper_metadata.go.user_account),
// null when none. kafka_partition and kafka_offset say where the record
// was read from.
type MessageRow struct {
	MessageID         string    `parquet:"message_id"`
	Timestamp         time.Time `parquet:"timestamp,timestamp(microsecond)"`
	ToAddr            *string   `parquet:"to_addr,optional"`
	FromAddr          *string   `parquet:"from_addr,optional"`
	ToAddrType        *string   `parquet:"to_addr_type,optional"`
	FromAddrType      *string   `parquet:"from_addr_type,optional"`
	InReplyTo         *string   `parquet:"in_reply_to,optional"`
	SessionEvent      *string   `parquet:"session_event,optional"`
	Content           *string   `parquet:"content,optional"`
	TransportName     *string   `parquet:"transport_name,optional"`
	TransportType     *string   `parquet:"transport_type,optional"`
	Group             *string   `parquet:"group,optional"`
	Provider          *string   `parquet:"provider,optional"`
	Account           *string   `parquet:"account,optional"`
	Endpoint          string    `parquet:"endpoint"`
	RoutingMetadata   string    `parquet:"routing_metadata"`
	HelperMetadata    string    `parquet:"helper_metadata"`
	TransportMetadata string    `parquet:"transport_metadata"`
	Extra             string    `parquet:"extra"`
	KafkaPartition    int32     `parquet:"kafka_partition"`
	KafkaOffset       int64     `parquet:"kafka_offset"`
}

// EventRow is one archived event (files under kind=event).
type EventRow struct {
	EventID           string    `parquet:"event_id"`
	EventType         string    `parquet:"event_type"`
	UserMessageID     string    `parquet:"user_message_id"`
	Timestamp         time.Time `parquet:"timestamp,timestamp(microsecond)"`
	SentMessageID     *string   `parquet:"sent_message_id,optional"`
	NackReason        *string   `parquet:"nack_reason,optional"`
	DeliveryStatus    *string   `parquet:"delivery_status,optional"`
	TransportName     *string   `parquet:"transport_name,optional"`
	Account           *string   `parquet:"account,optional"`
	Endpoint          string    `parquet:"endpoint"`
	RoutingMetadata   string    `parquet:"routing_metadata"`
	HelperMetadata    string    `parquet:"helper_metadata"`
	TransportMetadata string    `parquet:"transport_metadata"`
	Extra             string    `parquet:"extra"`
	KafkaPartition    int32     `parquet:"kafka_partition"`
	KafkaOffset       int64     `parquet:"kafka_offset"`
}

// jsonText is a metadata dict as a JSON object ("{}" when empty).
func jsonText(m schemas.Metadata) (string, error) {
	b, err := m.MarshalText()
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "{}", nil
	}
	return string(b), nil
}

func metadataTexts(ms ...schemas.Metadata) ([]string, error) {
	out := make([]string, len(ms))
	for i, m := range ms {
		s, err := jsonText(m)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func messageRow(m *schemas.UserMessage, partition int32, offset int64) (MessageRow, error) {
	md, err := metadataTexts(m.RoutingMetadata, m.HelperMetadata, m.TransportMetadata, m.Extra)
	if err != nil {
		return MessageRow{}, err
	}
	r := MessageRow{
		MessageID: m.MessageID, Timestamp: m.Timestamp.UTC(),
		ToAddr: m.ToAddr, FromAddr: m.FromAddr, ToAddrType: m.ToAddrType, FromAddrType: m.FromAddrType,
		InReplyTo: m.InReplyTo, Content: m.Content, TransportName: m.TransportName, TransportType: m.TransportType,
		Group: m.Group, Provider: m.Provider, Endpoint: m.Endpoint(),
		RoutingMetadata: md[0], HelperMetadata: md[1], TransportMetadata: md[2], Extra: md[3],
		KafkaPartition: partition, KafkaOffset: offset,
	}
	if a, ok := middleware.AccountOf(m.HelperMetadata); ok {
		r.Account = &a
	}
	if m.SessionEvent != nil {
		r.SessionEvent = schemas.String(string(*m.SessionEvent))
	}
	return r, nil
}

func eventRow(e *schemas.Event, partition int32, offset int64) (EventRow, error) {
	md, err := metadataTexts(e.RoutingMetadata, e.HelperMetadata, e.TransportMetadata, e.Extra)
	if err != nil {
		return EventRow{}, err
	}
	r := EventRow{
		EventID: e.EventID, EventType: string(e.EventType), UserMessageID: e.UserMessageID, Timestamp: e.Timestamp.UTC(),
		SentMessageID: e.SentMessageID, NackReason: e.NackReason, TransportName: e.TransportName, Endpoint: e.Endpoint(),
		RoutingMetadata: md[0], HelperMetadata: md[1], TransportMetadata: md[2], Extra: md[3],
		KafkaPartition: partition, KafkaOffset: offset,
	}
	if a, ok := middleware.AccountOf(e.HelperMetadata); ok {
		r.Account = &a
	}
	if e.DeliveryStatus != nil {
		r.DeliveryStatus = schemas.String(string(*e.DeliveryStatus))
	}
	return r, nil
}
