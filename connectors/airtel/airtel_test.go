package airtel_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/airtel"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(airtel.Kind()) }

const config = `
  - name: airtel
    kind: vumi.transports.airtel.AirtelUSSDTransport
    transport_name: airtel
    web_path: /api/v1/airtel/ussd/
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    airtel_username: userid
    airtel_password: s3cret
    airtel_charge: true
    airtel_charge_amount: 5
    to_addr_pattern: '\*1(21|67)'
    request_timeout: 10
    publish_status: true
`

const path = "/api/v1/airtel/ussd/"

func ussd(session, input string, extra ...string) url.Values {
	v := url.Values{"MSISDN": {"27761234567"}, "MSC": {"msc"}, "input": {input}, "SessionID": {session}, "userid": {"userid"}, "password": {"s3cret"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func cleanup(session string, extra ...string) url.Values {
	v := url.Values{"msisdn": {"27761234567"}, "clean": {"clean-session"}, "error": {"522"}, "SessionID": {session}, "userid": {"userid"}, "password": {"s3cret"}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func step(name string, query url.Values, ev schemas.SessionEvent, to, content, reply string, close bool, body, freeflow string) transporttest.Case {
	return transporttest.Case{
		Name: name, Path: path, Query: query,
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			meta, _ := m.TransportMetadata["airtel"].(map[string]any)
			if m.Session() != ev || m.To() != to || m.Content == nil || m.Text() != content || m.From() != "27761234567" ||
				m.Provider == nil || *m.Provider != "airtel" || *m.TransportType != "ussd" || meta["MSC"] != "msc" || len(meta) != 1 {
				b, _ := m.MarshalJSON()
				t.Errorf("inbound %s; want %s to %q content %q", b, ev, to, content)
			}
		},
		Reply:      transporttest.Reply(reply, !close),
		WantStatus: 200, WantBody: body,
		WantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Freeflow": freeflow, "charge": "Y", "amount": "5"},
	}
}

func TestAirtel(t *testing.T) {
	e := transporttest.Start(t, kinds(), "airtel", config)
	closeCase := transporttest.Case{Name: "cleanup closes the session at once", Path: path, Query: cleanup("s1"),
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			meta, _ := m.TransportMetadata["airtel"].(map[string]any)
			if m.Session() != schemas.SessionClose || m.To() != "*121#" || m.From() != "27761234567" || m.Content == nil || m.Text() != "" ||
				meta["clean"] != "clean-session" || meta["error"] != "522" || len(meta) != 2 {
				b, _ := m.MarshalJSON()
				t.Errorf("close inbound %s", b)
			}
		},
		WantStatus: 200, Check: func(t testing.TB, body string) {
			if body != "" {
				t.Errorf("cleanup body %q", body)
			}
		}}
	transporttest.Run(t, e, []transporttest.Case{
		step("the code starts a session", ussd("s1", "121"), schemas.SessionNew, "*121#", "", "\n  1. Yes\n2. No", false, "1. Yes\n2. No", "FC"),
		step("input resumes it", ussd("s1", "1"), schemas.SessionResume, "*121#", "1", "next", false, "next", "FC"),
		step("asterisks are input", ussd("s1", "****"), schemas.SessionResume, "*121#", "****", "more", false, "more", "FC"),
		step("empty input resumes", ussd("s1", ""), schemas.SessionResume, "*121#", "", "bye", true, "bye", "FB"),
		closeCase,
		{Name: "cleanup of an unknown session", Path: path, Query: cleanup("s1"), WantStatus: 200, WantBody: "Unknown Session"},
		step("a longer code matching to_addr_pattern", ussd("s2", "167*7*1"), schemas.SessionNew, "*167*7*1#", "", "hi", true, "hi", "FB"),
		{Name: "a code not matching to_addr_pattern", Path: path, Query: ussd("s3", "123"), WantStatus: 400,
			WantBody: `{"invalid_session":"Session id 's3' has not been encountered in the last 600 seconds and the 'input' request parameter value '*123#' doesn't look like a valid USSD address."}`},
		{Name: "missing MSC", Path: path, Query: url.Values{"MSISDN": {"1"}, "input": {"7*a"}, "SessionID": {"foo"}, "userid": {"userid"}, "password": {"s3cret"}},
			WantStatus: 400, WantBody: `{"missing_parameter":["MSC"]}`},
		{Name: "cleanup without its parameters", Path: path, Query: url.Values{"clean": {"clean-session"}, "userid": {"userid"}, "password": {"s3cret"}},
			WantStatus: 400, WantBody: `{"missing_parameter":["SessionID","error","msisdn"]}`},
		{Name: "unexpected parameter in strict mode", Path: path, Query: ussd("s4", "121", "foo", "bar"),
			WantStatus: 400, WantBody: `{"unexpected_parameter":["foo"]}`},
		{Name: "wrong password", Path: path, Query: ussd("s4", "121", "password", "guess"), WantStatus: 403, WantBody: "Forbidden"},
		{Name: "no credentials", Path: path, Query: url.Values{"MSISDN": {"1"}, "MSC": {"m"}, "input": {"121"}, "SessionID": {"s4"}}, WantStatus: 403, WantBody: "Forbidden"},
		{Name: "cleanup with wrong credentials", Path: path, Query: cleanup("s2", "userid", "foo", "password", "bar"), WantStatus: 403, WantBody: "Forbidden"},
	})

	// Answered requests publish the HTTP-RPC response status.
	st := e.WaitStatus(func(st *schemas.Status) bool { return st.Component == "response" }, 30*time.Second)
	if st.Status != schemas.StatusOK || st.Type != "response_sent" || st.TransportName == nil || *st.TransportName != "airtel" {
		t.Errorf("status %+v", st)
	}
	in := e.Inbound()[0]
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("27761234567"), schemas.String("hi")
	e.SendOutbound(push)
	noContent := in.Reply("", true)
	e.SendOutbound(noContent)
	for id, reason := range map[string]string{push.MessageID: "Missing fields: in_reply_to", noContent.MessageID: "Missing fields: content"} {
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
		if ev.EventType != schemas.EventNack || ev.NackReason == nil || *ev.NackReason != reason {
			t.Errorf("event for %s: %+v, want nack %q", id, ev, reason)
		}
	}
	late := in.Reply("late", true)
	e.SendOutbound(late)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, late.MessageID) }, 30*time.Second)
	if !strings.Contains(f.Reason, "no pending request") {
		t.Errorf("late reply failure: %s", f.Reason)
	}
}

