//go:build cgo

package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kvtopic"
	"github.com/vumi-kafka/vumi/internal/query"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
)

func outbound(id, account, from, to, content string, at time.Time) *schemas.UserMessage {
	m := &schemas.UserMessage{MessageID: id, Timestamp: at, FromAddr: schemas.String(from), ToAddr: schemas.String(to),
		Content: schemas.String(content), TransportName: schemas.String("dn"), TransportType: schemas.String("sms")}
	if account != "" {
		// As an application with the accounts middleware publishes it.
		middleware.SetAccount(&m.HelperMetadata, account)
	}
	return m
}

// TestAccountsPipeline: the accounts middleware on a transport checks
// outbound messages (keeping the account an application stamped, or
// linking unstamped ones by application address): an inactive account's
// message goes to the failures topic and not to the outside world, an
// active one's is sent. The transport stamps the inbound messages it
// publishes, and writes an inactive account's inbound to failures itself.
// Deactivating and activating through the accounts topic takes effect in
// the running worker; an application rejects an inactive account's
// inbound. The archiver keeps the account, and the export of one account
// by date round-trips through each format.
func TestAccountsPipeline(t *testing.T) {
	c := startCluster(t)
	c.external = []string{"dn.inbound", "dn.event"}
	dir := filepath.Join(t.TempDir(), "archive")
	run(t, c, fmt.Sprintf(`
  - name: dn
    kind: devnull
    transport_name: dn
    ack_rate: 1
    failure_rate: 0
    reply_rate: 1
    middleware:
      - acc: accounts
    acc:
      accounts: {acme: active, dormant: inactive}
      rules:
        - {app_addr: "1111", account: acme}
        - {app_addr: "2222", account: dormant}
        - {app_addr: "3333", account: dormant}
  - name: echo
    kind: echo
    transport_name: sms
    middleware:
      - acc: accounts
    acc:
      accounts: {smsco: inactive}
      rules:
        - {transport_name: sms, account: smsco}
  - name: archive
    kind: archiver
    directory: %s
    transports: [dn]
    roll_interval: 100ms
`, dir))
	day1 := time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	day3 := day2.Add(24 * time.Hour)
	events := c.Consumer(t, "dn.event")
	fails := c.Consumer(t, "dn.failures")

	c.produceOutbound(t, "dn.outbound",
		outbound("a1", "acme", "1111", "+27820000001", "acme day 1", day1),
		outbound("d1", "", "2222", "+27820000002", "dormant day 1", day1),
		outbound("a2", "acme", "1111", "+27820000003", "acme day 2, \"quoted\", with a comma", day2),
		outbound("a3", "acme", "1111", "+27820000001", "acme day 3", day3),
		// Sent for acme; the end user's reply to 3333 is dormant's.
		outbound("x1", "acme", "3333", "+27820000004", "acme from 3333", day3))

	acked := func(n int) map[string]bool {
		got := c.Collect(t, events, 60*time.Second, func(got []any) bool { return len(got) >= n })
		ids := map[string]bool{}
		for _, v := range got {
			e := v.(*schemas.Event)
			if e.EventType == schemas.EventAck {
				ids[e.UserMessageID] = true
			}
		}
		return ids
	}
	// devnull acks and reports delivery: two events per sent message.
	if ids := acked(8); !ids["a1"] || !ids["a2"] || !ids["a3"] || !ids["x1"] || ids["d1"] {
		t.Fatalf("acked %v, want a1, a2, a3, x1 and not d1", ids)
	}
	got := c.Collect(t, fails, 60*time.Second, func(got []any) bool { return len(got) >= 2 })
	reasons := map[string]*schemas.Failure{}
	for _, v := range got {
		f := v.(*schemas.Failure)
		reasons[f.Reason] = f
	}
	f := reasons[`middleware acc consume_outbound: account "dormant" rejected: account is inactive`]
	if f == nil || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent || f.Message == nil || !strings.Contains(*f.Message, `"d1"`) {
		t.Errorf("failure of d1: %v", reasons)
	}
	f = reasons[`middleware acc publish_inbound: account "dormant" rejected: account is inactive`]
	if f == nil || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent || f.Message == nil || !strings.Contains(*f.Message, `3333`) || !strings.Contains(*f.Message, `+27820000004`) {
		t.Errorf("failure of the reply to x1: %v", reasons)
	}

	// Flip the states through the accounts topic, as 'vumi accounts' does.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := kvtopic.Open(ctx, middleware.DefaultAccountsTopic, []kgo.Opt{kgo.SeedBrokers(c.B.KafkaAddr())}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	set := func(name, state, reason string) {
		b, _ := json.Marshal(middleware.AccountState{State: state, Reason: reason, UpdatedAt: time.Now().UTC()})
		if err := kv.Put(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	set("dormant", middleware.AccountActive, "")
	set("acme", middleware.AccountInactive, "unpaid invoice")
	// The running middleware follows the topic: retry until it applies.
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		c.produceOutbound(t, "dn.outbound", outbound(fmt.Sprintf("d-again-%d", i), "", "2222", "+27820000002", "dormant again", day3))
		ids := acked(2)
		if ids[fmt.Sprintf("d-again-%d", i)] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("activating dormant did not take effect within 60s")
		}
	}
	c.produceOutbound(t, "dn.outbound", outbound("a-late", "", "1111", "+27820000001", "acme while inactive", day3))
	got = c.Collect(t, fails, 60*time.Second, func(got []any) bool {
		for _, v := range got {
			if f := v.(*schemas.Failure); f.Message != nil && strings.Contains(*f.Message, `"a-late"`) {
				return true
			}
		}
		return false
	})
	f = got[len(got)-1].(*schemas.Failure)
	if !strings.Contains(f.Reason, `account "acme" rejected: account is inactive (unpaid invoice)`) {
		t.Errorf("failure of a-late: %s", f.Reason)
	}

	// The application rejects inbound messages of its inactive account.
	smsFails := c.Consumer(t, "sms.failures")
	c.produceInbound(t, inbound("+27820000009", "hello"))
	got = c.Collect(t, smsFails, 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if f := got[0].(*schemas.Failure); !strings.Contains(f.Reason, `middleware acc consume_inbound: account "smsco" rejected: account is inactive`) {
		t.Errorf("inbound failure: %s", mustJSON(t, f))
	}

	// The archive has the accounts: stamped upstream (outbound) and by
	// the transport (the inbound replies it published).
	waitQuery(t, dir, `SELECT count(*) FILTER (WHERE kind = 'inbound' AND account = 'acme') = 3
		AND count(*) FILTER (WHERE kind = 'inbound' AND account = 'dormant') >= 1
		AND count(*) FILTER (WHERE kind = 'outbound' AND message_id = 'a-late') = 1 AS ok FROM messages`)
	d, err := query.Open(context.Background(), query.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows := queryRows(t, d, `SELECT kind, to_addr, account FROM messages WHERE account = 'acme' ORDER BY kind, message_id`)
	if b, _ := json.Marshal(rows); string(b) != `[{"account":"acme","kind":"inbound","to_addr":"1111"},{"account":"acme","kind":"inbound","to_addr":"1111"},{"account":"acme","kind":"inbound","to_addr":"1111"},`+
		`{"account":"acme","kind":"outbound","to_addr":"+27820000001"},{"account":"acme","kind":"outbound","to_addr":"+27820000003"},{"account":"acme","kind":"outbound","to_addr":"+27820000001"},{"account":"acme","kind":"outbound","to_addr":"+27820000004"}]` {
		t.Errorf("archived acme messages: %s", b)
	}
	if rows := queryRows(t, d, `SELECT count(*) AS n FROM events WHERE account = 'acme'`); fmt.Sprint(rows[0]["n"]) != "8" {
		t.Errorf("events of acme (through their messages): %v", rows)
	}

	// Export acme's messages of days 1 and 2 in each format, read each
	// file back and compare with what was sent.
	want := `[{"account":"acme","content":"acme day 1","kind":"outbound","message_id":"a1","timestamp":"2026-01-10T10:00:00Z","to_addr":"+27820000001"},` +
		`{"account":"acme","content":"acme day 2, \"quoted\", with a comma","kind":"outbound","message_id":"a2","timestamp":"2026-01-11T10:00:00Z","to_addr":"+27820000003"}]`
	reader := map[string]string{
		query.ExportParquet: "read_parquet(%s)",
		query.ExportCSV:     "read_csv(%s, header = true, types = {'timestamp': 'TIMESTAMPTZ'})",
		query.ExportJSON:    "read_json(%s, format = 'newline_delimited')",
	}
	for _, format := range []string{query.ExportParquet, query.ExportCSV, query.ExportJSON} {
		path := filepath.Join(t.TempDir(), "acme."+format)
		n, err := d.Export(context.Background(), query.ExportOptions{Account: "acme", From: day1, To: day2, Format: format}, path)
		if err != nil || n != 2 {
			t.Fatalf("%s: export %d rows: %v", format, n, err)
		}
		db, err := sql.Open("duckdb", "")
		if err != nil {
			t.Fatal(err)
		}
		rs, err := db.Query(fmt.Sprintf(`SET TimeZone = 'UTC'; SELECT account, content, kind, message_id, timestamp::TIMESTAMPTZ, to_addr FROM `+reader[format]+` ORDER BY message_id`, "'"+path+"'"))
		if err != nil {
			t.Fatalf("%s: read back: %v", format, err)
		}
		var back []map[string]string
		for rs.Next() {
			var acc, content, kind, id, to string
			var ts time.Time
			if err := rs.Scan(&acc, &content, &kind, &id, &ts, &to); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			back = append(back, map[string]string{"account": acc, "content": content, "kind": kind, "message_id": id, "timestamp": ts.UTC().Format(time.RFC3339), "to_addr": to})
		}
		rs.Close()
		db.Close()
		sort.Slice(back, func(i, j int) bool { return back[i]["message_id"] < back[j]["message_id"] })
		if b, _ := json.Marshal(back); string(b) != want {
			t.Errorf("%s round trip:\n got %s\nwant %s", format, b, want)
		}
	}
}
