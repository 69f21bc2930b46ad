package smpp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/schemas"
)

func inject(t *testing.T, sim *smsc.SMSC, mo smsc.MO) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return sim.Inject(ctx, mo)
}

// TestInbound: deliver_sm and data_sm in several data codings become
// inbound messages; text that cannot be decoded is refused with
// deliver_sm_decoding_error.
func TestInbound(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_rx", sim, `
deliver_sm_decoding_error: ESME_RSYSERR
sm_processor_config:
  data_coding_overrides:
    OCTET_UNSPECIFIED: utf-8
`))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
	gsm, _ := coding.GSM{}.Encode("hi € there")
	ucs2, _ := coding.Default(coding.UCS2).Encode("Привет 😀")
	cases := []struct {
		mo   smsc.MO
		want string
	}{
		{smsc.MO{SourceAddr: "27761110001", DestAddr: "1234", Short: gsm}, "hi € there"},
		{smsc.MO{SourceAddr: "27761110002", DestAddr: "1234", DataCoding: 8, Short: ucs2}, "Привет 😀"},
		{smsc.MO{SourceAddr: "27761110003", DestAddr: "1234", DataCoding: 3, Short: []byte{'c', 'a', 'f', 0xe9}}, "café"},
		{smsc.MO{SourceAddr: "27761110004", DestAddr: "1234", DataCoding: 2, Short: []byte("ünïcode")}, "ünïcode"},
		{smsc.MO{SourceAddr: "27761110005", DestAddr: "1234", UseDataSM: true, Short: []byte("via data sm")}, "via data sm"},
		{smsc.MO{SourceAddr: "27761110006", DestAddr: "1234", TLVs: pdu.TLVs{{Tag: pdu.TagMessagePayload, Value: []byte(strings.Repeat("p", 300))}}}, strings.Repeat("p", 300)},
	}
	for _, tc := range cases {
		if err := inject(t, sim, tc.mo); err != nil {
			t.Fatalf("inject %s: %v", tc.mo.SourceAddr, err)
		}
	}
	// ASCII with a byte above 0x7f cannot be decoded.
	err := inject(t, sim, smsc.MO{SourceAddr: "27761110009", DestAddr: "1234", DataCoding: 1, Short: []byte{0xff}})
	if !errors.Is(err, pdu.ESME_RSYSERR) {
		t.Fatalf("undecodable text answered %v, want ESME_RSYSERR", err)
	}
	w.until(t, 30*time.Second, "inbound messages", func(w *watcher) bool { return len(w.inbound) >= len(cases) })
	w.mu.Lock()
	defer w.mu.Unlock()
	byFrom := map[string]*schemas.UserMessage{}
	for _, m := range w.inbound {
		byFrom[m.From()] = m
	}
	for _, tc := range cases {
		m := byFrom[tc.mo.SourceAddr]
		if m == nil || m.Text() != tc.want || m.To() != "1234" || *m.TransportType != "sms" || m.Transport() != "sms" {
			t.Errorf("from %s: got %+v, want %q", tc.mo.SourceAddr, m, tc.want)
		}
	}
}

// TestMultipartInbound: parts (UDH with 8- and 16-bit references, SAR
// TLVs) arriving on the binds of two transport instances in turn are
// reassembled into one message each.
func TestMultipartInbound(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_a", sim, "")+transportYAML("smpp_b", sim, ""))
	w.until(t, 30*time.Second, "two binds", func(w *watcher) bool { return w.countStatus("bound") >= 2 })
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 8)
	texts := map[string]string{}
	for i, mode := range []string{"udh", "udh16", "sar"} {
		from := fmt.Sprintf("2776222000%d", i)
		texts[from] = mode + ": " + long
		parts, err := coding.Split(coding.GSM{}, texts[from], 153)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) < 3 {
			t.Fatalf("%d parts", len(parts))
		}
		for seq, part := range parts {
			mo := smsc.MO{SourceAddr: from, DestAddr: "1234"}
			cc := coding.Concat{Ref: uint16(0x100*i + 7), Total: len(parts), Seq: seq + 1, Ref16: mode == "udh16"}
			if mode == "sar" {
				mo.Short = part
				mo.TLVs.SetUint16(pdu.TagSarMsgRefNum, cc.Ref)
				mo.TLVs.SetUint8(pdu.TagSarTotalSegments, byte(cc.Total))
				mo.TLVs.SetUint8(pdu.TagSarSegmentSeqnum, byte(cc.Seq))
			} else {
				mo.ESMClass = pdu.ESMClassUDHI
				if mode == "udh16" {
					cc.Ref = 0x1234
				} else {
					cc.Ref &= 0xff
				}
				mo.Short = append(coding.AppendUDH(nil, cc), part...)
			}
			// Last part first for one of them: order does not matter.
			if err := inject(t, sim, mo); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.until(t, 30*time.Second, "three reassembled messages", func(w *watcher) bool { return len(w.inbound) >= 3 })
	time.Sleep(6 * time.Second) // the other instance's rechecks must not publish again
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.inbound) != 3 {
		t.Fatalf("%d inbound messages, want 3", len(w.inbound))
	}
	for _, m := range w.inbound {
		if m.Text() != texts[m.From()] {
			t.Errorf("from %s: %q", m.From(), m.Text())
		}
	}
}

// TestMultipartOutbound: long messages are split with UDH or SAR and the
// parts join to the original text.
func TestMultipartOutbound(t *testing.T) {
	long := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 6) + "€{}"
	cases := []struct {
		mode, dc string
	}{{"multipart_udh", "SMSC_DEFAULT_ALPHABET"}, {"multipart_sar", "UCS2"}, {"message_payload", "LATIN_1"}}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			c := startCluster(t)
			sim := startSMSC(t, smsc.Options{})
			w := c.watch(t)
			text := long
			if tc.dc == "LATIN_1" {
				text = strings.ReplaceAll(long, "€", "é")
			}
			run(t, c, transportYAML("smpp_tx", sim, fmt.Sprintf("submit_sm_processor_config:\n  multipart_handling: %s\n  data_coding: %s\n", tc.mode, tc.dc)))
			m := outbound("27761234567", text)
			c.sender(t).send(t, m)
			w.until(t, 30*time.Second, "ack", func(w *watcher) bool { return w.eventsOf(schemas.EventAck)[m.MessageID] != nil })
			subs := sim.Submitted()
			dc, _ := coding.ParseDataCoding(tc.dc)
			var joined []byte
			for i, s := range subs {
				data := s.Short
				switch tc.mode {
				case "multipart_udh":
					cc, rest, err := coding.ParseUDH(data)
					if err != nil || cc == nil || cc.Seq != i+1 || cc.Total != len(subs) || s.ESMClass&pdu.ESMClassUDHI == 0 {
						t.Fatalf("part %d: udh %+v %v", i, cc, err)
					}
					data = rest
				case "multipart_sar":
					if s.TLVs["020f"] != fmt.Sprintf("%02x", i+1) || s.TLVs["020e"] != fmt.Sprintf("%02x", len(subs)) {
						t.Fatalf("part %d: sar tlvs %v", i, s.TLVs)
					}
				case "message_payload":
					if len(subs) != 1 || len(s.Short) != 0 {
						t.Fatalf("message_payload: %d PDUs, short_message %d", len(subs), len(s.Short))
					}
					data = hexBytes(t, s.TLVs["0424"])
				}
				if s.DataCoding != dc {
					t.Fatalf("data_coding %d, want %d", s.DataCoding, dc)
				}
				joined = append(joined, data...)
			}
			if tc.mode != "message_payload" && len(subs) < 2 {
				t.Fatalf("%d parts", len(subs))
			}
			got, err := coding.Default(dc).Decode(joined)
			if err != nil || got != text {
				t.Fatalf("joined parts %q, %v", got, err)
			}
		})
	}
}

// TestDeliveryReportsAcrossInstances: receipts arrive on the other
// instance's bind as often as on the sender's, and every one finds its
// message through the shared table.
func TestDeliveryReportsAcrossInstances(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{ReceiptsRoundRobin: true, ReceiptTLVs: true, ReceiptStatus: "UNDELIV", ReceiptDelay: 50 * time.Millisecond})
	w := c.watch(t)
	extra := "submit_sm_processor_config:\n  registered_delivery:\n    delivery_receipt: 1\n"
	run(t, c, transportYAML("smpp_a", sim, extra)+transportYAML("smpp_b", sim, extra))
	w.until(t, 30*time.Second, "two binds", func(w *watcher) bool { return w.countStatus("bound") >= 2 })
	var msgs []*schemas.UserMessage
	for i := 0; i < 40; i++ {
		msgs = append(msgs, outbound(fmt.Sprintf("2776%07d", i), "dr"))
	}
	c.sender(t).send(t, msgs...)
	w.until(t, 60*time.Second, "40 delivery reports", func(w *watcher) bool {
		return len(w.eventsOf(schemas.EventDeliveryReport)) == 40
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.eventsOf(schemas.EventDeliveryReport) {
		if *e.DeliveryStatus != schemas.DeliveryFailed || e.TransportMetadata["smpp_delivery_status"] != "UNDELIVERABLE" {
			t.Errorf("delivery report %s %v", *e.DeliveryStatus, e.TransportMetadata)
		}
	}
}

// TestNoResubmitAfterAck: a message id the SMSC already acknowledged is
// not submitted again when it is consumed again (a crash before the
// commit, a rebalance); its ack is published again.
func TestNoResubmitAfterAck(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_tx", sim, ""))
	m := outbound("27761234567", "once only")
	s := c.sender(t)
	s.send(t, m)
	w.until(t, 30*time.Second, "ack", func(w *watcher) bool { return len(w.eventsOf(schemas.EventAck)) == 1 })
	s.send(t, m)
	w.until(t, 30*time.Second, "second ack", func(w *watcher) bool { return len(w.events) == 2 })
	if n := len(sim.Submitted()); n != 1 {
		t.Fatalf("SMSC got the message %d times", n)
	}
}
