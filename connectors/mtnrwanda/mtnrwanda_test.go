package mtnrwanda_test

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/mtnrwanda"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(mtnrwanda.Kind()) }

const config = `
  - name: mtn
    kind: vumi.transports.mtn_rwanda.MTNRwandaUSSDTransport
    transport_name: mtn
    twisted_endpoint: tcp:port=${WEB_PORT}:interface=127.0.0.1
    timeout: 3
    web_path: /foo/
    publish_status: true
`

// callXML is a handleUSSD call (or another method) with a struct of
// string members.
func callXML(method string, members map[string]string) string {
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<?xml version='1.0'?>\n<methodCall><methodName>" + method + "</methodName><params><param><value><struct>")
	for _, k := range keys {
		fmt.Fprintf(&b, "<member><name>%s</name><value><string>%s</string></value></member>", k, members[k])
	}
	b.WriteString("</struct></value></param></params></methodCall>")
	return b.String()
}

func req(tx, request string, drop ...string) map[string]string {
	m := map[string]string{"TransactionId": tx, "USSDServiceCode": "543", "USSDRequestString": request, "MSISDN": "275551234",
		"USSDEncoding": "GSM0338", "TransactionTime": "2013-07-05T22:58:47.565596"}
	for _, d := range drop {
		delete(m, d)
	}
	return m
}

type xvalue struct {
	String *string `xml:"string"`
	Int    *string `xml:"int"`
	Text   string  `xml:",chardata"`
	Struct *struct {
		Members []struct {
			Name  string `xml:"name"`
			Value xvalue `xml:"value"`
		} `xml:"member"`
	} `xml:"struct"`
}

// parseAnswer reads a method response's struct, or its fault.
func parseAnswer(t testing.TB, body string) (members map[string]string, fault map[string]string) {
	t.Helper()
	var r struct {
		Params []struct {
			Value xvalue `xml:"value"`
		} `xml:"params>param"`
		Fault *struct {
			Value xvalue `xml:"value"`
		} `xml:"fault"`
	}
	if err := xml.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	flat := func(v xvalue) map[string]string {
		out := map[string]string{}
		if v.Struct == nil {
			t.Fatalf("not a struct: %q", body)
		}
		for _, m := range v.Struct.Members {
			switch {
			case m.Value.String != nil:
				out[m.Name] = *m.Value.String
			case m.Value.Int != nil:
				out[m.Name] = *m.Value.Int
			default:
				out[m.Name] = m.Value.Text
			}
		}
		return out
	}
	if r.Fault != nil {
		return nil, flat(r.Fault.Value)
	}
	if len(r.Params) != 1 {
		t.Fatalf("answer %q has %d params", body, len(r.Params))
	}
	return flat(r.Params[0].Value), nil
}

func wantFault(code, text string) func(testing.TB, string) {
	return func(t testing.TB, body string) {
		_, f := parseAnswer(t, body)
		if f == nil || f["faultCode"] != code || !strings.Contains(f["faultString"], text) {
			t.Errorf("answer %q, want fault %s %q", body, code, text)
		}
	}
}

func step(name, tx, request string, ev schemas.SessionEvent, content *string, reply string, close bool, action string) transporttest.Case {
	return transporttest.Case{
		Name: name, Method: http.MethodPost, Path: "/foo/", Body: callXML("handleUSSD", req(tx, request)), ContentType: "text/xml",
		WantInbound: func(t testing.TB, m *schemas.UserMessage) {
			meta, _ := m.TransportMetadata["mtn_rwanda_ussd"].(map[string]any)
			if m.Session() != ev || m.From() != "275551234" || m.To() != "543" || *m.TransportType != "ussd" ||
				(content == nil) != (m.Content == nil) || (content != nil && m.Text() != *content) ||
				meta["transaction_id"] != tx || meta["transaction_time"] != "2013-07-05T22:58:47.565596" {
				b, _ := m.MarshalJSON()
				t.Errorf("inbound %s", b)
			}
		},
		Reply:      transporttest.Reply(reply, !close),
		WantStatus: 200, WantHeader: map[string]string{"Content-Type": "text/xml; charset=utf-8"},
		Check: func(t testing.TB, body string) {
			got, fault := parseAnswer(t, body)
			if fault != nil {
				t.Fatalf("fault %v", fault)
			}
			at, err := time.Parse("2006-01-02T15:04:05.000000", got["TransactionTime"])
			if err != nil || time.Since(at) > time.Hour {
				t.Errorf("TransactionTime %q: %v", got["TransactionTime"], err)
			}
			delete(got, "TransactionTime")
			want := map[string]string{"MSISDN": "275551234", "TransactionId": tx, "USSDEncoding": "GSM0338",
				"USSDResponseString": reply, "USSDServiceCode": "543", "action": action}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("answer %v, want %v", got, want)
			}
		},
	}
}

