package mtechkenya_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/mtechkenya"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(mtechkenya.Kinds()...) }

func config(kind, outbound, user string) string {
	return fmt.Sprintf(`
  - name: mtech
    kind: %s
    transport_name: mtech
    web_path: foo
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: mtech
    web_password: inbound-pw
    outbound_url: %s/send
    mt_username: %s
    mt_password: testpass
    outbound_timeout: 5
`, kind, outbound, user)
}

// fakeMTech is MTECH's send API as Vumi's tests describe it: 401 for an
// unknown user, 403 for a mobile number it does not serve, else 200. It
// records the parameters of every request, and where they came from.
type fakeMTech struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []sent
}

type sent struct {
	method, path, contentType string
	query, form               url.Values
}

func newFake(t *testing.T) *fakeMTech {
	f := &fakeMTech{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		_ = r.ParseForm()
		s := sent{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), query: q, form: r.PostForm}
		f.mu.Lock()
		f.reqs = append(f.reqs, s)
		f.mu.Unlock()
		switch {
		case r.Form.Get("user") != "testuser":
			w.WriteHeader(401)
		case r.Form.Get("MSISDN") != "2371234567":
			w.WriteHeader(403)
		case r.Form.Get("MESSAGE") == "teapot":
			w.WriteHeader(418)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMTech) wait(t *testing.T, id string) sent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, r := range f.reqs {
			if r.query.Get("messageID") == id || r.form.Get("messageID") == id {
				f.mu.Unlock()
				return r
			}
		}
		f.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no request for %s", id)
	return sent{}
}

func q(kv ...string) url.Values {
	v := url.Values{"shortCode": {"12345"}, "MSISDN": {"2371234567"}, "MESSAGE": {"hello"}, "messageID": {"1234567"}}
	return transporttest.Params(v, kv...)
}

func out(to, content string, meta schemas.Metadata) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String("9292"), schemas.String(to), schemas.String(content)
	m.TransportName, m.TransportType, m.TransportMetadata = schemas.String("mtech"), schemas.String("sms"), meta
	return m
}

func TestMTechKenya(t *testing.T) {
	for _, v := range []struct {
		kind string
		v2   bool
	}{{"vumi.transports.mtech_kenya.MTechKenyaTransport", false}, {"vumi.transports.mtech_kenya.MTechKenyaTransportV2", true}} {
		t.Run(v.kind[strings.LastIndex(v.kind, ".")+1:], func(t *testing.T) { testMTech(t, v.kind, v.v2) })
	}
}

