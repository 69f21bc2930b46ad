package sendapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/vumi-kafka/vumi/internal/metrics"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
	"github.com/vumi-kafka/vumi/topology"
)

// TestOnSendWakesAndReadsLocally runs the API's goka graph on goka's
// tester (one partition, held by this processor): a send request wakes
// the request waiting for its record as soon as the record is in the
// processor's table, the record is then read from that table (no view
// started), and a redelivered request wakes its waiter too without
// sending the message again.
func TestOnSendWakesAndReadsLocally(t *testing.T) {
	codecs := schemas.NewCodecs(schematest.New())
	if err := codecs.UserMessage.Register(context.Background(), "api.sends", "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &API{
		Base: &worker.Base{Name: "api", Log: log, Deps: &topology.Deps{Codecs: codecs, Logger: log},
			Metrics: metrics.NewManager("vumi.api.", metrics.Options{Logger: log})},
		cfg: &Config{Transports: []string{"sms"}}, sends: "api.sends", group: "api", partitions: 1,
		waiting: map[string]chan struct{}{},
	}
	tt := tester.New(t)
	p, err := goka.NewProcessor(nil, a.graph(a.group), goka.WithTester(tt), goka.WithRebalanceCallback(a.rebalanced))
	if err != nil {
		t.Fatal(err)
	}
	a.proc = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("processor did not stop")
		}
	})
	readyCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := p.WaitForReadyContext(readyCtx); err != nil {
		t.Fatal(err)
	}
	out := tt.NewQueueTracker("sms.outbound")

	m := schemas.NewUserMessage()
	m.ToAddr, m.TransportName = schemas.String("+27820000001"), schemas.String("sms")
	raw, err := codecs.UserMessage.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	written, stopWaiting := a.awaitRecord(m.MessageID)
	defer stopWaiting()
	tt.Consume("api.sends", m.MessageID, raw) // returns once processed
	select {
	case <-written:
	default:
		t.Fatal("the waiting request was not woken by onSend")
	}
	rec, err := a.lookup(m.MessageID)
	var r Record
	if err != nil || json.Unmarshal(rec, &r) != nil || r.MessageID != m.MessageID || r.Status != "submitted" {
		t.Fatalf("lookup after the send: %s, %v", rec, err)
	}
	if h := a.health(); h["status_view"] != "not started" || h["tables_recovered"] != true {
		t.Errorf("health %v: want the table recovered and no view", h)
	}
	if _, _, ok := out.Next(); !ok {
		t.Fatal("message not sent to sms.outbound")
	}

	// Redelivered (e.g. after a crash before the offset was committed):
	// not sent again, but its waiter is answered.
	again, stopAgain := a.awaitRecord(m.MessageID)
	defer stopAgain()
	tt.Consume("api.sends", m.MessageID, raw)
	select {
	case <-again:
	default:
		t.Fatal("a redelivered request did not wake its waiter")
	}
	if k, _, ok := out.Next(); ok {
		t.Errorf("redelivered request sent again (key %s)", k)
	}
	if rec, err := a.lookup("never-sent"); err != nil || rec != nil {
		t.Errorf("unknown id: %s, %v", rec, err)
	}
	if a.viewStarts.Load() != 0 {
		t.Error("a view was started by a processor holding every partition")
	}
}
