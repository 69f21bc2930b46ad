package truteq

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/connectors/tcpclient/tcptest"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(Kind()) }

const within = 30 * time.Second

func workerYAML(name string, port int, extra string) string {
	return fmt.Sprintf(`
  - name: %s
    kind: vumi.transports.truteq.truteq.TruteqTransport
    transport_name: truteq
    username: vumi
    password: s3cret
    twisted_endpoint: tcp:host=127.0.0.1:port=%d
    publish_status: true
    initial_reconnect_delay: 0.1
    max_reconnect_delay: 0.5
%s`, name, port, extra)
}

func TestMain(m *testing.M) {
	sendWait = 3 * time.Second
	os.Exit(m.Run())
}

func start(t *testing.T, srv *fakeSSMI, extra string) *chattest.Env {
	t.Helper()
	return chattest.Start(t, kinds(), "truteq", workerYAML("truteq", srv.Port(), extra))
}

func genfieldsOf(m *schemas.UserMessage) map[string]any {
	tq, _ := m.HelperMetadata["truteq"].(map[string]any)
	g, _ := tq["genfields"].(map[string]any)
	return g
}

func TestLoginAndFullSession(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	login := srv.request(func(r request) bool { return r.id == "1" })
	if strings.Join(login.fields, ",") != "vumi,s3cret" {
		t.Errorf("LOGIN fields %q", login.fields)
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Status == schemas.StatusOK && s.Type == "connected" }, within)

	// A new session: the USSD code becomes to_addr (with a '#'), no content.
	srv.ussd(p, "27831234567", "1", "*120*44")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionNew }, within)
	if in.From() != "+27831234567" || in.To() != "*120*44#" || in.Content != nil || in.Transport() != "truteq" {
		t.Errorf("new session inbound %s", chattest.JSON(t, in))
	}
	if *in.TransportType != "ussd" || len(genfieldsOf(in)) != 0 || in.HelperMetadata["truteq"] == nil {
		t.Errorf("new session inbound %s", chattest.JSON(t, in))
	}

	// The application's reply continues the session: type 2; line breaks
	// become \n (a \r would end the SSMI line), commas pass.
	reply := in.Reply("Menu:\r\n1. Yes, please\r2. No", true)
	e.SendOutbound(reply)
	sent := srv.request(func(r request) bool { return r.id == "110" })
	if want := []string{"27831234567", "2", "Menu:\n1. Yes, please\n2. No"}; strings.Join(sent.fields, "|") != strings.Join(want, "|") {
		t.Errorf("SEND_USSD_MESSAGE fields %q, want %q", sent.fields, want)
	}
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == reply.MessageID }, within)
	if ack.EventType != schemas.EventAck {
		t.Errorf("event for the reply %s", chattest.JSON(t, ack))
	}

	// The user answers: resume with content, same to_addr.
	srv.ussd(p, "27831234567", "2", "1")
	res := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	if res.From() != "+27831234567" || res.To() != "*120*44#" || res.Text() != "1" {
		t.Errorf("resume inbound %s", chattest.JSON(t, res))
	}

	// The application ends the session: type 3.
	end := res.Reply("Bye", false)
	e.SendOutbound(end)
	srv.request(func(r request) bool {
		return r.id == "110" && len(r.fields) == 3 && r.fields[1] == "3" && r.fields[2] == "Bye"
	})
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == end.MessageID && ev.EventType == schemas.EventAck
	}, within)

	// The network reports the end: close, and the session is cleared.
	srv.ussd(p, "27831234567", "3", "")
	cl := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionClose }, within)
	if cl.To() != "*120*44#" || cl.From() != "+27831234567" {
		t.Errorf("close inbound %s", chattest.JSON(t, cl))
	}
	srv.ussd(p, "27831234567", "2", "late")
	f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "no USSD session for +27831234567") }, within)
	if string(f.Raw) != "SSMI,110,27831234567,2,0,late" {
		t.Errorf("failure raw %q", f.Raw)
	}

	// Timeout (type 4) also closes; a session started with a '#' keeps it.
	srv.ussd(p, "27830000001", "1", "*99#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "+27830000001" && m.To() == "*99#" }, within)
	srv.ussd(p, "27830000001", "4", "")
	e.WaitInbound(func(m *schemas.UserMessage) bool {
		return m.From() == "+27830000001" && m.Session() == schemas.SessionClose
	}, within)

	// A message with no session_event goes as a response (type 2).
	none := &schemas.UserMessage{MessageID: "no-session-event", ToAddr: schemas.String("+27830000002"), Content: schemas.String("hi"),
		TransportName: schemas.String("truteq"), TransportType: schemas.String("ussd"), Timestamp: schemas.Now()}
	e.SendOutbound(none)
	srv.request(func(r request) bool { return r.id == "110" && r.fields[0] == "27830000002" && r.fields[1] == "2" })
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == "no-session-event" && ev.EventType == schemas.EventAck
	}, within)

	// ISO-8859-1: é is sent as one byte and comes back as é.
	srv.ussd(p, "27830000003", "1", "*1#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "+27830000003" }, within)
	p.Write([]byte("SSMI,110,27830000003,2,0,caf\xe9\r"))
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "+27830000003" && m.Text() == "café" }, within)

	// Content ISO-8859-1 cannot hold is nacked, not mangled.
	bad := &schemas.UserMessage{MessageID: "not-latin1", ToAddr: schemas.String("27830000004"), Content: schemas.String("snow ☃"),
		TransportName: schemas.String("truteq"), TransportType: schemas.String("ussd"), Timestamp: schemas.Now()}
	e.SendOutbound(bad)
	nack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "not-latin1" }, within)
	if nack.EventType != schemas.EventNack || !strings.Contains(*nack.NackReason, "ISO-8859-1") {
		t.Errorf("event for unencodable content %s", chattest.JSON(t, nack))
	}
	// The server's LOGOUT is reported as degraded; SEQ and DR are only logged.
	srv.send(p, "SSMI,100,27830000004,12")
	srv.send(p, "SSMI,199,10.0.0.1")
	st := e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "remote_logout" }, within)
	if st.Status != schemas.StatusDegraded || !strings.Contains(st.Message, "10.0.0.1") || st.Component != "ssmi" {
		t.Errorf("remote logout status %+v", st)
	}
	if srv.ConnCount() != 1 {
		t.Errorf("%d connections, want 1", srv.ConnCount())
	}
}

