package dmark_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/dmark"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(dmark.Kind()) }

// req is a DMark request; "<none>" drops a parameter.
func req(kv ...string) url.Values {
	v := url.Values{
		"transactionId": {"tx-1"}, "msisdn": {"+256776123456"}, "ussdServiceCode": {"*185*4#"},
		"transactionTime": {"1389971940"}, "ussdRequestString": {"*185*4#"}, "creationTime": {"1389971950"}, "response": {"false"},
	}
	return transporttest.Params(v, kv...)
}

func TestDmarkUSSD(t *testing.T) {
	e := transporttest.Start(t, kinds(), "dmark", `
  - name: dmark
    kind: vumi.transports.dmark.DmarkUssdTransport
    transport_name: dmark
    web_path: /api/v1/dmark/ussd/
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_username: dm
    web_password: pw
    fix_to_addr: true
    publish_status: true
`)
	p := "/api/v1/dmark/ussd/"
	c := func(tc transporttest.Case) transporttest.Case {
		tc.Path, tc.User, tc.Pass = p, "dm", "pw"
		return tc
	}
	transporttest.Run(t, e, []transporttest.Case{
		c(transporttest.Case{
			Name: "a new transaction starts a session", Query: req(),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				meta, _ := m.TransportMetadata["dmark_ussd"].(map[string]any)
				if m.Content != nil || m.To() != "*185*4#" || m.From() != "+256776123456" || m.Session() != schemas.SessionNew ||
					*m.Provider != "dmark" || *m.TransportType != "ussd" || m.HelperMetadata["session_id"] != "tx-1" ||
					meta["transaction_id"] != "tx-1" || meta["transaction_time"] != "1389971940" || meta["creation_time"] != "1389971950" {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("Hello", true), WantStatus: 200, WantBody: `{"action":"request","responseString":"Hello"}`,
			WantHeader: map[string]string{"Content-Type": "application/json"},
		}),
		c(transporttest.Case{
			Name: "the same transaction resumes it", Query: req("ussdRequestString", "1", "response", "true"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "1" || m.Session() != schemas.SessionResume {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("Bye", false), WantStatus: 200, WantBody: `{"action":"end","responseString":"Bye"}`,
		}),
		c(transporttest.Case{
			Name: "fix_to_addr wraps a bare code", Query: req("transactionId", "tx-2", "ussdServiceCode", "185"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.To() != "*185#" {
					t.Errorf("to_addr %q", m.To())
				}
			},
			Reply: transporttest.Reply("x", false), WantStatus: 200,
		}),
		c(transporttest.Case{Name: "missing and unexpected parameters", Query: req("msisdn", "<none>", "creationTime", "<none>", "foo", "bar"),
			WantStatus: 400, WantBody: `{"missing_parameter":["creationTime","msisdn"],"unexpected_parameter":["foo"]}`}),
		c(transporttest.Case{Name: "invalid encoding", Query: url.Values{"msisdn": {"\xff"}},
			WantStatus: 400, WantBodyContains: []string{`"invalid_request"`, `"method":"GET"`}}),
		{Name: "no credentials", Path: p, Query: req(), WantStatus: 401},
		{Name: "wrong password", Path: p, Query: req(), User: "dm", Pass: "x", WantStatus: 401},
	})
	// Acks carry the HTTP-RPC base's record of the response written
	// (shown by `vumi trace`).
	e.WaitEvent(func(ev *schemas.Event) bool {
		rec, _ := ev.TransportMetadata["http_response"].(map[string]any)
		want := len(`{"action":"request","responseString":"Hello"}`)
		return ev.EventType == schemas.EventAck && rec != nil && fmt.Sprint(rec["status"]) == "200" &&
			fmt.Sprint(rec["bytes"]) == fmt.Sprint(want) && rec["request_ms"] != nil
	}, 30*time.Second)
	// A reply without content is nacked.
	bad := e.Inbound()[0].Reply("", true)
	bad.Content = nil
	e.SendOutbound(bad)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == bad.MessageID && *ev.NackReason == "Missing fields: content"
	}, 30*time.Second)
	// request_parsed, invalid_inbound_fields and invalid_encoding (and the
	// response statuses) were published.
	deadline := time.Now().Add(10 * time.Second)
	for e.CountRecords("vumi.status") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d status events, want at least 3", e.CountRecords("vumi.status"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDmarkSessionExpiry(t *testing.T) {
	e := transporttest.Start(t, kinds(), "dmark", `
  - name: dmark
    kind: dmark_ussd
    transport_name: dmark
    web_path: /ussd
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    ussd_session_timeout: 1
`)
	newSession := func(name string) transporttest.Case {
		return transporttest.Case{Name: name, Path: "/ussd", Query: req("ussdServiceCode", "*185#"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Session() != schemas.SessionNew || m.To() != "*185#" {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply: transporttest.Reply("hi", true), WantStatus: 200}
	}
	transporttest.Run(t, e, []transporttest.Case{newSession("first request")})
	time.Sleep(1500 * time.Millisecond)
	transporttest.Run(t, e, []transporttest.Case{newSession("the same transaction after the timeout is new again")})
}

func TestDmarkConfigErrors(t *testing.T) {
	transporttest.ConfigErrors(t, kinds(), map[string]string{"ussd_session_timeout": "name: a, kind: dmark_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -1"})
}