// TestAirtelAcrossInstances: two instances without credentials sharing the
// session table named by session_key_prefix; a session starts on one,
// continues on the other, is cleaned up as Flares does in production
// (with nameless parameters, in permissive mode), and a session expires
// ussd_session_timeout after its start.
func TestAirtelAcrossInstances(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "airtel", 2, `
  - name: airtel{i}
    kind: airtel_ussd
    transport_name: airtel
    web_path: /ussd
    web_port: ${PORT{i}}
    web_interface: 127.0.0.1
    validation_mode: permissive
    session_key_prefix: shared-airtel
    ussd_session_timeout: 4
`)
	reply := func(close bool) func(*schemas.UserMessage) *schemas.UserMessage {
		return transporttest.Reply("menu", !close)
	}
	q := func(session, input string) url.Values {
		return url.Values{"MSISDN": {"254700000000"}, "MSC": {"m"}, "input": {input}, "SessionID": {session}}
	}
	in := e.Call(t, 0, transporttest.Case{Path: "/ussd", Query: q("13697502734175597", "167*7"), Reply: reply(false), WantStatus: 200, WantHeader: map[string]string{"Freeflow": "FC", "charge": "N", "amount": "0"}})
	if in.Session() != schemas.SessionNew || in.To() != "*167*7#" {
		t.Fatalf("start: %s %s", in.Session(), in.To())
	}
	e.WaitSessionTable(t, 1, "shared-airtel")
	in = e.Call(t, 1, transporttest.Case{Path: "/ussd", Query: q("13697502734175597", "2"), Reply: reply(false), WantStatus: 200})
	if in.Session() != schemas.SessionResume || in.Text() != "2" || in.To() != "*167*7#" {
		t.Fatalf("instance 1: %s %q %s", in.Session(), in.Text(), in.To())
	}
	if n := e.CountRecords("shared-airtel.ussd_sessions"); n == 0 {
		t.Error("nothing written to the table named by session_key_prefix")
	}
	// Flares' clean-up as seen in production.
	raw := "msisdn=254700000000&clean=cleann&error=523&SessionID=13697502734175597&MSC=254700000000" +
		"&=&=en&=9031510005344&=&=&=postpaid&=20130528171235405&=200220130528171113956582"
	in = e.Call(t, 1, transporttest.Case{Path: "/ussd?" + raw, WantInbound: func(testing.TB, *schemas.UserMessage) {}, WantStatus: 200})
	meta, _ := in.TransportMetadata["airtel"].(map[string]any)
	if in.Session() != schemas.SessionClose || in.To() != "*167*7#" || in.From() != "254700000000" || meta["clean"] != "cleann" || meta["error"] != "523" {
		b, _ := in.MarshalJSON()
		t.Errorf("production cleanup: %s", b)
	}
	// Expiry: 4 s after its start a session is gone, however busy.
	started := time.Now()
	e.Call(t, 0, transporttest.Case{Path: "/ussd", Query: q("exp", "121"), Reply: reply(false), WantStatus: 200})
	e.WaitSessionTable(t, 1, "shared-airtel")
	for time.Since(started) < 3*time.Second {
		in = e.Call(t, 1, transporttest.Case{Path: "/ussd", Query: q("exp", "1"), Reply: reply(false), WantStatus: 200})
		if in.Session() != schemas.SessionResume || in.To() != "*121#" {
			t.Fatalf("busy session: %s %s", in.Session(), in.To())
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Until(started.Add(5 * time.Second)))
	in = e.Call(t, 0, transporttest.Case{Path: "/ussd", Query: q("exp", "121"), Reply: reply(true), WantStatus: 200, WantHeader: map[string]string{"Freeflow": "FB"}})
	if in.Session() != schemas.SessionNew || in.To() != "*121#" {
		t.Errorf("after expiry: %s %s", in.Session(), in.To())
	}
}

