package apposit_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/apposit"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(apposit.Kind()) }

func config(outbound string) string {
	return fmt.Sprintf(`
  - name: apposit
    kind: vumi.transports.apposit.AppositTransport
    transport_name: apposit
    web_path: /api/v1/apposit/sms
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: root
    web_password: toor
    outbound_url: %s/send
    outbound_timeout: 5
    credentials:
      "8123": {username: root, password: toor, service_id: service-id-1}
      "8124": {username: admin, password: nimda, service_id: service-id-2}
`, outbound)
}

func in(kv ...string) url.Values {
	v := url.Values{"from": {"251911223344"}, "to": {"8123"}, "channel": {"SMS"}, "content": {"never odd or even"}, "isTest": {"true"}}
	return transporttest.Params(v, kv...)
}

func out(from string, ttype string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String(from), schemas.String("251911223344"), schemas.String("racecar")
	m.TransportName, m.TransportType = schemas.String("apposit"), schemas.String(ttype)
	return m
}

func TestApposit(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "apposit", config(rs.URL))
	p := "/api/v1/apposit/sms"
	var id string
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "inbound SMS", Method: "POST", Path: p, Body: in().Encode(), ContentType: "application/x-www-form-urlencoded", User: "root", Pass: "toor",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				id = m.MessageID
				meta, _ := m.TransportMetadata["apposit"].(map[string]any)
				if m.Text() != "never odd or even" || m.From() != "251911223344" || m.To() != "8123" || *m.Provider != "apposit" ||
					*m.TransportType != "sms" || meta["isTest"] != "true" {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200,
			Check: func(t testing.TB, body string) {
				var got map[string]string
				if err := json.Unmarshal([]byte(body), &got); err != nil || got["message_id"] != id {
					t.Errorf("body %q, want message_id %s", body, id)
				}
			},
		},
		{Name: "missing and unexpected fields", Method: "POST", Path: p, ContentType: "application/x-www-form-urlencoded", User: "root", Pass: "toor",
			Body:       in("from", "<none>", "isTest", "<none>", "colour", "red").Encode(),
			WantStatus: 400, WantBody: `{"missing_parameter":["from","isTest"],"unexpected_parameter":["colour"]}`},
		{Name: "unsupported channel", Method: "POST", Path: p, ContentType: "application/x-www-form-urlencoded", User: "root", Pass: "toor",
			Body: in("channel", "USSD").Encode(), WantStatus: 400, WantBody: `{"unsupported_channel":["USSD"]}`},
		{Name: "no credentials", Method: "POST", Path: p, ContentType: "application/x-www-form-urlencoded", Body: in().Encode(), WantStatus: 401},
		{Name: "wrong password", Method: "POST", Path: p, ContentType: "application/x-www-form-urlencoded", Body: in().Encode(), User: "root", Pass: "x", WantStatus: 401},
	})

	// Outbound: a form post with the sender's credentials, acked on 200.
	m := out("8123", "sms")
	e.SendOutbound(m)
	req := rs.WaitRequest(func(r transporttest.Request) bool { return strings.Contains(r.Body, "racecar") }, 30*time.Second)
	form, _ := url.ParseQuery(req.Body)
	want := url.Values{"username": {"root"}, "password": {"toor"}, "serviceId": {"service-id-1"}, "fromAddress": {"8123"},
		"toAddress": {"251911223344"}, "content": {"racecar"}, "channel": {"SMS"}}
	if req.Method != "POST" || req.Path != "/send" || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || form.Encode() != want.Encode() {
		t.Errorf("outbound request %+v", req)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == m.MessageID && *ev.SentMessageID == m.MessageID
	}, 30*time.Second)

	// Apposit's error codes become nack reasons.
	for _, tc := range []struct{ code, reason string }{
		{"102999", "(102999) Other Runtime Error"},
		{"103000", "Response with unknown code received: 103000"},
	} {
		rs.Respond(transporttest.Response{Status: 400, Body: tc.code})
		m := out("8124", "sms")
		e.SendOutbound(m)
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
		if ev.EventType != schemas.EventNack || *ev.NackReason != tc.reason {
			t.Errorf("code %s: event %s %v", tc.code, ev.EventType, ev.NackReason)
		}
	}
	// Transport types without an Apposit channel are nacked unsent.
	n := len(rs.Requests())
	u := out("8123", "ussd")
	e.SendOutbound(u)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == u.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "No corresponding channel exists for transport type: ussd" {
		t.Errorf("ussd: event %s %v", ev.EventType, ev.NackReason)
	}
	if len(rs.Requests()) != n {
		t.Error("a message without a channel was sent")
	}
}

func TestAppositUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "apposit", config(unreachable))
	m := out("8123", "sms")
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary || strings.Contains(f.Reason, "toor") {
		t.Errorf("failure %s (%v)", f.Reason, f.FailureCode)
	}
}

func TestAppositConfigErrors(t *testing.T) {
	cases := map[string]string{
		"credentials":  "name: a, kind: apposit, transport_name: a, web_path: /x, outbound_url: 'http://h/'",
		"outbound_url": "name: a, kind: apposit, transport_name: a, web_path: /x, credentials: {}, outbound_url: 'ftp://h/'",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}
