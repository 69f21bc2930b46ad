package smsc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
)

// esme is a minimal raw SMPP client for the simulator's own tests.
type esme struct {
	t  *testing.T
	c  net.Conn
	r  *pdu.Reader
	sq uint32
}

func dial(t *testing.T, s *SMSC) *esme {
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &esme{t: t, c: c, r: pdu.NewReader(c, 0)}
}

func (e *esme) call(p pdu.PDU) pdu.PDU {
	e.t.Helper()
	e.sq++
	p.Head().Seq = e.sq
	if _, err := e.c.Write(pdu.Encode(p)); err != nil {
		e.t.Fatal(err)
	}
	return e.read()
}

func (e *esme) read() pdu.PDU {
	e.t.Helper()
	_ = e.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := e.r.Read()
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestBindsAndSubmit(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{Credentials: map[string]string{"esme": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		id, pw string
		want   pdu.Status
	}{{"nobody", "pw", pdu.ESME_RINVSYSID}, {"esme", "nope", pdu.ESME_RINVPASWD}, {"esme", "pw", pdu.ESME_ROK}}
	for _, c := range cases {
		e := dial(t, s)
		if r := e.call(&pdu.Bind{Header: pdu.Header{ID: pdu.BindTransceiver}, SystemID: c.id, Password: c.pw}); r.Head().Status != c.want {
			t.Errorf("bind %s/%s: %s, want %s", c.id, c.pw, r.Head().Status, c.want)
		}
	}
	e := dial(t, s)
	if r := e.call(&pdu.SM{Header: pdu.Header{ID: pdu.SubmitSM}, DestinationAddr: "1"}); r.Head().Status != pdu.ESME_RINVBNDSTS {
		t.Fatalf("submit before bind: %s", r.Head().Status)
	}
	e.call(&pdu.Bind{Header: pdu.Header{ID: pdu.BindTransceiver}, SystemID: "esme", Password: "pw"})
	s.Throttle(1)
	if r := e.call(&pdu.SM{Header: pdu.Header{ID: pdu.SubmitSM}, DestinationAddr: "1"}); r.Head().Status != pdu.ESME_RTHROTTLED {
		t.Fatalf("throttle: %s", r.Head().Status)
	}
	r := e.call(&pdu.SM{Header: pdu.Header{ID: pdu.SubmitSM}, DestinationAddr: "27761234567", ShortMessage: []byte("hi"), RegisteredDelivery: 1})
	id := r.(*pdu.MessageIDResp).MessageID
	if r.Head().Status != pdu.ESME_ROK || id == "" {
		t.Fatalf("submit: %+v", r)
	}
	receipt := e.read().(*pdu.SM)
	if receipt.ESMClass != pdu.ESMClassDeliveryReceipt || !bytes.Contains(receipt.ShortMessage, []byte("id:"+id+" ")) {
		t.Fatalf("receipt %q", receipt.ShortMessage)
	}
	if subs := s.Submitted(); len(subs) != 1 || subs[0].Text != "hi" {
		t.Fatalf("submitted %+v", subs)
	}
	// Garbage is answered with generic_nack and the session goes on.
	if r := e.call(&pdu.Empty{Header: pdu.Header{ID: 0x0777}}); r.Head().ID != pdu.GenericNack || r.Head().Status != pdu.ESME_RINVCMDID {
		t.Fatalf("unknown command: %+v", r.Head())
	}
	s.IgnoreEnquireLink(false)
	if r := e.call(&pdu.Empty{Header: pdu.Header{ID: pdu.EnquireLink}}); r.Head().ID != pdu.EnquireLinkResp {
		t.Fatalf("enquire_link: %+v", r.Head())
	}
}

func TestHTTPAPI(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	cases := []struct {
		path, body string
		code       int
	}{
		{"/control", `{"throttle_next": 2, "delay_ms": 0, "reject_binds": "ESME_RBINDFAIL"}`, 200},
		{"/control", `{"reject_binds": "NOPE"}`, 400},
		{"/control", `{"bogus": 1}`, 400},
		{"/mo", `{"from": "1", "to": "2", "content": "no bind"}`, 502},
		{"/mo", `{"from": "1", "to": "2", "content": "x", "multipart": "carrier pigeon"}`, 400},
		{"/ussd", `{"from": "1", "to": "*1#", "session_event": "later"}`, 400},
	}
	for _, c := range cases {
		t.Run(c.path+c.body, func(t *testing.T) {
			if c.code == 502 {
				s.Drop()
			}
			if code, out := post(c.path, c.body); code != c.code {
				t.Fatalf("%d %v, want %d", code, out, c.code)
			}
		})
	}
	if s.throttleNext.Load() != 2 || pdu.Status(s.rejectBinds.Load()) != pdu.ESME_RBINDFAIL {
		t.Fatal("control not applied")
	}
	// A multipart MO over HTTP reaches a bound ESME as UDH parts.
	s.RejectBinds(pdu.ESME_ROK)
	e := dial(t, s)
	e.call(&pdu.Bind{Header: pdu.Header{ID: pdu.BindReceiver}, SystemID: "x"})
	done := make(chan int, 1)
	go func() {
		code, _ := post("/mo", `{"from": "27761234567", "to": "1234", "content": "`+string(bytes.Repeat([]byte("a"), 200))+`", "multipart": "udh"}`)
		done <- code
	}()
	for i := 0; i < 2; i++ {
		p := e.read().(*pdu.SM)
		if p.ESMClass&pdu.ESMClassUDHI == 0 || p.ShortMessage[5] != byte(i+1) {
			t.Fatalf("part %d: esm %x udh %x", i, p.ESMClass, p.ShortMessage[:6])
		}
		_, _ = e.c.Write(pdu.Encode(pdu.Response(p, pdu.ESME_ROK)))
	}
	if code := <-done; code != 200 {
		t.Fatalf("mo: %d", code)
	}
}

// With KeepSubmitted the simulator lists only the most recent messages and
// its memory stays bounded; Stats still counts every one.
func TestKeepSubmitted(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{KeepSubmitted: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := dial(t, s)
	e.call(&pdu.Bind{Header: pdu.Header{ID: pdu.BindTransceiver}, SystemID: "esme", Password: "pw"})
	for i := range 10 {
		r := e.call(&pdu.SM{Header: pdu.Header{ID: pdu.SubmitSM}, DestinationAddr: "1", ShortMessage: []byte(fmt.Sprint(i))})
		if r.Head().Status != pdu.ESME_ROK {
			t.Fatalf("submit %d: %s", i, r.Head().Status)
		}
	}
	subs := s.Submitted()
	if len(subs) != 3 || subs[0].Text != "7" || subs[2].Text != "9" {
		t.Fatalf("kept %+v, want the last 3", subs)
	}
	if st := s.Stats(); st.Submitted != 10 {
		t.Errorf("stats count %d submits, want 10", st.Submitted)
	}
	s.mu.Lock()
	n := len(s.submitted)
	s.mu.Unlock()
	if n >= 6 {
		t.Errorf("holds %d messages, bound 2 x 3", n)
	}
}

func TestConfigKeepMessages(t *testing.T) {
	c := &Config{HTTPEndpoint: "none"}
	if err := c.Validate(); err != nil || c.KeepMessages != 10000 {
		t.Errorf("default keep_messages %d (%v), want 10000", c.KeepMessages, err)
	}
	c = &Config{HTTPEndpoint: "none", KeepMessages: -1}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keep_messages") {
		t.Errorf("negative keep_messages: %v", err)
	}
}
