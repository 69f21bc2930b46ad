package schemas

import (
	"time"
)

// ts is a fixed timestamp for fixtures.
var ts = time.Date(2026, 11, 22, 10, 30, 15, 123456000, time.UTC)

func sessionEv(s SessionEvent) *SessionEvent          { return &s }
func deliveryStatus(d DeliveryStatus) *DeliveryStatus { return &d }
func failureCode(c FailureCode) *FailureCode          { return &c }
func i32(v int32) *int32                              { return &v }
func i64(v int64) *int64                              { return &v }

// typicalSMS is the benchmark's typical SMS: the shape Vumi's SMPP
// transport publishes for an inbound SMS (message_id, addresses, a
// 160-character body, transport name and type; the other Vumi fields null
// and the metadata dicts empty).
func typicalSMS() *UserMessage {
	return &UserMessage{
		MessageID:     "5b8c1e2f9a7d4c3b8e6f1a2b3c4d5e6f",
		Timestamp:     ts,
		ToAddr:        String("12345"),
		FromAddr:      String("27761234567"),
		Content:       String(content160),
		TransportName: String("smpp_transport"),
		TransportType: String(TransportSMS),
	}
}

const content160 = "Hello from Vumi on Kafka! This SMS is exactly one hundred and sixty characters long, the full length of a single GSM-7 part; pad: 0123456789ABCDEFGHIJKLMNOPQRST"

// richSMS has every field set, including small metadata dicts.
func richSMS() *UserMessage {
	return &UserMessage{
		MessageID:         "5b8c1e2f9a7d4c3b8e6f1a2b3c4d5e6f",
		Timestamp:         ts,
		ToAddr:            String("12345"),
		FromAddr:          String("+27761234567"),
		ToAddrType:        String(AddrMSISDN),
		FromAddrType:      String(AddrMSISDN),
		InReplyTo:         nil,
		SessionEvent:      sessionEv(SessionNew),
		Content:           String(content160),
		TransportName:     String("smpp_transport"),
		TransportType:     String(TransportSMS),
		Group:             nil,
		Provider:          String("vodacom"),
		RoutingMetadata:   Metadata{"endpoint_name": "default"},
		HelperMetadata:    nil,
		TransportMetadata: Metadata{"smsc": "SMSC1"},
	}
}

// golden is every fixture of the golden-bytes tests, by file name.
func golden() map[string]any {
	return map[string]any{
		"user_message_typical": typicalSMS(),
		"user_message_rich":    richSMS(),
		"user_message_minimal": &UserMessage{MessageID: "m1", Timestamp: ts},
		"user_message_reply": &UserMessage{
			MessageID: "message2", Timestamp: ts, InReplyTo: String("message1"),
			ToAddr: String("27761234567"), FromAddr: String("1234"),
			Content: String("Thanks! We've received your SMS!"), TransportName: String("smpp_transport"),
			TransportType: String("sms"), SessionEvent: sessionEv(SessionClose), Group: String("#vumi"),
			HelperMetadata: Metadata{"tag": map[string]any{"tag": []any{"pool", "tag1"}}},
			Extra:          Metadata{"legacy": true},
		},
		"event_ack": &Event{EventID: "e1", EventType: EventAck, UserMessageID: "m1", Timestamp: ts,
			SentMessageID: String("smsc-42"), TransportName: String("smpp_transport")},
		"event_nack": &Event{EventID: "e2", EventType: EventNack, UserMessageID: "m1", Timestamp: ts,
			NackReason: String("throttled"), TransportName: String("smpp_transport")},
		"event_delivery_report": &Event{EventID: "e3", EventType: EventDeliveryReport, UserMessageID: "m1", Timestamp: ts,
			DeliveryStatus: deliveryStatus(DeliveryDelivered), TransportName: String("smpp_transport"),
			TransportMetadata: Metadata{"smpp_delivery_status": "DELIVRD"}},
		"status_bound": &Status{Component: "smpp", Status: StatusOK, Type: "bound", Message: "Bound",
			Timestamp: ts, TransportName: String("smpp_transport"), Worker: String("smpp_transport"),
			Reasons: []string{}, Details: Metadata{"system_id": "test"}},
		"failure_permanent": &Failure{FailureID: "f1", Timestamp: ts, FailureCode: failureCode(FailurePermanent),
			Reason: "no route", Worker: String("router"), MessageType: String(TypeUserMessage),
			Message: String(`{"message_id": "m1"}`), SourceTopic: String("sms.outbound"), SourcePartition: i32(3),
			SourceOffset: i64(1234), Key: []byte("+27761234567"), Retries: 2},
		"failure_undecodable": &Failure{FailureID: "f2", Timestamp: ts, Reason: "decode: bad magic",
			Raw: []byte{0xff, 0x00, 0x01}},
		"metric_datapoint": &MetricDatapoint{Name: "vumi.test.count", Aggregators: []string{"sum"}, Timestamp: ts, Value: 3, Source: String("w1"), Count: 1},
		"heartbeat": &Heartbeat{Version: HeartbeatVersion, SystemID: "global", WorkerID: "global:telnet", WorkerName: "telnet",
			InstanceID: "0b1c", Hostname: "host1", PID: 4242, Timestamp: ts, IntervalSeconds: 10, Figures: map[string]float64{"inbound": 3}},
		"metric_aggregate": &MetricAggregate{Name: "vumi.test.count.sum", Aggregator: "sum", WindowStart: ts.Truncate(5 * time.Second), WindowSeconds: 5, Value: 42, Count: 7},
	}
}
