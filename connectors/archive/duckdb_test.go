//go:build cgo

package archive

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/marcboeker/go-duckdb/v2" // the database/sql driver "duckdb"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestArchiveDuckDB reads an archive with a real SQL engine, DuckDB
// (embedded through github.com/marcboeker/go-duckdb, as 'vumi query' uses
// it), with the plain SQL of docs/archive.md: messages per transport and
// date, each outbound message's final delivery status joined from the
// events, one day of one transport, replies, metadata and column types.
func TestArchiveDuckDB(t *testing.T) {
	e := newEnv(t)
	e.register("sms.inbound", "sms.outbound", "sms.event", "ussd.inbound", "ussd.outbound", "ussd.event")
	day1 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	day2 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		e.produceMessage("sms.inbound", sms(fmt.Sprintf("in%d", i), day1, fmt.Sprintf("+2782000000%d", i)))
	}
	newSession := schemas.SessionNew
	e.produceMessage("ussd.inbound", &schemas.UserMessage{MessageID: "u-in", Timestamp: day2, FromAddr: schemas.String("+27820000009"),
		SessionEvent: &newSession, TransportName: schemas.String("ussd"), TransportType: schemas.String("ussd")})
	out := func(topic, id string) {
		m := sms(id, day2, "1234")
		m.ToAddr = schemas.String("+27820000001")
		e.produceMessage(topic, m)
	}
	reply := sms("o-reply", day2, "1234")
	reply.ToAddr, reply.InReplyTo, reply.Content = schemas.String("+27820000000"), schemas.String("in0"), schemas.String("hi back")
	e.produceMessage("sms.outbound", reply)
	out("sms.outbound", "o-delivered")
	out("sms.outbound", "o-failed")
	out("sms.outbound", "o-nacked")
	out("sms.outbound", "o-acked")
	out("ussd.outbound", "o-none")
	st := func(s schemas.DeliveryStatus) *schemas.DeliveryStatus { return &s }
	ev := func(id string, typ schemas.EventType, msg string, at time.Time, status *schemas.DeliveryStatus) *schemas.Event {
		e := &schemas.Event{EventID: id, EventType: typ, UserMessageID: msg, Timestamp: at, DeliveryStatus: status}
		switch typ {
		case schemas.EventAck:
			e.SentMessageID = schemas.String("x")
		case schemas.EventNack:
			e.NackReason = schemas.String("throttled")
		}
		return e
	}
	// Events of one message in arrival order, not time order: the final
	// status is the latest delivery report by timestamp. e3 is delivered
	// twice (at least once delivery): it must count once.
	for _, x := range []*schemas.Event{
		ev("e1", schemas.EventAck, "o-delivered", day2.Add(1*time.Second), nil),
		ev("e3", schemas.EventDeliveryReport, "o-delivered", day2.Add(3*time.Second), st(schemas.DeliveryDelivered)),
		ev("e2", schemas.EventDeliveryReport, "o-delivered", day2.Add(2*time.Second), st(schemas.DeliveryPending)),
		ev("e3", schemas.EventDeliveryReport, "o-delivered", day2.Add(3*time.Second), st(schemas.DeliveryDelivered)),
		ev("e4", schemas.EventAck, "o-failed", day2.Add(1*time.Second), nil),
		ev("e5", schemas.EventDeliveryReport, "o-failed", day2.Add(2*time.Second), st(schemas.DeliveryFailed)),
		ev("e6", schemas.EventNack, "o-nacked", day2.Add(1*time.Second), nil),
		ev("e7", schemas.EventAck, "o-acked", day2.Add(1*time.Second), nil),
	} {
		e.produceEvent("sms.event", x)
	}
	stop := e.run("    roll_interval: 100ms\n", hooks{})
	e.waitFor("every row", func(a *archived) bool { return a.messageCount() == 10 && a.eventCount() == 8 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	for _, stmt := range []string{
		`CREATE VIEW messages AS SELECT * FROM read_parquet([` + q(e.dir+"/kind=inbound/*/*/*.parquet") + `, ` + q(e.dir+"/kind=outbound/*/*/*.parquet") + `],
		   hive_partitioning = true, union_by_name = true)`,
		`CREATE VIEW events AS SELECT * FROM read_parquet(` + q(e.dir+"/kind=event/*/*/*.parquet") + `, hive_partitioning = true, union_by_name = true)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	// all runs a query and returns its rows as JSON objects of strings
	// (null for NULL), in the query's order.
	all := func(sqlText string) json.RawMessage {
		t.Helper()
		rows, err := db.Query(sqlText)
		if err != nil {
			t.Fatalf("%s: %v", sqlText, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		out := []map[string]*string{}
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", sqlText, err)
			}
			row := map[string]*string{}
			for i, c := range cols {
				if vals[i].Valid {
					v := vals[i].String
					row[c] = &v
				} else {
					row[c] = nil
				}
			}
			out = append(out, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", sqlText, err)
		}
		b, _ := json.Marshal(out)
		return b
	}
	results := map[string]json.RawMessage{
		"per_transport": all(`SELECT transport, kind, count(DISTINCT message_id) AS messages FROM messages GROUP BY ALL ORDER BY ALL`),
		"per_date":      all(`SELECT CAST(date AS VARCHAR) AS date, count(*) AS messages FROM messages GROUP BY ALL ORDER BY ALL`),
		"final_status": all(`
			WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events),
			final AS (
			  SELECT user_message_id,
			         arg_max(delivery_status, timestamp) FILTER (WHERE event_type = 'delivery_report') AS delivery_status,
			         bool_or(event_type = 'ack')  AS acked,
			         bool_or(event_type = 'nack') AS nacked
			  FROM ev GROUP BY user_message_id)
			SELECT m.message_id, m.transport,
			       coalesce(f.delivery_status, CASE WHEN f.nacked THEN 'nacked' WHEN f.acked THEN 'acked' END, 'unknown') AS final_status
			FROM (SELECT DISTINCT ON (message_id) * FROM messages WHERE kind = 'outbound') m
			LEFT JOIN final f ON f.user_message_id = m.message_id
			ORDER BY m.message_id`),
		"one_day": all(`SELECT from_addr, content FROM messages
			WHERE kind = 'inbound' AND transport = 'sms' AND date = DATE '2026-11-21' ORDER BY message_id`),
		"replies": all(`SELECT i.from_addr, i.content AS asked, o.content AS answered
			FROM messages i JOIN messages o ON o.in_reply_to = i.message_id
			WHERE i.kind = 'inbound' AND o.kind = 'outbound'`),
		"batches": all(`SELECT json_extract_string(helper_metadata, '$.batch_id') AS batch, count(*) AS n
			FROM messages GROUP BY ALL ORDER BY ALL`),
		"types": all(`SELECT column_name, column_type FROM (DESCRIBE SELECT timestamp, kafka_offset, session_event FROM messages)
			ORDER BY column_name`),
	}
	var stdout bytes.Buffer
	if err := json.NewEncoder(&stdout).Encode(results); err != nil {
		t.Fatal(err)
	}
	var got struct {
		PerTransport []struct {
			Transport string `json:"transport"`
			Kind      string `json:"kind"`
			Messages  string `json:"messages"`
		} `json:"per_transport"`
		PerDate []struct {
			Date     string `json:"date"`
			Messages string `json:"messages"`
		} `json:"per_date"`
		FinalStatus []struct {
			MessageID   string `json:"message_id"`
			Transport   string `json:"transport"`
			FinalStatus string `json:"final_status"`
		} `json:"final_status"`
		OneDay []struct {
			FromAddr string `json:"from_addr"`
			Content  string `json:"content"`
		} `json:"one_day"`
		Replies []struct {
			FromAddr string `json:"from_addr"`
			Asked    string `json:"asked"`
			Answered string `json:"answered"`
		} `json:"replies"`
		Batches []struct {
			Batch *string `json:"batch"`
			N     string  `json:"n"`
		} `json:"batches"`
		Types []struct {
			Name string `json:"column_name"`
			Type string `json:"column_type"`
		} `json:"types"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("query output %q: %v", stdout.String(), err)
	}
	check := func(what string, v any, want string) {
		t.Helper()
		b, _ := json.Marshal(v)
		if string(b) != want {
			t.Errorf("%s:\n got %s\nwant %s", what, b, want)
		}
	}
	check("messages per transport", got.PerTransport,
		`[{"transport":"sms","kind":"inbound","messages":"3"},{"transport":"sms","kind":"outbound","messages":"5"},`+
			`{"transport":"ussd","kind":"inbound","messages":"1"},{"transport":"ussd","kind":"outbound","messages":"1"}]`)
	check("messages per date", got.PerDate, `[{"date":"2026-11-21","messages":"3"},{"date":"2026-11-22","messages":"7"}]`)
	check("final delivery status", got.FinalStatus,
		`[{"message_id":"o-acked","transport":"sms","final_status":"acked"},`+
			`{"message_id":"o-delivered","transport":"sms","final_status":"delivered"},`+
			`{"message_id":"o-failed","transport":"sms","final_status":"failed"},`+
			`{"message_id":"o-nacked","transport":"sms","final_status":"nacked"},`+
			`{"message_id":"o-none","transport":"ussd","final_status":"unknown"},`+
			`{"message_id":"o-reply","transport":"sms","final_status":"unknown"}]`)
	check("one day of one transport", got.OneDay,
		`[{"from_addr":"+27820000000","content":"hello in0"},{"from_addr":"+27820000001","content":"hello in1"},{"from_addr":"+27820000002","content":"hello in2"}]`)
	check("replies", got.Replies, `[{"from_addr":"+27820000000","asked":"hello in0","answered":"hi back"}]`)
	check("metadata", got.Batches, `[{"batch":"b1","n":"9"},{"batch":null,"n":"1"}]`)
	check("column types", got.Types,
		`[{"column_name":"kafka_offset","column_type":"BIGINT"},{"column_name":"session_event","column_type":"VARCHAR"},`+
			`{"column_name":"timestamp","column_type":"TIMESTAMP WITH TIME ZONE"}]`)
}