func TestExtendedUSSDGenfields(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	srv.send(p, "SSMI,111,27000000000,1,1,::3,*678#")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "+27000000000" }, within)
	want := map[string]any{"IMSI": "", "Subscriber Type": "", "OperatorID": "3", "SessionID": "", "ValiPort": ""}
	if g, _ := json.Marshal(genfieldsOf(in)); string(g) != mustJSON(want) {
		t.Errorf("genfields %s, want %s", g, mustJSON(want))
	}
	if in.To() != "*678#" || in.Session() != schemas.SessionNew {
		t.Errorf("inbound %s", chattest.JSON(t, in))
	}
	srv.send(p, "SSMI,111,27000000000,2,1,655010000000001:1:3:abc:9,2")
	res := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	want = map[string]any{"IMSI": "655010000000001", "Subscriber Type": "1", "OperatorID": "3", "SessionID": "abc", "ValiPort": "9"}
	if g, _ := json.Marshal(genfieldsOf(res)); string(g) != mustJSON(want) || res.Text() != "2" {
		t.Errorf("resume %s", chattest.JSON(t, res))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMalformedFramesKeepTheConnection(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	cases := []struct{ line, reason string }{
		{"GARBAGE", `header "GARBAGE"`},
		{"SSMI,999,x", `unknown command id "999"`},
		{"SSMI,110,27831234567,1", "too few fields for USSD_MESSAGE (expected 4, got 2)"},
		{"SSMI,110,27831234567,7,0,*1#", `USSD type "7"`},
		{"SSMI,103,27831234567,1,hello", "unsupported SSMI command MO"},
	}
	for _, c := range cases {
		srv.send(p, c.line)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, c.reason) }, within)
		if string(f.Raw) != c.line {
			t.Errorf("failure for %q keeps raw %q", c.line, f.Raw)
		}
	}
	// An over-long line is discarded up to its delimiter.
	p.Write([]byte("SSMI,110,27831234567,1,0," + strings.Repeat("x", maxLine+10) + "\r"))
	e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "line longer than") }, within)
	// The connection still works.
	srv.ussd(p, "27831234567", "1", "*120#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.To() == "*120#" }, within)
	if srv.ConnCount() != 1 {
		t.Errorf("%d connections after malformed frames, want 1", srv.ConnCount())
	}
	if n := len(e.Inbound()); n != 1 {
		t.Errorf("%d inbound messages, want 1", n)
	}
}