func testMTech(t *testing.T, kind string, v2 bool) {
	fake := newFake(t)
	e := transporttest.Start(t, kinds(), "mtech", config(kind, fake.URL, "testuser"))
	var id string
	inbound := func(content string, meta map[string]any) func(t testing.TB, m *schemas.UserMessage) {
		return func(t testing.TB, m *schemas.UserMessage) {
			id = m.MessageID
			got, want := fmt.Sprint(map[string]any(m.TransportMetadata)), fmt.Sprint(meta)
			if m.Text() != content || m.From() != "2371234567" || m.To() != "12345" || *m.TransportType != "sms" || got != want {
				t.Errorf("inbound %q %q %q %v: %s, want %s", m.Text(), m.From(), m.To(), m.TransportType, got, want)
			}
		}
	}
	body := func(t testing.TB, b string) {
		var got map[string]string
		if err := json.Unmarshal([]byte(b), &got); err != nil || got["message_id"] != id {
			t.Errorf("body %q, want message_id %s", b, id)
		}
	}
	p, u, pw := "/foo", "mtech", "inbound-pw"
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "inbound, query on a POST", Method: "POST", Path: p, Query: q(), User: u, Pass: pw, WantStatus: 200, Check: body,
			WantInbound: inbound("hello", map[string]any{"transport_message_id": "1234567"})},
		{Name: "inbound form with linkID", Method: "POST", Path: p, Body: q("linkID", "link123", "gateway", "g", "message_type", "t").Encode(),
			ContentType: "application/x-www-form-urlencoded", User: u, Pass: pw, WantStatus: 200, Check: body,
			WantInbound: inbound("hello", map[string]any{"linkID": "link123", "transport_message_id": "1234567"})},
		{Name: "non-ASCII content", Method: "POST", Path: p, Query: q("MESSAGE", "öæł"), User: u, Pass: pw, WantStatus: 200,
			WantInbound: inbound("öæł", map[string]any{"transport_message_id": "1234567"})},
		{Name: "unexpected parameter", Method: "POST", Path: p, Query: q("foo", "bar"), User: u, Pass: pw, WantStatus: 400,
			WantBody: `{"unexpected_parameter":["foo"]}`},
		{Name: "missing parameters", Method: "POST", Path: p, Query: q("MSISDN", "<none>", "messageID", "<none>"), User: u, Pass: pw, WantStatus: 400,
			WantBody: `{"missing_parameter":["MSISDN","messageID"]}`},
		{Name: "no credentials", Method: "POST", Path: p, Query: q(), WantStatus: 401},
		{Name: "wrong password", Method: "POST", Path: p, Query: q(), User: u, Pass: "x", WantStatus: 401},
	})

	check := func(r sent, m *schemas.UserMessage, link string) {
		t.Helper()
		want := url.Values{"user": {"testuser"}, "pass": {"testpass"}, "messageID": {m.MessageID}, "shortCode": {"9292"},
			"MSISDN": {m.To()}, "MESSAGE": {m.Text()}}
		if link != "" {
			want.Set("linkID", link)
		}
		params, other := r.query, r.form
		if v2 {
			params, other = r.form, r.query
			if r.contentType != "application/x-www-form-urlencoded" {
				t.Errorf("v2 content type %q", r.contentType)
			}
		}
		if r.method != "POST" || r.path != "/send" || params.Encode() != want.Encode() || len(other) != 0 {
			t.Errorf("request %+v, want %v", r, want)
		}
	}
	// Acked on 200, with the linkID of the conversation when there is one.
	for _, link := range []string{"", "link123"} {
		meta := schemas.Metadata{}
		if link != "" {
			meta["linkID"] = link
		}
		m := out("2371234567", "hi", meta)
		e.SendOutbound(m)
		check(fake.wait(t, m.MessageID), m, link)
		e.WaitEvent(func(ev *schemas.Event) bool {
			return ev.EventType == schemas.EventAck && ev.UserMessageID == m.MessageID && *ev.SentMessageID == m.MessageID
		}, 30*time.Second)
	}
	// MTECH's error codes become nack reasons.
	for to, reason := range map[string]string{"4471234567": "Invalid mobile number"} {
		m := out(to, "hi", nil)
		e.SendOutbound(m)
		check(fake.wait(t, m.MessageID), m, "")
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
		if ev.EventType != schemas.EventNack || *ev.NackReason != reason {
			t.Errorf("to %s: %s %v", to, ev.EventType, ev.NackReason)
		}
	}
	m := out("2371234567", "teapot", nil)
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Unknown response code: 418" {
		t.Errorf("teapot: %s %v", ev.EventType, ev.NackReason)
	}
}

func TestMTechKenyaBadCredentials(t *testing.T) {
	fake := newFake(t)
	e := transporttest.Start(t, kinds(), "mtech", config("mtech_kenya_v2", fake.URL, "other_user"))
	m := out("2371234567", "hi", nil)
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Invalid username or password" {
		t.Errorf("event %s %v", ev.EventType, ev.NackReason)
	}
}

func TestMTechKenyaUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "mtech", config("mtech_kenya", unreachable, "testuser"))
	m := out("2371234567", "hi", nil)
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary || strings.Contains(f.Reason, "testpass") {
		t.Errorf("failure %s (%v)", f.Reason, f.FailureCode)
	}
}

func TestMTechKenyaConfigErrors(t *testing.T) {
	base := "name: a, kind: mtech_kenya, transport_name: a, web_path: /x, mt_username: u, mt_password: p, outbound_url: 'http://h/'"
	cases := map[string]string{
		"mt_username":  strings.Replace(base, "mt_username: u, ", "", 1),
		"mt_password":  strings.Replace(base, "mt_password: p, ", "", 1),
		"outbound_url": strings.Replace(base, "http://h/", "h", 1),
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	transporttest.ValidConfig(t, kinds(), base)
}
