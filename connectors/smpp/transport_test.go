package smpp_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/schemas"
)

// TestSubmitAckAndDeliveryReport: messages are submitted, acked with the
// SMSC's message id, and their delivery receipts come back as delivery
// reports carrying the SMSC's status.
func TestSubmitAckAndDeliveryReport(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{Credentials: map[string]string{"esme": "secret"}})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, `
submit_sm_processor_config:
  registered_delivery:
    delivery_receipt: SMSC_DELIVERY_RECEIPT_REQUESTED
`))
	msgs := []*schemas.UserMessage{outbound("27761234567", "hello"), outbound("27761234568", "world €"), outbound("27761234569", "third")}
	c.sender(t).send(t, msgs...)
	w.until(t, 60*time.Second, "acks and delivery reports", func(w *watcher) bool {
		return len(w.eventsOf(schemas.EventAck)) == 3 && len(w.eventsOf(schemas.EventDeliveryReport)) == 3 &&
			w.hasStatus("starting") && w.hasStatus("binding") && w.hasStatus("bound")
	})
	subs := sim.Submitted()
	byText := map[string]smsc.Submitted{}
	for _, s := range subs {
		byText[string(s.Short)] = s
	}
	acks, drs := w.eventsOf(schemas.EventAck), w.eventsOf(schemas.EventDeliveryReport)
	for _, m := range msgs {
		ack := acks[m.MessageID]
		found := false
		for _, s := range subs {
			if ack.SentMessageID != nil && *ack.SentMessageID == s.MessageID && s.DestAddr == m.To() {
				found = true
			}
		}
		if !found {
			t.Errorf("ack for %s has sent_message_id %v, not an id the SMSC gave", m.MessageID, ack.SentMessageID)
		}
		dr := drs[m.MessageID]
		if *dr.DeliveryStatus != schemas.DeliveryDelivered || dr.TransportMetadata["smpp_delivery_status"] != "DELIVRD" {
			t.Errorf("delivery report %+v", dr)
		}
	}
	if s, ok := byText["world \x1be"]; !ok || s.DataCoding != 0 || s.Registered != 1 {
		t.Errorf("GSM 03.38 encoding with the euro escape not on the wire: %+v", subs)
	}
}

// TestBindFailures: a refused bind (wrong password, ESME_RBINDFAIL) and a
// bind that is never answered give their status events and retries; once
// the SMSC accepts, the transport binds and sends what was queued.
func TestBindFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(s *smsc.SMSC)
		fix    func(s *smsc.SMSC)
		status string
		yaml   string
	}{
		{"wrong password", nil, nil, "bind_failed", "password: wrong\n"},
		{"bind refused", func(s *smsc.SMSC) { s.RejectBinds(pdu.ESME_RBINDFAIL) }, func(s *smsc.SMSC) { s.RejectBinds(pdu.ESME_ROK) }, "bind_failed", ""},
		{"bind timeout", func(s *smsc.SMSC) { s.Delay(3 * time.Second) }, func(s *smsc.SMSC) { s.Delay(0) }, "bind_timeout", "smpp_bind_timeout: 1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t)
			sim := startSMSC(t, smsc.Options{Credentials: map[string]string{"esme": "secret"}})
			if tc.setup != nil {
				tc.setup(sim)
			}
			w := c.watch(t)
			yaml := transportYAML("smpp_tx", sim, "")
			if strings.Contains(tc.yaml, "password") {
				yaml = strings.Replace(yaml, "password: secret\n", tc.yaml, 1)
			} else if tc.yaml != "" {
				yaml += "    " + tc.yaml
			}
			run(t, c, yaml)
			m := outbound("27761234567", "queued while unbound")
			c.sender(t).send(t, m)
			w.until(t, 30*time.Second, tc.status+" twice (a retry)", func(w *watcher) bool { return w.countStatus(tc.status) >= 2 })
			if tc.fix == nil {
				if n := len(sim.Submitted()); n != 0 {
					t.Fatalf("%d messages sent without a bind", n)
				}
				return
			}
			tc.fix(sim)
			w.until(t, 30*time.Second, "bound and the queued message acked", func(w *watcher) bool {
				return w.hasStatus("bound") && w.eventsOf(schemas.EventAck)[m.MessageID] != nil
			})
		})
	}
}

// TestEnquireLinkTimeout: an SMSC that stops answering enquire_link is
// disconnected and rebound.
func TestEnquireLinkTimeout(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, "smpp_enquire_link_interval: 1\n"))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
	sim.IgnoreEnquireLink(true)
	w.until(t, 30*time.Second, "connection_lost", func(w *watcher) bool { return w.hasStatus("connection_lost") })
	sim.IgnoreEnquireLink(false)
	w.until(t, 30*time.Second, "bound again", func(w *watcher) bool { return w.countStatus("bound") >= 2 })
	if sim.Stats().Binds < 2 {
		t.Fatalf("binds %d", sim.Stats().Binds)
	}
}

// TestReconnectMidStreamLosesNothing drops the connection twice while
// messages flow: every message is submitted and acked.
func TestReconnectMidStreamLosesNothing(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, ""))
	s := c.sender(t)
	const n = 300
	var msgs []*schemas.UserMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, outbound(fmt.Sprintf("2776%07d", i), fmt.Sprintf("msg %d", i)))
	}
	s.send(t, msgs[:100]...)
	waitSubmitted(t, sim, 30, 30*time.Second)
	sim.Drop()
	s.send(t, msgs[100:200]...)
	waitSubmitted(t, sim, 150, 30*time.Second)
	sim.Drop()
	s.send(t, msgs[200:]...)
	w.until(t, 60*time.Second, "every message acked", func(w *watcher) bool { return len(w.eventsOf(schemas.EventAck)) >= n })
	got := map[string]bool{}
	for _, sub := range sim.Submitted() {
		got[string(sub.Short)] = true
	}
	for _, m := range msgs {
		if !got[m.Text()] {
			t.Errorf("%q never reached the SMSC", m.Text())
		}
	}
	if w.countStatus("connection_lost") < 2 {
		t.Errorf("connection_lost %d times", w.countStatus("connection_lost"))
	}
}