func TestLinkChecksAndReconnect(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := start(t, srv, "    link_check_period: 1\n")
	p0 := srv.LoggedInPeer(0)
	// Link checks go out every second and are answered: the connection stays.
	srv.Wait("three link checks", func() bool {
		n := 0
		for _, r := range srv.Recs {
			if r.id == "3" && r.conn == 0 {
				n++
			}
		}
		return n >= 3
	})
	if srv.ConnCount() != 1 {
		t.Fatalf("%d connections while link checks were answered", srv.ConnCount())
	}

	// The server drops the connection: status down, reconnect, login again.
	dropped := time.Now()
	_ = p0.C.Close()
	e.WaitStatus(func(s *schemas.Status) bool { return s.Status == schemas.StatusDown && s.Type == "connection_lost" }, within)
	p1 := srv.LoggedInPeer(1)
	e.WaitStatus(func(s *schemas.Status) bool {
		return s.Status == schemas.StatusOK && s.Type == "connected" && s.Timestamp.After(dropped)
	}, within)
	srv.ussd(p1, "27831234567", "1", "*120#")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.To() == "*120#" }, within)
	reply := in.Reply("after reconnect", true)
	e.SendOutbound(reply)
	r := srv.request(func(r request) bool { return r.id == "110" })
	if r.conn != 1 {
		t.Errorf("reply sent on connection %d, want 1", r.conn)
	}

	// Link checks go unanswered: the transport gives up on the link and
	// reconnects.
	srv.silentLinkChecks.Store(true)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "link_check_failed" && s.Status == schemas.StatusDown }, within)
	srv.silentLinkChecks.Store(false)
	srv.LoggedInPeer(2)
}

func TestLoginRefusedAndNackWhileDown(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "other-password")
	e := start(t, srv, "")
	st := e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "login_failed" }, within)
	if st.Status != schemas.StatusDown || strings.Contains(st.Message, "s3cret") {
		t.Errorf("login_failed status %+v", st)
	}
	// It keeps trying.
	srv.Wait("a second login attempt", func() bool { return len(srv.Conns) >= 2 })
	// Nothing can be sent: nacked after the send wait.
	m := &schemas.UserMessage{MessageID: "while-down", ToAddr: schemas.String("27830000004"), Content: schemas.String("x"),
		TransportName: schemas.String("truteq"), TransportType: schemas.String("ussd"), Timestamp: schemas.Now()}
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "while-down" }, within)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "not connected") {
		t.Errorf("event %s", chattest.JSON(t, ev))
	}
	if len(srv.requests("110")) != 0 {
		t.Errorf("a message was sent without a login")
	}
}

