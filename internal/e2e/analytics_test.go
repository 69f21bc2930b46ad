//go:build cgo

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/query"
	"github.com/vumi-kafka/vumi/schemas"
)

// queryRows runs SQL over an archive and returns the rows as JSON values.
func queryRows(t *testing.T, d *query.DB, q string) []map[string]any {
	t.Helper()
	var out bytes.Buffer
	if _, err := d.Run(context.Background(), q, query.FormatJSON, &out, nil, 0); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("%s: %v\n%s", q, err, out.String())
	}
	return rows
}

// waitArchived polls the archive (through the views, as an analyst would)
// until it holds want messages and wantEvents events.
func waitArchived(t *testing.T, dir string, want, wantEvents int) {
	t.Helper()
	waitQuery(t, dir, fmt.Sprintf("SELECT (SELECT count(*) FROM messages) = %d AND (SELECT count(*) FROM events) = %d AS ok", want, wantEvents))
}

// waitQuery polls the archive until q returns ok = true.
func waitQuery(t *testing.T, dir, q string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(dir); err == nil {
			d, err := query.Open(context.Background(), query.Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			rows := queryRows(t, d, q)
			d.Close()
			if len(rows) == 1 && rows[0]["ok"] == true {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive %s: %s not true after 90s", dir, q)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type exchange struct {
	at  time.Time
	seq int
}

// msg builds a message of the scripted exchange, one second after the last.
func (x *exchange) msg(id, transport, typ, from, to, content string, session schemas.SessionEvent, inReplyTo string) *schemas.UserMessage {
	x.seq++
	m := &schemas.UserMessage{MessageID: id, Timestamp: x.at.Add(time.Duration(x.seq) * time.Second),
		FromAddr: schemas.String(from), ToAddr: schemas.String(to), Content: schemas.String(content),
		TransportName: schemas.String(transport), TransportType: schemas.String(typ)}
	if session != "" {
		m.SessionEvent = &session
	}
	if inReplyTo != "" {
		m.InReplyTo = schemas.String(inReplyTo)
	}
	return m
}

func event(id string, typ schemas.EventType, msg string, at time.Time, status schemas.DeliveryStatus) *schemas.Event {
	e := &schemas.Event{EventID: id, EventType: typ, UserMessageID: msg, Timestamp: at}
	switch typ {
	case schemas.EventAck:
		e.SentMessageID = schemas.String("remote-" + msg)
	case schemas.EventNack:
		e.NackReason = schemas.String("rejected by the network")
	case schemas.EventDeliveryReport:
		e.DeliveryStatus = &status
	}
	return e
}

// TestQueryConversations: a scripted exchange over SMS, USSD and XMPP is
// archived by the real archiver from the embedded broker and queried with
// the real DuckDB: conversations (USSD sessions as units), the delivery
// funnel, and people linked across transports by an identity table.
func TestQueryConversations(t *testing.T) {
	c := startCluster(t)
	c.external = []string{"ussd.inbound", "ussd.outbound", "ussd.event", "xmpp.inbound", "xmpp.outbound", "xmpp.event"}
	dir := filepath.Join(t.TempDir(), "archive")
	run(t, c, fmt.Sprintf(`
  - name: archive
    kind: archiver
    directory: %s
    transports: [sms, ussd, xmpp]
    roll_interval: 100ms
`, dir))

	const alice, bob, aliceJID, bot = "+27820000001", "+27820000002", "alice@example.org", "bot@example.org"
	day1 := &exchange{at: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
	day2 := &exchange{at: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	// SMS to the short code 1234, and a promotion from 5678.
	s1 := day1.msg("s1", "sms", "sms", alice, "1234", "hi", "", "")
	s2 := day1.msg("s2", "sms", "sms", "1234", alice, "hello alice", "", "s1")
	s3 := day1.msg("s3", "sms", "sms", bob, "1234", "hey", "", "")
	s4 := day1.msg("s4", "sms", "sms", "1234", bob, "hi bob", "", "s3")
	s6 := day1.msg("s6", "sms", "sms", "5678", alice, "promo", "", "")
	s5 := day2.msg("s5", "sms", "sms", alice, "1234", "bye", "", "")
	// Two USSD sessions of alice on *120*1#.
	u1 := day1.msg("u1", "ussd", "ussd", alice, "*120*1#", "", schemas.SessionNew, "")
	u2 := day1.msg("u2", "ussd", "ussd", "*120*1#", alice, "1. balance 2. bundles", schemas.SessionResume, "u1")
	u3 := day1.msg("u3", "ussd", "ussd", alice, "*120*1#", "1", schemas.SessionResume, "")
	u4 := day1.msg("u4", "ussd", "ussd", "*120*1#", alice, "R12.00", schemas.SessionClose, "u3")
	u5 := day1.msg("u5", "ussd", "ussd", alice, "*120*1#", "", schemas.SessionNew, "")
	u6 := day1.msg("u6", "ussd", "ussd", "*120*1#", alice, "goodbye", schemas.SessionClose, "u5")
	// Alice on XMPP.
	x1 := day1.msg("x1", "xmpp", "xmpp", aliceJID, bot, "hello bot", "", "")
	x2 := day1.msg("x2", "xmpp", "xmpp", bot, aliceJID, "hello human", "", "x1")

	c.produceTo(t, "sms.inbound", s1, s3, s5)
	c.produceTo(t, "sms.outbound", s2, s4, s6)
	c.produceTo(t, "ussd.inbound", u1, u3, u5)
	c.produceTo(t, "ussd.outbound", u2, u4, u6)
	c.produceTo(t, "xmpp.inbound", x1)
	c.produceTo(t, "xmpp.outbound", x2)
	later := day1.at.Add(time.Hour)
	c.produceTo(t, "sms.event",
		event("e1", schemas.EventAck, "s2", later, ""),
		event("e2", schemas.EventDeliveryReport, "s2", later, schemas.DeliveryDelivered),
		event("e3", schemas.EventAck, "s4", later, ""),
		event("e4", schemas.EventDeliveryReport, "s4", later, schemas.DeliveryFailed),
		event("e5", schemas.EventNack, "s6", later, ""))
	c.produceTo(t, "ussd.event", event("e6", schemas.EventAck, "u2", later, ""))

	waitArchived(t, dir, 14, 6)
	idents := filepath.Join(dir, query.IdentitiesFile)
	if err := os.WriteFile(idents, []byte("person,address,transport\nalice,+27820000001,\nalice,alice@example.org,xmpp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := query.Open(context.Background(), query.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	check := func(what string, got any, want string) {
		t.Helper()
		var w any // compared as JSON values: key order does not matter
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatalf("%s: want: %v", what, err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
		}
	}
	check("conversations", queryRows(t, d, `SELECT conversation_id, transport, user_addr, app_addr, session_no, is_session,
		  messages, inbound, outbound, first_content, last_content, started::VARCHAR AS started
		FROM conversations ORDER BY conversation_id`),
		`[{"conversation_id":"sms|+27820000001|1234|0","transport":"sms","user_addr":"+27820000001","app_addr":"1234","session_no":0,"is_session":false,"messages":3,"inbound":2,"outbound":1,"first_content":"hi","last_content":"bye","started":"2026-11-21 09:00:01+00"},`+
			`{"conversation_id":"sms|+27820000001|5678|0","transport":"sms","user_addr":"+27820000001","app_addr":"5678","session_no":0,"is_session":false,"messages":1,"inbound":0,"outbound":1,"first_content":"promo","last_content":"promo","started":"2026-11-21 09:00:05+00"},`+
			`{"conversation_id":"sms|+27820000002|1234|0","transport":"sms","user_addr":"+27820000002","app_addr":"1234","session_no":0,"is_session":false,"messages":2,"inbound":1,"outbound":1,"first_content":"hey","last_content":"hi bob","started":"2026-11-21 09:00:03+00"},`+
			`{"conversation_id":"ussd|+27820000001|*120*1#|1","transport":"ussd","user_addr":"+27820000001","app_addr":"*120*1#","session_no":1,"is_session":true,"messages":4,"inbound":2,"outbound":2,"first_content":"","last_content":"R12.00","started":"2026-11-21 09:00:06+00"},`+
			`{"conversation_id":"ussd|+27820000001|*120*1#|2","transport":"ussd","user_addr":"+27820000001","app_addr":"*120*1#","session_no":2,"is_session":true,"messages":2,"inbound":1,"outbound":1,"first_content":"","last_content":"goodbye","started":"2026-11-21 09:00:10+00"},`+
			`{"conversation_id":"xmpp|alice@example.org|bot@example.org|0","transport":"xmpp","user_addr":"alice@example.org","app_addr":"bot@example.org","session_no":0,"is_session":false,"messages":2,"inbound":1,"outbound":1,"first_content":"hello bot","last_content":"hello human","started":"2026-11-21 09:00:12+00"}]`)
	check("one conversation in order", queryRows(t, d, `SELECT position, kind, message_id, session_event FROM conversation_messages
		WHERE conversation_id = 'ussd|+27820000001|*120*1#|1' ORDER BY position`),
		`[{"position":1,"kind":"inbound","message_id":"u1","session_event":"new"},{"position":2,"kind":"outbound","message_id":"u2","session_event":"resume"},`+
			`{"position":3,"kind":"inbound","message_id":"u3","session_event":"resume"},{"position":4,"kind":"outbound","message_id":"u4","session_event":"close"}]`)
	check("funnel", queryRows(t, d, `SELECT date, transport, sent, acked, nacked, delivered, failed FROM delivery_funnel ORDER BY ALL`),
		`[{"date":"2026-11-21","transport":"sms","sent":3,"acked":2,"nacked":1,"delivered":1,"failed":1},`+
			`{"date":"2026-11-21","transport":"ussd","sent":3,"acked":1,"nacked":0,"delivered":0,"failed":0},`+
			`{"date":"2026-11-21","transport":"xmpp","sent":1,"acked":0,"nacked":0,"delivered":0,"failed":0}]`)
	check("people", queryRows(t, d, `SELECT person, addresses, transports, conversations, messages FROM people ORDER BY person`),
		`[{"person":"+27820000002","addresses":["+27820000002"],"transports":["sms"],"conversations":1,"messages":2},`+
			`{"person":"alice","addresses":["+27820000001","alice@example.org"],"transports":["sms","ussd","xmpp"],"conversations":5,"messages":12}]`)
	check("a person's conversations across transports", queryRows(t, d, `SELECT transport, app_addr, messages FROM person_conversations
		WHERE person = 'alice' ORDER BY started`),
		`[{"transport":"sms","app_addr":"1234","messages":3},{"transport":"sms","app_addr":"5678","messages":1},`+
			`{"transport":"ussd","app_addr":"*120*1#","messages":4},{"transport":"ussd","app_addr":"*120*1#","messages":2},`+
			`{"transport":"xmpp","app_addr":"bot@example.org","messages":2}]`)
	// The identity row for the JID is limited to xmpp: the same string on
	// another transport would not be alice.
	if rows := queryRows(t, d, `SELECT count(*) AS n FROM identities WHERE transport IS NULL`); fmt.Sprint(rows[0]["n"]) != "1" {
		t.Errorf("identities: %v", rows)
	}
	var table bytes.Buffer
	if _, err := d.Run(context.Background(), "SELECT transport, count(*) AS conversations FROM conversations GROUP BY ALL ORDER BY ALL", query.FormatTable, &table, nil, 0); err != nil {
		t.Fatal(err)
	}
	if want := "transport | conversations\n----------+--------------\nsms       | 3\nussd      | 2\nxmpp      | 1\n(3 rows)\n"; table.String() != want {
		t.Errorf("table:\n%s\nwant\n%s", table.String(), want)
	}
}
