package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestHistoryNodeConsumer: a data engineer's consumer, written in
// JavaScript with kafkajs and @kafkajs/confluent-schema-registry (no
// project code), reads <name>.inbound, .outbound and .event and decodes
// every record through the schema registry. The npm packages are
// installed by scripts/install-test-deps.sh; without node or them the
// test fails.
func TestHistoryNodeConsumer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: it is needed to run the non-Go history consumer (install nodejs and npm, then scripts/install-test-deps.sh)")
	}
	dir, err := filepath.Abs("testdata/node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("npm packages missing in %s: run scripts/install-test-deps.sh (%v)", dir, err)
	}
	c := startCluster(t)
	in := inbound("+27761234567", "hello from a phone")
	in.HelperMetadata = schemas.Metadata{"tag": map[string]any{"tag": []any{"shortcode", "1234"}}}
	out := in.Reply("hello back", false)
	dr := schemas.DeliveryDelivered
	ev := &schemas.Event{EventID: schemas.GenerateID(), EventType: schemas.EventDeliveryReport, UserMessageID: out.MessageID,
		DeliveryStatus: &dr, Timestamp: schemas.Now(), TransportName: schemas.String("sms")}
	c.produceTo(t, "sms.inbound", in)
	c.produceTo(t, "sms.outbound", out)
	c.produceTo(t, "sms.event", ev)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "consume.js"), c.B.KafkaAddr(), c.B.RegistryURL(), "3", "sms.inbound", "sms.outbound", "sms.event")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node consumer: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	type line struct {
		Topic    string         `json:"topic"`
		Key      string         `json:"key"`
		SchemaID uint32         `json:"schema_id"`
		Value    map[string]any `json:"value"`
	}
	got := map[string]line{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("node output %q: %v", sc.Text(), err)
		}
		got[l.Topic] = l
	}
	for _, c := range []struct {
		topic, key string
		id         uint32
		fields     map[string]string
	}{
		{"sms.inbound", "+27761234567", c.Codecs.UserMessage.ID(), map[string]string{"message_id": in.MessageID, "content": "hello from a phone", "from_addr": "+27761234567", "helper_metadata": `{"tag":{"tag":["shortcode","1234"]}}`}},
		{"sms.outbound", "+27761234567", c.Codecs.UserMessage.ID(), map[string]string{"message_id": out.MessageID, "in_reply_to": in.MessageID, "session_event": "close", "content": "hello back"}},
		{"sms.event", out.MessageID, c.Codecs.Event.ID(), map[string]string{"event_id": ev.EventID, "event_type": "delivery_report", "delivery_status": "delivered", "user_message_id": out.MessageID}},
	} {
		l, ok := got[c.topic]
		if !ok {
			t.Errorf("%s: no record decoded; output:\n%s", c.topic, stdout.String())
			continue
		}
		if l.Key != c.key || l.SchemaID != c.id {
			t.Errorf("%s: key %q schema id %d, want %q and %d", c.topic, l.Key, l.SchemaID, c.key, c.id)
		}
		for k, want := range c.fields {
			if v := fmt.Sprint(l.Value[k]); v != want {
				t.Errorf("%s: %s = %s, want %s", c.topic, k, v, want)
			}
		}
		if ts, ok := l.Value["timestamp"].(float64); !ok || ts < 1e15 {
			t.Errorf("%s: timestamp %v is not Unix microseconds", c.topic, l.Value["timestamp"])
		}
	}
}
