package netcore_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/netcore"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(netcore.Kind()) }

func config(extra string) string {
	return `
  - name: netcore
    kind: vumi.transports.netcore.NetcoreTransport
    transport_name: netcore
    twisted_endpoint: tcp:port=${WEB_PORT}:interface=127.0.0.1
    publish_status: true
` + extra
}

func form(kv ...string) string {
	v := url.Values{"to_addr": {"10010"}, "from_addr": {"8800000000"}, "content": {"foo"}, "source": {"sms"}, "circle": {"of life"}}
	return transporttest.Params(v, kv...).Encode()
}

const ct = "application/x-www-form-urlencoded"

func TestNetcore(t *testing.T) {
	e := transporttest.Start(t, kinds(), "netcore", config(""))
	var id string
	p := "/api/v1/netcore/"
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "inbound SMS", Method: "POST", Path: p, Body: form(), ContentType: ct, WantStatus: 200,
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				id = m.MessageID
				meta, _ := m.TransportMetadata["netcore"].(map[string]any)
				if m.To() != "10010" || m.From() != "08800000000" || m.Text() != "foo" || *m.TransportType != "sms" ||
					len(meta) != 2 || meta["circle"] != "of life" || meta["source"] != "sms" {
					t.Errorf("inbound %+v", m)
				}
			},
			Check: func(t testing.TB, body string) {
				if body != id {
					t.Errorf("body %q, want the message id %s", body, id)
				}
			}},
		{Name: "leading 0 kept", Method: "POST", Path: "/api/v1/netcore", Body: form("from_addr", "0800"), ContentType: ct, WantStatus: 200,
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.From() != "0800" {
					t.Errorf("from %q", m.From())
				}
			}},
		{Name: "unexpected parameters", Method: "POST", Path: p, Body: "foo=bar", ContentType: ct, WantStatus: 400,
			WantBody: "Not all expected parameters received. Only allowing: ['to_addr', 'from_addr', 'content', 'circle', 'source'], received: ['foo']"},
		{Name: "one parameter too many", Method: "POST", Path: p, Body: form("x", "1"), ContentType: ct, WantStatus: 400,
			WantBodyContains: []string{"received: ['circle', 'content', 'from_addr', 'source', 'to_addr', 'x']"}},
		{Name: "missing values", Method: "POST", Path: p, Body: form("content", ""), ContentType: ct, WantStatus: 400,
			WantBody: "Not all parameters have values. Received: ['', '10010', '8800000000', 'of life', 'sms']"},
		{Name: "None content", Method: "POST", Path: p, Body: form("content", "None"), ContentType: ct, WantStatus: 400,
			WantBody: `"None" string literal not allowed for content parameter.`},
		{Name: "malformed body", Method: "POST", Path: p, Body: "content=%zz", ContentType: ct, WantStatus: 400, WantBodyContains: []string{"invalid request"}},
		{Name: "GET not allowed", Path: p, Query: url.Values{"content": {"x"}}, WantStatus: 405},
		{Name: "other path", Method: "POST", Path: "/elsewhere", Body: form(), ContentType: ct, WantStatus: 404},
		{Name: "health", Path: "/health/", WantStatus: 200, WantBody: "OK"},
	})
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "http" && s.Status == schemas.StatusOK }, 30*time.Second)

	// Netcore takes no outbound messages: nacked, and a permanent failure.
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content, m.TransportName = schemas.String("10010"), schemas.String("08800000000"), schemas.String("hi"), schemas.String("netcore")
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "not supported") {
		t.Errorf("event %s %v", ev.EventType, ev.NackReason)
	}
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent {
		t.Errorf("failure %s %v", f.Reason, f.FailureCode)
	}
}

func TestNetcoreAcceptNone(t *testing.T) {
	e := transporttest.Start(t, kinds(), "netcore", config("    reject_none: false\n    web_path: /in\n    health_path: /up\n"))
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "None content allowed", Method: "POST", Path: "/in", Body: form("content", "None"), ContentType: ct, WantStatus: 200,
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "None" {
					t.Errorf("content %q", m.Text())
				}
			}},
		{Name: "health", Path: "/up", WantStatus: 200, WantBody: "OK"},
	})
}

func TestNetcoreConfig(t *testing.T) {
	load := func(w string) (*topology.Config, error) {
		return topology.Load("c.yaml", []byte("workers:\n  - {name: a, kind: netcore, transport_name: a"+w+"}\n"), kinds(), nil)
	}
	for w, key := range map[string]string{
		"":                                     "twisted_endpoint",
		", twisted_endpoint: 'unix:/x'":        "twisted_endpoint",
		", twisted_endpoint: 'tcp:1', port: 2": "twisted_endpoint",
		", port: 70000":                        "port",
		", port: 1, web_path: /x, health_path: /x/": "health_path",
	} {
		if _, err := load(w); err == nil || !strings.Contains(err.Error(), "key "+key) {
			t.Errorf("%q: error = %v", w, err)
		}
	}
	for _, w := range []string{", twisted_endpoint: 'tcp:0'", ", host: 127.0.0.1, port: 0"} {
		if _, err := load(w); err != nil {
			t.Errorf("%q: %v", w, err)
		}
	}
}

func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{form(), form("content", ""), form("content", "None"), "foo=bar", "to_addr=1&to_addr=2", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		args, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		in, err := netcore.ParseInbound(args, true)
		if err != nil {
			if in != nil || err.Error() == "" {
				t.Fatalf("error %v with message %+v", err, in)
			}
			return
		}
		if len(args) != len(netcore.Expected) || in.Content == "" || in.Content == "None" || !strings.HasPrefix(in.FromAddr, "0") {
			t.Errorf("accepted %q as %+v", body, in)
		}
	})
}