func TestAirtelConfigErrors(t *testing.T) {
	cases := map[string]string{
		"web_path":             "name: a, kind: airtel_ussd, transport_name: a",
		"airtel_username":      "name: a, kind: airtel_ussd, transport_name: a, web_path: /x, airtel_password: p",
		"to_addr_pattern":      "name: a, kind: airtel_ussd, transport_name: a, web_path: /x, to_addr_pattern: '(*'",
		"session_key_prefix":   "name: a, kind: airtel_ussd, transport_name: a, web_path: /x, session_key_prefix: 'vumi.transports.airtel:a'",
		"ussd_session_timeout": "name: a, kind: airtel_ussd, transport_name: a, web_path: /x, ussd_session_timeout: -5",
		"airtel_charge_amount": "name: a, kind: airtel_ussd, transport_name: a, web_path: /x, airtel_charge_amount: -1",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
}

// FuzzParseRequest: no parameters make the Flares request reader panic;
// what it accepts has every field its kind needs.
func FuzzParseRequest(f *testing.F) {
	f.Add("SessionID=s&MSISDN=1&MSC=m&input=121")
	f.Add("msisdn=254&clean=cleann&error=523&SessionID=1&MSC=2&=&=en&=postpaid")
	f.Add("clean=&userid=u&password=p")
	f.Add("SessionID=%zz")
	f.Fuzz(func(t *testing.T, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			for _, auth := range []bool{true, false} {
				req, errs := airtel.ParseRequest(form, strict, auth)
				if errs != nil {
					continue
				}
				need := []string{"SessionID", "MSISDN", "MSC", "input"}
				if req.Cleanup {
					need = []string{"SessionID", "msisdn", "clean", "error"}
				}
				if auth {
					need = append(need, "userid", "password")
				}
				for _, k := range need {
					if _, ok := form[k]; !ok {
						t.Fatalf("accepted without %s", k)
					}
				}
				if _, c := form["clean"]; c != req.Cleanup {
					t.Fatal("clean-up not recognised by its parameter")
				}
			}
		}
	})
}

// TestAirtelSharedPrefixConfig: two transports sharing a session table
// through session_key_prefix form a valid deployment, whose graph has one
// table topic read and written by both.
func TestAirtelSharedPrefixConfig(t *testing.T) {
	cfg, err := topology.Load("c.yaml", []byte(`workers:
  - {name: a1, kind: airtel_ussd, transport_name: airtel_1, web_path: /x, session_key_prefix: foo}
  - {name: a2, kind: airtel_ussd, transport_name: airtel_2, web_path: /y, session_key_prefix: foo}
  - {name: a3, kind: airtel_ussd, transport_name: airtel_3, web_path: /z}
`), kinds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]string{}
	for _, w := range cfg.Workers {
		for _, s := range w.Config.IO(w.Name).Produces {
			if strings.HasSuffix(s.Topic, ".ussd_sessions") {
				tables[s.Topic] = append(tables[s.Topic], w.Name)
			}
		}
	}
	if fmt.Sprint(tables) != "map[airtel_3.ussd_sessions:[a3] foo.ussd_sessions:[a1 a2]]" {
		t.Errorf("session tables %v", tables)
	}
}