func TestSessionTimeout(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	sessionGrace = 100 * time.Millisecond
	t.Cleanup(func() { sessionGrace = 3 * time.Second })
	e := start(t, srv, "    ussd_session_lifetime: 2\n")
	p := srv.LoggedInPeer(0)
	srv.ussd(p, "27831234567", "1", "*120#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionNew }, within)
	srv.ussd(p, "27831234567", "2", "1")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	time.Sleep(2500 * time.Millisecond) // past ussd_session_lifetime
	srv.ussd(p, "27831234567", "2", "2")
	f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "no USSD session") }, within)
	if !strings.Contains(f.Reason, "ussd_session_lifetime 2s") || string(f.Key) != "+27831234567" {
		t.Errorf("failure %+v", f)
	}
	if n := len(e.Inbound()); n != 2 {
		t.Errorf("%d inbound messages, want 2", n)
	}
}

func TestSessionAcrossInstances(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := chattest.Start(t, kinds(), "truteq", workerYAML("truteq0", srv.Port(), "")+workerYAML("truteq1", srv.Port(), ""))
	p0, p1 := srv.LoggedInPeer(0), srv.LoggedInPeer(1)
	srv.ussd(p0, "27831234567", "1", "*120*7")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionNew }, within)
	// The other instance's connection carries the rest of the session.
	srv.ussd(p1, "27831234567", "2", "yes")
	res := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	if res.To() != "*120*7#" || res.Text() != "yes" || res.From() != "+27831234567" {
		t.Errorf("resume on the other instance %s", chattest.JSON(t, res))
	}
	if res.MessageID == in.MessageID {
		t.Error("same message id")
	}
	srv.ussd(p1, "27831234567", "3", "")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionClose && m.To() == "*120*7#" }, within)
	// The application's reply goes out on whichever connection, acked.
	reply := res.Reply("bye", false)
	e.SendOutbound(reply)
	srv.request(func(r request) bool { return r.id == "110" && r.fields[2] == "bye" })
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, within)
}

func TestConfig(t *testing.T) {
	w := func(fields string) string { return transporttest.Worker("truteq_ussd", fields) }
	transporttest.WantConfigErrors(t, kinds(), [][2]string{
		{w("transport_name: t\npassword: p\n"), "key username: is required"},
		{w("transport_name: t\nusername: u\n"), "key password: is required"},
		{w("transport_name: t\nusername: u\npassword: p\nhost: h\n"), "host and port must be given together"},
		{w("transport_name: t\nusername: u\npassword: p\nhost: h\nport: 1\ntwisted_endpoint: tcp:h:1\n"), "not both"},
		{w("transport_name: t\nusername: u\npassword: p\nlink_check_period: -1\n"), "key link_check_period"},
		{w("transport_name: t\nusername: u\npassword: p\nussd_session_lifetime: -5\n"), "key ussd_session_lifetime"},
		{w("transport_name: t\nusername: u,x\npassword: p\n"), "key username: may not contain a comma"},
		{w("transport_name: t\nusername: u\npassword: p\nmax_reconnect_delay: 0.5\ninitial_reconnect_delay: 2\n"), "key max_reconnect_delay"},
	})
	cfg := &Config{}
	cfg.TransportName, cfg.Username, cfg.Password = "t", "u", "p"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "sms.truteq.com:50008" || cfg.LinkCheckPeriod != 60 || cfg.UssdSessionLifetime != 300 {
		t.Errorf("defaults: addr %s, link_check_period %d, ussd_session_lifetime %d", cfg.addr, cfg.LinkCheckPeriod, cfg.UssdSessionLifetime)
	}
	dep := &Config{Host: "example.org", Port: 1234}
	dep.TransportName, dep.Username, dep.Password = "t", "u", "p"
	if err := dep.Validate(); err != nil || dep.addr != "example.org:1234" {
		t.Errorf("deprecated host/port: %v %s", err, dep.addr)
	}
}

func TestStopsReadingWhileKafkaBlocks(t *testing.T) {
	srv := newFakeSSMI(t, "vumi", "s3cret")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	code := strings.Repeat("9", 16000)
	tcptest.StopsReadingWhileKafkaBlocks(t, e, 600, func(i int) {
		srv.ussd(p, fmt.Sprintf("2783%07d", i), "1", code)
	}, (*schemas.UserMessage).From)
}
