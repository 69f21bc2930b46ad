package imimobile_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/imimobile"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(imimobile.Kind()) }

const config = `
  - name: imimobile
    kind: vumi.transports.imimobile.ImiMobileUssdTransport
    transport_name: imimobile
    web_path: /api/v1/imimobile/ussd/
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    user_terminated_session_message: "^Farewell"
    user_terminated_session_response: "You have ended the session"
    suffix_to_addrs:
      some-suffix: "56263"
      some-other-suffix: "56264"
    request_timeout: 10
`

const base = "/api/v1/imimobile/ussd/"

func q(msisdn, msg string, extra ...string) url.Values {
	v := url.Values{"msisdn": {msisdn}, "msg": {msg}, "tid": {"1"}, "dcs": {"no-idea-what-this-is"}, "code": {"VUMI"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func step(name, suffix string, query url.Values, ev schemas.SessionEvent, to, reply string, close bool, header string) transporttest.Case {
	return transporttest.Case{
		Name: name, Path: base + suffix, Query: query,
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			meta, _ := m.TransportMetadata["imimobile_ussd"].(map[string]any)
			if m.Session() != ev || m.To() != to || m.Text() != query.Get("msg") || m.From() != query.Get("msisdn") ||
				m.Provider == nil || *m.Provider != "imimobile" || *m.TransportType != "ussd" ||
				meta["tid"] != "1" || meta["code"] != "VUMI" || meta["dcs"] != "no-idea-what-this-is" {
				b, _ := m.MarshalJSON()
				t.Errorf("inbound %s; want %s to %q", b, ev, to)
			}
		},
		Reply:      transporttest.Reply(reply, !close),
		WantStatus: 200, WantBody: reply, WantHeader: map[string]string{"X-USSD-SESSION": header},
	}
}

func TestImiMobile(t *testing.T) {
	e := transporttest.Start(t, kinds(), "imimobile", config)
	dated := step("a request with IMImobile's datetime (IST) is stamped in UTC", "some-suffix", q("9221230000", "hi", "datetime", "01/29/2013 04:53:59 am"),
		schemas.SessionNew, "56263", "dated", true, "0")
	check := dated.WantInbound
	dated.WantInbound = func(t testing.TB, m *schemas.UserMessage) {
		check(t, m)
		meta, _ := m.TransportMetadata["imimobile_ussd"].(map[string]any)
		if meta["datetime"] != "2013-01-28T23:23:59Z" || !m.Timestamp.Equal(time.Date(2013, 1, 28, 23, 23, 59, 0, time.UTC)) {
			t.Errorf("datetime %v, timestamp %v", meta["datetime"], m.Timestamp)
		}
	}
	transporttest.Run(t, e, []transporttest.Case{
		step("a new number starts a session", "some-suffix", q("9221234567", "Who are you?"), schemas.SessionNew, "56263", "We are the Knights Who Say ... Ni!", false, "1"),
		step("the same number resumes it", "some-suffix", q("9221234567", "Well, what is it you want?"), schemas.SessionResume, "56263", "We want ... a shrubbery!", false, "1"),
		step("a closing reply ends it", "some-suffix", q("9221234567", "ok"), schemas.SessionResume, "56263", "Bye", true, "0"),
		step("after a closing reply the number starts anew", "some-other-suffix", q("9221234567", "again"), schemas.SessionNew, "56264", "Hello", false, "1"),
		{Name: "the user ends the session", Path: base + "some-other-suffix", Query: q("9221234567", "Farewell, sweet Concorde!"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Session() != schemas.SessionClose || m.Text() != "Farewell, sweet Concorde!" || m.To() != "56264" || m.From() != "9221234567" {
					b, _ := m.MarshalJSON()
					t.Errorf("close inbound %s", b)
				}
			},
			WantStatus: 200, WantBody: "You have ended the session", WantHeader: map[string]string{"X-USSD-SESSION": "0"}},
		step("after the user ended it the number starts anew", "some-suffix", q("9221234567", "back"), schemas.SessionNew, "56263", "Hi", true, "0"),
		dated,
		{Name: "unknown suffix", Path: base + "unk-suffix", Query: q("1", "x"), WantStatus: 400, WantBody: `{"unknown_suffix":"unk-suffix"}`},
		{Name: "no suffix and missing parameters", Path: base, Query: url.Values{"msg": {""}, "code": {""}, "dcs": {""}},
			WantStatus: 400, WantBody: `{"missing_parameter":["msisdn","tid"],"unknown_suffix":""}`},
		{Name: "unexpected parameters", Path: base + "some-suffix", Query: q("1", "x", "unexpected_p1", "", "unexpected_p2", ""),
			WantStatus: 400, WantBody: `{"unexpected_parameter":["unexpected_p1","unexpected_p2"]}`},
		{Name: "malformed datetime", Path: base + "some-suffix", Query: q("1", "x", "datetime", "2013-01-26 15:30"),
			WantStatus: 400, WantBody: `{"invalid_parameter":{"datetime":"\"2013-01-26 15:30\" is not a time like 1/26/2013 03:30:00 pm"}}`},
	})

	// Replies without in_reply_to are nacked; so are replies whose request
	// is gone, with Vumi's reasons.
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("9221234567"), schemas.String("hi")
	e.SendOutbound(push)
	late := e.Inbound()[0].Reply("late", true)
	e.SendOutbound(late)
	for id, reason := range map[string]string{push.MessageID: imimobile.InsufficientMsgFieldsError, late.MessageID: imimobile.ResponseFailureError} {
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
		if ev.EventType != schemas.EventNack || ev.NackReason == nil || *ev.NackReason != reason {
			t.Errorf("event for %s: %+v, want nack %q", id, ev, reason)
		}
	}
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.EventType == schemas.EventAck }, 30*time.Second)
	if ack.SentMessageID == nil || *ack.SentMessageID != ack.UserMessageID {
		t.Errorf("ack %+v", ack)
	}
}

