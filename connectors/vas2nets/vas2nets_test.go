package vas2nets_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/connectors/vas2nets"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(vas2nets.Kind()) }

func config(sendURL string) string {
	return fmt.Sprintf(`
  - name: v2n
    kind: vumi.transports.vas2nets.Vas2NetsTransport
    transport_name: v2n
    url: %s/api/send
    username: user
    password: s3cret
    owner: owner
    service: service
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_receive_path: /receive
    web_receipt_path: /receipt
    outbound_timeout: 5
`, sendURL)
}

func params(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func inParams(kv ...string) url.Values {
	base := []string{"messageid", "abc", "time", "2011.03.05 14:20:03", "provider", "vodacom", "keyword", "KEY",
		"destination", "1234", "sender", "0027831234568", "text", "hello world"}
	return params(append(base, kv...)...)
}

func TestVas2Nets(t *testing.T) {
	rs := transporttest.NewRecordingServer(t)
	e := transporttest.Start(t, kinds(), "v2n", config(rs.URL))
	var in *schemas.UserMessage
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "inbound SMS", Method: "POST", Path: "/receive", Body: inParams().Encode(), ContentType: "application/x-www-form-urlencoded",
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				in = m
				if m.MessageID != "v2n.abc" || m.From() != "+27831234568" || m.To() != "1234" || m.Text() != "hello world" ||
					*m.TransportType != "sms" || m.TransportMetadata["timestamp"] != "2011-03-05T14:20:03" ||
					m.TransportMetadata["network_id"] != "vodacom" || m.TransportMetadata["keyword"] != "KEY" {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200, WantBody: "",
		},
		{Name: "missing keys", Path: "/receive", Query: params("messageid", "x"), WantStatus: 400,
			WantBodyContains: []string{"Missing request key: time, provider, keyword, destination, sender, text"}},
		{Name: "bad time", Path: "/receive", Query: inParams("time", "yesterday"), WantStatus: 400, WantBodyContains: []string{"ValueError"}},
		{Name: "receipt with a bad status", Path: "/receipt", Query: params("messageid", "m", "status", "x", "text", "", "time", "", "provider", "p", "sender", "1"),
			WantStatus: 400, WantBodyContains: []string{"ValueError: status"}},
		{Name: "receipt missing keys", Path: "/receipt", Query: params("messageid", "m"), WantStatus: 400,
			WantBodyContains: []string{"Missing request key: status, text, time, provider, sender"}},
		{Name: "unknown path", Path: "/elsewhere", WantStatus: 404},
		{Name: "health", Path: "/health", WantStatus: 200},
	})

	// A reply: posted with the account, ids and character-checked text,
	// acked with the id in X-Nth-Smsid.
	rs.Respond(transporttest.Response{Status: 200, Body: "Result_code: 00, Message OK", Header: map[string]string{"X-Nth-Smsid": "v2n-1"}})
	r := in.Reply("Hi [there] €5", true)
	e.SendOutbound(r)
	req := rs.WaitRequest(func(r transporttest.Request) bool { return strings.Contains(r.Body, "there") }, 30*time.Second)
	form, _ := url.ParseQuery(req.Body)
	want := url.Values{"username": {"user"}, "password": {"s3cret"}, "owner": {"owner"}, "service": {"service"},
		"call-number": {"0027831234568"}, "origin": {"1234"}, "messageid": {"abc"}, "provider": {"vodacom"},
		"tariff": {"0"}, "text": {"Hi [there] €5"}, "subservice": {"KEY"}}
	if req.Path != "/api/send" || form.Encode() != want.Encode() || req.Header.Get("User-Agent") != "Vumi Vas2Net Transport" {
		t.Errorf("outbound request %s %s %v", req.Path, req.Body, req.Header)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == r.MessageID && *ev.SentMessageID == "v2n-1"
	}, 30*time.Second)

	// Delivery receipts.
	for _, tc := range []struct {
		status string
		want   schemas.DeliveryStatus
	}{{"2", schemas.DeliveryDelivered}, {"-28", schemas.DeliveryFailed}, {"1", schemas.DeliveryPending}} {
		transporttest.Run(t, e, []transporttest.Case{{Name: "receipt " + tc.status, Path: "/receipt",
			Query:      params("messageid", "r"+tc.status, "status", tc.status, "text", "Message delivered", "time", "2011.03.05 14:20:03", "provider", "vodacom", "sender", "+27831234568"),
			WantStatus: 200}})
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "v2n.r"+tc.status }, 30*time.Second)
		if ev.EventType != schemas.EventDeliveryReport || *ev.DeliveryStatus != tc.want {
			t.Errorf("receipt %s: %s %v", tc.status, ev.EventType, ev.DeliveryStatus)
		}
	}

	// No id header: nacked (and a failure); a server error, an illegal
	// character and a missing network id are permanent failures.
	rs.Respond(transporttest.Response{Status: 200, Body: "hmm"})
	noID := in.Reply("no header", true)
	e.SendOutbound(noID)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == noID.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "No SmsId Header, content: hmm" {
		t.Errorf("no header: %s %v", ev.EventType, ev.NackReason)
	}
	rs.Respond(transporttest.Response{Status: 500, Body: "boom"})
	failing := []*schemas.UserMessage{in.Reply("server error", true), in.Reply("snowman ☃", true), in.Reply("no network", true)}
	failing[2].TransportMetadata = nil
	want3 := []string{"server error: HTTP 500: boom", "illegal character", "network_id"}
	for i, m := range failing {
		e.SendOutbound(m)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
		if !strings.Contains(f.Reason, want3[i]) || f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent || strings.Contains(f.Reason, "s3cret") {
			t.Errorf("failure %d: %s (%v)", i, f.Reason, f.FailureCode)
		}
	}
}

func TestCharacters(t *testing.T) {
	for text, want := range map[string]struct {
		double bool
		err    bool
	}{
		"Hello, world! 123": {}, "äöü £$@ ñ": {}, "{curly} ~": {double: true}, "tab\there": {err: true}, "emoji 😀": {err: true},
	} {
		double, err := vas2nets.ValidateCharacters(text)
		if double != want.double || (err != nil) != want.err || (err != nil && !errors.Is(err, vas2nets.ErrIllegalCharacter)) {
			t.Errorf("%q: double %v err %v", text, double, err)
		}
	}
	if got := vas2nets.OutboundMSISDN("+27831234567"); got != "0027831234567" {
		t.Errorf("OutboundMSISDN = %q", got)
	}
}

func TestVas2NetsConfigErrors(t *testing.T) {
	base := "name: a, kind: vas2nets, transport_name: a, url: 'http://h/', username: u, password: p, owner: o, service: s, web_port: 0, web_receive_path: /in, web_receipt_path: /dr"
	cases := map[string]string{
		"url":              strings.Replace(base, "url: 'http://h/'", "url: 'h'", 1),
		"password":         strings.Replace(base, "password: p, ", "", 1),
		"web_port":         strings.Replace(base, "web_port: 0, ", "", 1),
		"web_receipt_path": strings.Replace(base, "/dr", "/in", 1),
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	transporttest.ValidConfig(t, kinds(), base)
}
