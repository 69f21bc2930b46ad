package cellulantsms_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/cellulantsms"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(cellulantsms.Kind()) }

func config(outbound string) string {
	return fmt.Sprintf(`
  - name: cellulant
    kind: vumi.transports.cellulant.CellulantSmsTransport
    transport_name: cellulant
    web_path: /api/v1/cellulant/sms
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    outbound_url: %s/send
    outbound_timeout: 5
    credentials:
      "2371234567": {username: user, password: s3cret}
`, outbound)
}

func in(kv ...string) url.Values {
	v := url.Values{"SOURCEADDR": {"2371234567"}, "DESTADDR": {"12345"}, "MESSAGE": {"hello"}, "ID": {"12345"}}
	return transporttest.Params(v, kv...)
}

func out(from string) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String(from), schemas.String("2371234567"), schemas.String("hello world")
	m.TransportName, m.TransportType = schemas.String("cellulant"), schemas.String("sms")
	return m
}

func TestCellulantSMS(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "cellulant", config(rs.URL))
	p := "/api/v1/cellulant/sms"
	var id string
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "inbound SMS", Path: p, Query: in("channelID", "c", "keyword", "k", "transactionID", "t"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				id = m.MessageID
				if m.Text() != "hello" || m.From() != "2371234567" || m.To() != "12345" || *m.Provider != "vumi" ||
					*m.TransportType != "sms" || m.TransportMetadata["transport_message_id"] != "12345" {
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
		{Name: "missing and unexpected fields", Path: p, Query: in("ID", "<none>", "colour", "red"),
			WantStatus: 400, WantBody: `{"missing_parameter":["ID"],"unexpected_parameter":["colour"]}`},
	})

	// Outbound: a GET with the sender's credentials, acked on "1".
	rs.Respond(transporttest.Response{Status: 200, Body: "1\n"})
	m := out("2371234567")
	e.SendOutbound(m)
	req := rs.WaitRequest(func(r transporttest.Request) bool { return url.Values(r.Query).Get("message") == "hello world" }, 30*time.Second)
	want := url.Values{"username": {"user"}, "password": {"s3cret"}, "source": {"2371234567"}, "destination": {"2371234567"}, "message": {"hello world"}}
	if req.Method != "GET" || req.Path != "/send" || url.Values(req.Query).Encode() != want.Encode() {
		t.Errorf("outbound request %+v", req)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == m.MessageID && *ev.SentMessageID == m.MessageID
	}, 30*time.Second)

	for _, tc := range []struct{ body, reason string }{
		{"E1", "Invalid username or password"},
		{"1005", "Suspect source address"},
		{"E9", "Unknown response code: E9"},
	} {
		rs.Respond(transporttest.Response{Status: 200, Body: tc.body})
		m := out("unknown-sender")
		e.SendOutbound(m)
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
		if ev.EventType != schemas.EventNack || *ev.NackReason != tc.reason {
			t.Errorf("%s: event %s %v", tc.body, ev.EventType, ev.NackReason)
		}
	}
}

func TestCellulantSMSUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "cellulant", config(unreachable))
	m := out("2371234567")
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary {
		t.Errorf("failure %s (%v)", f.Reason, f.FailureCode)
	}
	if strings.Contains(f.Reason, "s3cret") {
		t.Errorf("the failure reason leaks the password: %s", f.Reason)
	}
}

func TestCellulantSMSConfigErrors(t *testing.T) {
	cases := map[string]string{
		"credentials":  "name: a, kind: cellulant_sms, transport_name: a, web_path: /x, outbound_url: 'http://h/'",
		"outbound_url": "name: a, kind: cellulant_sms, transport_name: a, web_path: /x, credentials: {}",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}