// TestThrottling: ESME_RTHROTTLED makes the transport back off and retry
// the same message; throttled and throttled_end are published.
func TestThrottling(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, "throttle_delay: 0.05\n"))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
	sim.Throttle(5)
	msgs := []*schemas.UserMessage{outbound("27761234567", "one"), outbound("27761234568", "two")}
	c.sender(t).send(t, msgs...)
	w.until(t, 30*time.Second, "acks after throttling", func(w *watcher) bool {
		return len(w.eventsOf(schemas.EventAck)) == 2 && w.hasStatus("throttled") && w.hasStatus("throttled_end")
	})
	if n := len(sim.Submitted()); n != 2 {
		t.Fatalf("SMSC accepted %d messages, want 2 (retries must not duplicate)", n)
	}
	if len(w.eventsOf(schemas.EventNack)) != 0 {
		t.Fatal("throttled messages were nacked")
	}
}

// TestMtTps: with mt_tps the transport publishes throttled when it holds
// messages back.
func TestMtTps(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, "mt_tps: 5\n"))
	var msgs []*schemas.UserMessage
	for i := 0; i < 12; i++ {
		msgs = append(msgs, outbound(fmt.Sprintf("2776%07d", i), "tps"))
	}
	c.sender(t).send(t, msgs...)
	w.until(t, 30*time.Second, "acks, throttled and throttled_end", func(w *watcher) bool {
		return len(w.eventsOf(schemas.EventAck)) == 12 && w.hasStatus("throttled") && w.hasStatus("throttled_end")
	})
	subs := sim.Submitted()
	// No one-second span holds more than mt_tps submissions.
	for i := range subs {
		n := 0
		for j := i; j < len(subs) && subs[j].Received.Sub(subs[i].Received) < 990*time.Millisecond; j++ {
			n++
		}
		if n > 5 {
			t.Fatalf("%d submissions within one second, mt_tps is 5", n)
		}
	}
}

// TestWindow: no more than window_size submit_sm wait for their response.
func TestWindow(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	sim.Delay(100 * time.Millisecond)
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, "window_size: 4\namqp_prefetch_count: 40\n"))
	var msgs []*schemas.UserMessage
	for i := 0; i < 40; i++ {
		msgs = append(msgs, outbound(fmt.Sprintf("2776%07d", i), "w"))
	}
	c.sender(t).send(t, msgs...)
	w.until(t, 60*time.Second, "acks", func(w *watcher) bool { return len(w.eventsOf(schemas.EventAck)) == 40 })
	if m := sim.Stats().MaxInFlight; m > 4 || m < 2 {
		t.Fatalf("max submit_sm in flight %d, window is 4", m)
	}
}

// TestNack: an error status becomes a nack with the status as reason.
func TestNack(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	sim.SubmitStatus(pdu.ESME_RINVDSTADR)
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, ""))
	m := outbound("27761234567", "nope")
	c.sender(t).send(t, m)
	w.until(t, 30*time.Second, "nack", func(w *watcher) bool { return w.eventsOf(schemas.EventNack)[m.MessageID] != nil })
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.eventsOf(schemas.EventNack)[m.MessageID].NackReason; r == nil || *r != "ESME_RINVDSTADR" {
		t.Fatalf("nack reason %v", r)
	}
}

// TestTxRxPair: bind_type tx_rx holds a transmitter and a receiver bind;
// messages go out on the first, and receipts and MO messages come in on
// the second.
func TestTxRxPair(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{ReceiptTLVs: true})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_pair", sim, "bind_type: tx_rx\nsubmit_sm_processor_config:\n  registered_delivery: {delivery_receipt: 1}\n"))
	w.until(t, 30*time.Second, "two binds", func(w *watcher) bool { return w.countStatus("bound") >= 2 })
	m := outbound("27761234567", "pair")
	c.sender(t).send(t, m)
	if err := inject(t, sim, smsc.MO{SourceAddr: "27760000001", DestAddr: "1234", Short: []byte("mo")}); err != nil {
		t.Fatal(err)
	}
	w.until(t, 30*time.Second, "ack, delivery report and inbound", func(w *watcher) bool {
		return w.eventsOf(schemas.EventAck)[m.MessageID] != nil && w.eventsOf(schemas.EventDeliveryReport)[m.MessageID] != nil && len(w.inbound) == 1
	})
	if st := sim.Stats(); st.Bound != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDeliveryReportAfterRestart: the id table survives a restart of the
// transport, so a receipt that arrives afterwards still finds its message.
func TestDeliveryReportAfterRestart(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{ReceiptDelay: 2 * time.Second})
	w := c.watch(t)
	yaml := transportYAML("smpp_tx", sim, "submit_sm_processor_config:\n  registered_delivery: {delivery_receipt: 1}\n")
	d := run(t, c, yaml)
	m := outbound("27761234567", "restart")
	c.sender(t).send(t, m)
	w.until(t, 30*time.Second, "ack", func(w *watcher) bool { return w.eventsOf(schemas.EventAck)[m.MessageID] != nil })
	d.stop()
	run(t, c, yaml)
	w.until(t, 60*time.Second, "delivery report after the restart", func(w *watcher) bool {
		return w.eventsOf(schemas.EventDeliveryReport)[m.MessageID] != nil
	})
	if n := len(sim.Submitted()); n != 1 {
		t.Fatalf("submitted %d times", n)
	}
}
