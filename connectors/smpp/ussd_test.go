package smpp_test

import (
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/schemas"
)

func ussdMO(from, to, text string, op byte, tl ...pdu.TLV) smsc.MO {
	mo := smsc.MO{SourceAddr: from, DestAddr: to, Short: []byte(text)}
	mo.TLVs.SetUint8(pdu.TagUssdServiceOp, op)
	for _, x := range tl {
		mo.TLVs.Set(x.Tag, x.Value)
	}
	return mo
}

func reply(in *schemas.UserMessage, text string, cont bool) *schemas.UserMessage {
	r := in.Reply(text, cont)
	if cont {
		ev := schemas.SessionResume
		r.SessionEvent = &ev
	}
	return r
}

// TestUSSDSessionRoundTrip: Vumi's default processor. ussd_service_op and
// its_session_info map to session events both ways.
func TestUSSDSessionRoundTrip(t *testing.T) {
	c := startCluster(t)
	sim := startSMSC(t, smsc.Options{})
	w := c.watch(t)
	run(t, c, transportYAML("smpp_ussd", sim, ""))
	w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
	its := pdu.TLV{Tag: pdu.TagItsSessionInfo, Value: []byte{0x12, 0x34}}
	if err := inject(t, sim, ussdMO("27761234567", "*120#", "", 0x01, its)); err != nil {
		t.Fatal(err)
	}
	w.until(t, 30*time.Second, "session start", func(w *watcher) bool { return len(w.inbound) == 1 })
	w.mu.Lock()
	start := w.inbound[0]
	w.mu.Unlock()
	if start.Session() != schemas.SessionNew || *start.TransportType != "ussd" || start.TransportMetadata["session_info"] != "1234" || start.To() != "*120#" {
		t.Fatalf("session start %+v %v", start, start.TransportMetadata)
	}
	s := c.sender(t)
	s.send(t, reply(start, "1. Balance 2. Quit", true))
	subs := waitSubmitted(t, sim, 1, 30*time.Second)
	if subs[0].TLVs["0501"] != "02" || subs[0].TLVs["1383"] != "1234" || subs[0].DestAddr != "27761234567" {
		t.Fatalf("continue: tlvs %v to %s", subs[0].TLVs, subs[0].DestAddr)
	}
	if err := inject(t, sim, ussdMO("27761234567", "*120#", "2", 0x12, its)); err != nil {
		t.Fatal(err)
	}
	w.until(t, 30*time.Second, "resume", func(w *watcher) bool { return len(w.inbound) == 2 })
	w.mu.Lock()
	resume := w.inbound[1]
	w.mu.Unlock()
	if resume.Session() != schemas.SessionResume || resume.Text() != "2" {
		t.Fatalf("resume %+v", resume)
	}
	s.send(t, reply(resume, "Bye", false))
	subs = waitSubmitted(t, sim, 2, 30*time.Second)
	if subs[1].TLVs["1383"] != "1235" {
		t.Fatalf("close: its_session_info %v, want the end bit set", subs[1].TLVs)
	}
	// The user hangs up: the end bit closes the session.
	if err := inject(t, sim, ussdMO("27761234567", "*120#", "", 0x12, pdu.TLV{Tag: pdu.TagItsSessionInfo, Value: []byte{0x12, 0x35}})); err != nil {
		t.Fatal(err)
	}
	w.until(t, 30*time.Second, "close", func(w *watcher) bool { return len(w.inbound) == 3 })
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inbound[2].Session() != schemas.SessionClose {
		t.Fatalf("close %+v", w.inbound[2])
	}
}

// TestUSSDVendorProcessors: 6D keeps the dialled code for the session and
// uses its vendor service ops; Mica identifies sessions by
// user_message_reference.
func TestUSSDVendorProcessors(t *testing.T) {
	cases := []struct {
		proc    string
		session pdu.TLV
		wantTLV string // tag whose value the reply carries
		wantVal string
	}{
		{"sixdee", pdu.TLV{Tag: pdu.TagItsSessionInfo, Value: []byte{0x00, 0x2a}}, "1383", "002a"},
		{"mica", pdu.TLV{Tag: pdu.TagUserMessageReference, Value: []byte{0x00, 0x07}}, "0204", "0007"},
	}
	for _, tc := range cases {
		t.Run(tc.proc, func(t *testing.T) {
			c := startCluster(t)
			sim := startSMSC(t, smsc.Options{})
			w := c.watch(t)
			run(t, c, transportYAML("smpp_ussd", sim, "submit_sm_processor_class: "+tc.proc+"\nsm_processor_class: "+tc.proc+"\n"))
			w.until(t, 30*time.Second, "bound", func(w *watcher) bool { return w.hasStatus("bound") })
			if err := inject(t, sim, ussdMO("27761234567", "", "*120*1#", 0x01, tc.session)); err != nil {
				t.Fatal(err)
			}
			if err := inject(t, sim, ussdMO("27761234567", "", "yes", 0x12, tc.session)); err != nil {
				t.Fatal(err)
			}
			w.until(t, 30*time.Second, "new and resume", func(w *watcher) bool { return len(w.inbound) == 2 })
			w.mu.Lock()
			first, second := w.inbound[0], w.inbound[1]
			w.mu.Unlock()
			if first.Session() != schemas.SessionNew || first.To() != "*120*1#" || first.Content != nil {
				t.Fatalf("new: %+v", first)
			}
			if second.Session() != schemas.SessionResume || second.To() != "*120*1#" || second.Text() != "yes" {
				t.Fatalf("resume: to %q text %q event %q", second.To(), second.Text(), second.Session())
			}
			c.sender(t).send(t, reply(second, "done", false))
			subs := waitSubmitted(t, sim, 1, 30*time.Second)
			if subs[0].TLVs["0501"] != "17" || subs[0].TLVs[tc.wantTLV][:len(tc.wantVal)-1] != tc.wantVal[:len(tc.wantVal)-1] {
				t.Fatalf("close reply tlvs %v", subs[0].TLVs)
			}
			// The user aborts a new session: close with the remembered code.
			if err := inject(t, sim, ussdMO("27761234567", "", "*120*1#", 0x01, tc.session)); err != nil {
				t.Fatal(err)
			}
			if err := inject(t, sim, ussdMO("27761234567", "", "", 0x81, tc.session)); err != nil {
				t.Fatal(err)
			}
			w.until(t, 30*time.Second, "abort", func(w *watcher) bool { return len(w.inbound) == 4 })
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.inbound[3].Session() != schemas.SessionClose || w.inbound[3].To() != "*120*1#" {
				t.Fatalf("abort: %+v", w.inbound[3])
			}
		})
	}
}