func TestMTNRwanda(t *testing.T) {
	e := transporttest.Start(t, kinds(), "mtn", config)
	resumed := "1"
	transporttest.Run(t, e, []transporttest.Case{
		step("a new transaction starts a session", "0001", "14321*1000#", schemas.SessionNew, nil, "Welcome", false, "notify"),
		step("the transaction resumes it", "0001", "1", schemas.SessionResume, &resumed, "Test message", true, "end"),
		step("after the end the transaction starts anew", "0001", "14321*1000#", schemas.SessionNew, nil, "Again", false, "notify"),
		{Name: "missing parameters", Method: http.MethodPost, Path: "/foo/", Body: callXML("handleUSSD", req("0002", "x", "TransactionTime", "MSISDN")),
			WantStatus: 200, Check: wantFault("8002", "4001: Missing Parameters: TransactionTime, MSISDN")},
		{Name: "unknown procedure", Method: http.MethodPost, Path: "/foo/", Body: callXML("handleSMS", req("0002", "x")),
			WantStatus: 200, Check: wantFault("8001", "procedure handleSMS not found")},
		{Name: "not XML-RPC", Method: http.MethodPost, Path: "/foo/", Body: "<methodCall><methodName>handleUSSD",
			WantStatus: 400, Check: wantFault("8002", "invalid XML-RPC call")},
		{Name: "parameter not a struct", Method: http.MethodPost, Path: "/foo/", Body: "<methodCall><methodName>handleUSSD</methodName><params><param><value>x</value></param></params></methodCall>",
			WantStatus: 400, Check: wantFault("8002", "must be a struct")},
		{Name: "GET", Path: "/foo/", WantStatus: 405, Check: wantFault("8002", "POST")},
		{Name: "no reply within timeout", Method: http.MethodPost, Path: "/foo/", Body: callXML("handleUSSD", req("0003", "x")),
			WantInbound: func(testing.TB, *schemas.UserMessage) {}, WantStatus: 200, Check: wantFault("8002", "Request timed out.")},
	})

	// The call that timed out made the response status down.
	st := e.WaitStatus(func(st *schemas.Status) bool { return st.Component == "response" && st.Type == "timeout" }, 30*time.Second)
	if st.Status != schemas.StatusDown {
		t.Errorf("status %+v", st)
	}
	// A reply to the call that timed out, and a message that is no reply,
	// are nacked "Request not found".
	in := e.Inbound()
	late := in[len(in)-1].Reply("late", true)
	e.SendOutbound(late)
	push := schemas.NewUserMessage()
	push.ToAddr, push.Content = schemas.String("275551234"), schemas.String("outbound")
	e.SendOutbound(push)
	for _, id := range []string{late.MessageID, push.MessageID} {
		ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
		if ev.EventType != schemas.EventNack || ev.NackReason == nil || *ev.NackReason != mtnrwanda.NotFound {
			t.Errorf("event for %s: %+v", id, ev)
		}
	}
	// Answered replies are acked with their own ids.
	first := e.WaitEvent(func(ev *schemas.Event) bool { return ev.EventType == schemas.EventAck }, 30*time.Second)
	if first.SentMessageID == nil || *first.SentMessageID != first.UserMessageID || first.UserMessageID == in[0].MessageID {
		t.Errorf("ack %+v", first)
	}
}