// TestImiMobileAcrossInstancesAndExpiry: a number's session started on
// one instance resumes on another, and ends ussd_session_timeout after its
// start however busy it is.
func TestImiMobileAcrossInstancesAndExpiry(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "imimobile", 2, `
  - name: imi{i}
    kind: imimobile_ussd
    transport_name: imimobile
    web_path: /ussd
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    suffix_to_addrs: {svc: "56263"}
    ussd_session_timeout: 4
`)
	call := func(i int, msg string) *schemas.UserMessage {
		return e.Call(t, i, transporttest.Case{Path: "/ussd/svc", Query: q("919999", msg),
			Reply: transporttest.Reply("menu", true), WantStatus: 200, WantBody: "menu"})
	}
	started := time.Now()
	if in := call(0, "start"); in.Session() != schemas.SessionNew {
		t.Fatalf("start: %s", in.Session())
	}
	e.WaitSessionTable(t, 1, "imimobile")
	for time.Since(started) < 3*time.Second {
		if in := call(1, "more"); in.Session() != schemas.SessionResume || in.To() != "56263" {
			t.Fatalf("instance 1: %s %s", in.Session(), in.To())
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Until(started.Add(5 * time.Second)))
	if in := call(0, "again"); in.Session() != schemas.SessionNew {
		t.Errorf("after expiry: %s", in.Session())
	}
}

func TestImiMobileConfigErrors(t *testing.T) {
	cases := map[string]string{
		"suffix_to_addrs":                 "name: a, kind: imimobile_ussd, transport_name: a, web_path: /x",
		"user_terminated_session_message": "name: a, kind: imimobile_ussd, transport_name: a, web_path: /x, suffix_to_addrs: {a: b}, user_terminated_session_message: '(x'",
		"ussd_session_timeout":            "name: a, kind: imimobile_ussd, transport_name: a, web_path: /x, suffix_to_addrs: {a: b}, ussd_session_timeout: -1",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	_, err := transporttest.LoadWorker(kinds(), "name: a, kind: imimobile_ussd, transport_name: a, web_path: /x, suffix_to_addrs: {'a/b': c}")
	if err == nil || !strings.Contains(err.Error(), "one non-empty path segment") {
		t.Errorf("suffix with a slash: %v", err)
	}
}

func TestISTToUTC(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1/26/2013 03:30:00 pm":  time.Date(2013, 1, 26, 10, 0, 0, 0, time.UTC),
		"01/29/2013 04:53:59 am": time.Date(2013, 1, 28, 23, 23, 59, 0, time.UTC),
		"01/31/2013 07:20:00 pm": time.Date(2013, 1, 31, 13, 50, 0, 0, time.UTC),
		"3/8/2013 8:5:5 am":      time.Date(2013, 3, 8, 2, 35, 5, 0, time.UTC),
		"3/8/2013 12:00:00 AM":   time.Date(2013, 3, 7, 18, 30, 0, 0, time.UTC),
		"3/8/2013 12:00:00 PM":   time.Date(2013, 3, 8, 6, 30, 0, 0, time.UTC),
	} {
		got, err := imimobile.ISTToUTC(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ISTToUTC(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "13/1/2013 01:00:00 pm", "2/30/2013 01:00:00 pm", "1/1/2013 13:00:00 pm", "1/1/2013 01:60:00 am", "1/1/2013 01:00:00"} {
		if _, err := imimobile.ISTToUTC(bad); err == nil {
			t.Errorf("ISTToUTC(%q) accepted", bad)
		}
	}
}

// FuzzParseRequest: no path or parameters make the request reader panic;
// what it accepts has a known suffix and every parameter.
func FuzzParseRequest(f *testing.F) {
	f.Add("/ussd/svc", "msisdn=1&msg=hi&code=c&tid=1&dcs=0")
	f.Add("/ussd/", "msisdn=1&msg=hi&code=c&tid=1&dcs=0&datetime=3%2F8%2F2013+8%3A5%3A5+am")
	f.Add("/ussd/svc/x", "datetime=99/99/9999 99:99:99 pm")
	suffixes := map[string]string{"svc": "56263"}
	f.Fuzz(func(t *testing.T, path, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			req, errs := imimobile.ParseRequest(path, "/ussd", form, suffixes, strict)
			if errs != nil {
				continue
			}
			if req.ToAddr != "56263" {
				t.Fatalf("accepted path %q", path)
			}
			for _, k := range []string{"msisdn", "msg", "code", "tid", "dcs"} {
				if _, ok := form[k]; !ok {
					t.Fatalf("accepted without %s", k)
				}
			}
			if _, ok := form["datetime"]; ok != (req.Datetime != nil) {
				t.Fatal("datetime dropped")
			}
		}
	})
}

func FuzzISTToUTC(f *testing.F) {
	f.Add("1/26/2013 03:30:00 pm")
	f.Add("3/8/2013 8:5:5 am")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := imimobile.ISTToUTC(s)
		if err == nil && got.Location() != time.UTC {
			t.Fatal("not UTC")
		}
	})
}