// TestMTNRwandaAcrossInstancesAndExpiry: a transaction begun on one
// instance continues on the other; the reply to it may be consumed by
// either, and is answered by the instance holding the call. A session
// ends session_timeout_period after its start.
func TestMTNRwandaAcrossInstancesAndExpiry(t *testing.T) {
	e := transporttest.StartInstances(t, kinds(), "mtn", 2, `
  - name: mtn{i}
    kind: mtn_rwanda_ussd
    transport_name: mtn
    host: 127.0.0.1
    port: ${PORT{i}}
    web_path: /foo/
    session_timeout_period: 3
`)
	started := time.Now()
	c := step("", "tx", "*1#", schemas.SessionNew, nil, "menu", false, "notify")
	e.Call(t, 0, c)
	e.WaitSessionTable(t, 1, "mtn")
	one := "1"
	e.Call(t, 1, step("", "tx", "1", schemas.SessionResume, &one, "more", false, "notify"))
	time.Sleep(time.Until(started.Add(4 * time.Second)))
	e.Call(t, 1, step("", "tx", "2", schemas.SessionNew, nil, "anew", true, "end"))
}

func TestMTNRwandaConfigErrors(t *testing.T) {
	cases := map[string]string{
		"twisted_endpoint":       "name: a, kind: mtn_rwanda_ussd, transport_name: a, web_path: /x",
		"web_path":               "name: a, kind: mtn_rwanda_ussd, transport_name: a, twisted_endpoint: 'tcp:port=0'",
		"timeout":                "name: a, kind: mtn_rwanda_ussd, transport_name: a, web_path: /x, twisted_endpoint: 'tcp:port=0', timeout: -1",
		"session_timeout_period": "name: a, kind: mtn_rwanda_ussd, transport_name: a, web_path: /x, twisted_endpoint: 'tcp:port=0', session_timeout_period: -1",
	}
	cases["twisted_endpoint: give either"] = "name: a, kind: mtn_rwanda_ussd, transport_name: a, web_path: /x, twisted_endpoint: 'tcp:port=0', port: 80"
	cases["twisted_endpoint: endpoint"] = "name: a, kind: mtn_rwanda_ussd, transport_name: a, web_path: /x, twisted_endpoint: 'unix:/tmp/x'"
	transporttest.ConfigErrors(t, kinds(), cases)
}

func TestAnswer(t *testing.T) {
	tx, req := "1", "x"
	now := time.Date(2013, 7, 5, 22, 58, 47, 565596000, time.UTC)
	got := mtnrwanda.Answer(map[string]*string{"TransactionId": &tx, "USSDRequestString": &req, "Nil": nil}, "hi", schemas.SessionNew, now)
	want := map[string]string{"TransactionId": "1", "USSDResponseString": "hi", "TransactionTime": "2013-07-05T22:58:47.565596", "action": "request"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Answer = %v", got)
	}
	if a := mtnrwanda.Answer(nil, "", schemas.SessionClose, now)["action"]; a != "end" {
		t.Errorf("close action %q", a)
	}
	if a := mtnrwanda.Answer(nil, "", "", now)["action"]; a != "notify" {
		t.Errorf("continue action %q", a)
	}
}

// FuzzParseCall: no body makes the handleUSSD reader panic; what it
// accepts has every required member.
func FuzzParseCall(f *testing.F) {
	f.Add(callXML("handleUSSD", req("0001", "14321*1000#")))
	f.Add(callXML("handleUSSD", req("0001", "x", "MSISDN")))
	f.Add("<methodCall><methodName>handleUSSD</methodName><params><param><value><struct><member><name>MSISDN</name><value><nil/></value></member></struct></value></param></params></methodCall>")
	f.Fuzz(func(t *testing.T, body string) {
		members, fault, status := mtnrwanda.ParseCall([]byte(body))
		if fault != nil {
			if status == 0 || members != nil {
				t.Fatalf("fault with status %d and members %v", status, members)
			}
			return
		}
		for _, k := range mtnrwanda.Required {
			if members[k] == nil {
				t.Fatalf("accepted without %s", k)
			}
		}
	})
}
