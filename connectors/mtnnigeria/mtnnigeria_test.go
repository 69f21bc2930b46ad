package mtnnigeria

import (
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

func TestMain(m *testing.M) {
	sendWait = 3 * time.Second
	os.Exit(m.Run())
}

func workerYAML(name string, port int, extra string) string {
	return fmt.Sprintf(`
  - name: %s
    kind: vumi.transports.mtn_nigeria.mtn_nigeria_ussd.MtnNigeriaUssdTransport
    transport_name: mtn
    server_hostname: 127.0.0.1
    server_port: %d
    username: root
    password: toor
    application_id: "1029384756"
    publish_status: true
    initial_reconnect_delay: 0.1
    max_reconnect_delay: 0.5
%s`, name, port, extra)
}

func start(t *testing.T, srv *fakeMTN, extra string) *chattest.Env {
	t.Helper()
	return chattest.Start(t, kinds(), "mtn", workerYAML("mtn", srv.Port(), extra))
}

const sid = "1234567890123456"

func TestLoginAndFullSession(t *testing.T) {
	srv := newFakeMTN(t, "root", "toor", "1029384756")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	auth := srv.packet(func(g got) bool { return g.typ == "AUTHRequest" })
	if strings.Join(auth.order, ",") != "requestId,userName,passWord,applicationId" || len(auth.sessionID) != 16 || strings.Trim(auth.sessionID, "0123456789") != "" {
		t.Errorf("AUTHRequest %+v", auth)
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Status == schemas.StatusOK && s.Type == "connected" }, within)
	// An enquire link goes out at once after the login.
	srv.packet(func(g got) bool { return g.typ == "ENQRequest" && g.fields["enqCmd"] == "ENQUIRELINK" })

	// New session: userdata is the USSD code.
	srv.ussd(p, sid, "0001", "2348031234567", "1", "0", "*123#")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionNew }, within)
	meta, _ := in.TransportMetadata["mtn_nigeria_ussd"].(map[string]any)
	if in.From() != "2348031234567" || in.To() != "*123#" || in.Content != nil || *in.Provider != "mtn_nigeria" || *in.TransportType != "ussd" {
		t.Errorf("new inbound %s", chattest.JSON(t, in))
	}
	wantMeta := map[string]string{"session_id": sid, "requestId": "0001", "clientId": "441", "starCode": "123", "phase": "2", "dcs": "15"}
	if len(meta) != len(wantMeta) {
		t.Errorf("transport_metadata %v, want %v", meta, wantMeta)
	}
	for k, v := range wantMeta {
		if meta[k] != v {
			t.Errorf("transport_metadata.mtn_nigeria_ussd.%s = %v, want %s", k, meta[k], v)
		}
	}

	// The reply continues: msgtype 2, EndofSession 0, in the session.
	reply := in.Reply("Pick <one> & go: é ☃", true)
	e.SendOutbound(reply)
	r := srv.packet(func(g got) bool { return g.typ == "USSDResponse" })
	if r.sessionID != sid || strings.Join(r.order, ",") != "requestId,msisdn,starCode,clientId,phase,msgtype,dcs,userdata,EndofSession,delvrpt" {
		t.Errorf("USSDResponse %+v", r)
	}
	for k, v := range map[string]string{"requestId": "0001", "msisdn": "2348031234567", "starCode": "123", "clientId": "441", "phase": "2", "msgtype": "2", "dcs": "15", "userdata": "Pick <one> & go: é ☃", "EndofSession": "0", "delvrpt": "0"} {
		if r.fields[k] != v {
			t.Errorf("USSDResponse %s = %q, want %q", k, r.fields[k], v)
		}
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, within)

	// The user answers: msgtype 4, EndofSession 0 resumes.
	srv.ussd(p, sid, "0002", "2348031234567", "4", "0", "1")
	res := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	if res.To() != "*123#" || res.Text() != "1" {
		t.Errorf("resume %s", chattest.JSON(t, res))
	}
	// The application ends it: msgtype 6, EndofSession 1.
	end := res.Reply("Thanks", false)
	e.SendOutbound(end)
	srv.packet(func(g got) bool {
		return g.typ == "USSDResponse" && g.fields["userdata"] == "Thanks" && g.fields["msgtype"] == "6" && g.fields["EndofSession"] == "1" && g.fields["requestId"] == "0002"
	})

	// Another session, which the user ends: close, and the transport answers
	// with user_termination_response.
	const sid2 = "6543210987654321"
	srv.ussd(p, sid2, "0010", "2348030000000", "1", "0", "*5#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "2348030000000" }, within)
	srv.ussd(p, sid2, "0011", "2348030000000", "4", "1", "")
	cl := e.WaitInbound(func(m *schemas.UserMessage) bool {
		return m.From() == "2348030000000" && m.Session() == schemas.SessionClose
	}, within)
	if cl.To() != "*5#" || cl.Text() != "" {
		t.Errorf("close %s", chattest.JSON(t, cl))
	}
	term := srv.packet(func(g got) bool { return g.typ == "USSDResponse" && g.sessionID == sid2 })
	if term.fields["userdata"] != "Session Ended" || term.fields["msgtype"] != "6" || term.fields["EndofSession"] != "1" || term.fields["requestId"] != "0011" {
		t.Errorf("termination response %+v", term.fields)
	}
	// A missing EndofSession means the end, as in Vumi.
	const sid3 = "1111111111111111"
	srv.ussd(p, sid3, "0020", "2348030000001", "1", "0", "*6#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "2348030000001" }, within)
	srv.ussd(p, sid3, "0021", "2348030000001", "4", "", "x")
	e.WaitInbound(func(m *schemas.UserMessage) bool {
		return m.From() == "2348030000001" && m.Session() == schemas.SessionClose
	}, within)

	// A reply without the session's metadata is nacked and the server told.
	bad := &schemas.UserMessage{MessageID: "no-meta", ToAddr: schemas.String("2348030000002"), Content: schemas.String("x"),
		InReplyTo: schemas.String("orig"), TransportName: schemas.String("mtn"), Timestamp: schemas.Now(),
		TransportMetadata: schemas.Metadata{"mtn_nigeria_ussd": map[string]any{"session_id": sid3}}}
	e.SendOutbound(bad)
	nack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "no-meta" }, within)
	if nack.EventType != schemas.EventNack || !strings.Contains(*nack.NackReason, "(208) Invalid Message: Required message transport metadata fields missing in outbound message: ['clientId', 'requestId', 'starCode']") {
		t.Errorf("nack %s", chattest.JSON(t, nack))
	}
	errPkt := srv.packet(func(g got) bool { return g.typ == "USSDError" && g.sessionID == sid3 })
	if errPkt.fields["errorCode"] != "208" || errPkt.fields["requestId"] != "orig" {
		t.Errorf("USSDError %+v", errPkt.fields)
	}
	if srv.ConnCount() != 1 {
		t.Errorf("%d connections, want 1", srv.ConnCount())
	}
}

func TestMalformedPackets(t *testing.T) {
	srv := newFakeMTN(t, "root", "toor", "1029384756")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	cases := []struct {
		body, reason string
	}{
		{"<USSDRequest><requestId>7</requestId>", "malformed packet body"},
		{"<Bogus><requestId>8</requestId></Bogus>", "Packet of an unknown type received: Bogus"},
		{body("USSDRequest", "requestId", "9", "msisdn", "1"), "Missing mandatory fields in received packet: ['clientId', 'dcs', 'msgtype', 'phase', 'starCode', 'userdata']"},
		{body("ENQRequest", "requestId", "10", "enqCmd", "ENQUIRELINK", "extra", "1"), "Unexpected fields in received packet: ['extra']"},
	}
	for i, c := range cases {
		s := fmt.Sprintf("%016d", 100+i)
		srv.send(p, s, c.body)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, c.reason) }, within)
		if !strings.HasSuffix(string(f.Raw), c.body) {
			t.Errorf("failure raw %q", f.Raw)
		}
		g := srv.packet(func(g got) bool { return g.typ == "USSDError" && g.sessionID == s })
		if g.fields["errorCode"] != "208" {
			t.Errorf("%q: USSDError %v", c.body, g.fields)
		}
	}
	// The connection survived; a good request still works.
	srv.ussd(p, sid, "1", "2348031234567", "1", "0", "*1#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.To() == "*1#" }, within)
	if srv.ConnCount() != 1 {
		t.Fatalf("%d connections after malformed bodies, want 1", srv.ConnCount())
	}
	// A header whose length is not a number loses the framing: the
	// connection is dropped and made again.
	p.Write([]byte("1234567890123456garbage-length!!<x/>"))
	e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "malformed packet header") }, within)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "connection_lost" }, within)
	srv.LoggedInPeer(1)
}

func TestEnquireLinksAndReconnect(t *testing.T) {
	srv := newFakeMTN(t, "root", "toor", "1029384756")
	e := start(t, srv, "    enquire_link_interval: 1\n    timeout_period: 1\n")
	p0 := srv.LoggedInPeer(0)
	srv.Wait("three enquire links", func() bool {
		n := 0
		for _, g := range srv.Recs {
			if g.typ == "ENQRequest" && g.conn == 0 {
				n++
			}
		}
		return n >= 3
	})
	// The server's own enquire link is answered with its request id.
	srv.send(p0, sid, body("ENQRequest", "requestId", "777", "enqCmd", "ENQUIRELINK"))
	rsp := srv.packet(func(g got) bool { return g.typ == "ENQResponse" })
	if rsp.fields["requestId"] != "777" || rsp.fields["enqCmd"] != "ENQUIRELINKRSP" || rsp.sessionID != sid {
		t.Errorf("ENQResponse %+v", rsp)
	}
	if srv.ConnCount() != 1 {
		t.Fatalf("%d connections while enquire links were answered", srv.ConnCount())
	}
	// The server hangs up: down, then a new login.
	dropped := time.Now()
	_ = p0.C.Close()
	e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "connection_lost" && s.Status == schemas.StatusDown }, within)
	p1 := srv.LoggedInPeer(1)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "connected" && s.Timestamp.After(dropped) }, within)
	srv.ussd(p1, sid, "1", "2348031234567", "1", "0", "*1#")
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.To() == "*1#" }, within)
	e.SendOutbound(in.Reply("hi", true))
	if g := srv.packet(func(g got) bool { return g.typ == "USSDResponse" }); g.conn != 1 {
		t.Errorf("reply on connection %d", g.conn)
	}
	// Enquire links go unanswered: timeout, reconnect.
	srv.silentEnquireLinks.Store(true)
	e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "enquire_link_timeout" }, within)
	srv.silentEnquireLinks.Store(false)
	srv.LoggedInPeer(2)
}

func TestLoginRefused(t *testing.T) {
	srv := newFakeMTN(t, "root", "other", "1029384756")
	e := start(t, srv, "")
	st := e.WaitStatus(func(s *schemas.Status) bool { return s.Type == "login_failed" }, within)
	if !strings.Contains(st.Message, "(001) Invalid User Name Password") || strings.Contains(st.Message, "toor") {
		t.Errorf("status %+v", st)
	}
	srv.Wait("a second attempt", func() bool { return len(srv.Conns) >= 2 })
	m := &schemas.UserMessage{MessageID: "down", ToAddr: schemas.String("234"), Content: schemas.String("x"), TransportName: schemas.String("mtn"), Timestamp: schemas.Now(),
		TransportMetadata: schemas.Metadata{"mtn_nigeria_ussd": map[string]any{"session_id": sid, "clientId": "1", "requestId": "2", "starCode": "3"}}}
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "down" }, within)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "Response failed") {
		t.Errorf("event %s", chattest.JSON(t, ev))
	}
}

func TestSessionTimeoutAndAcrossInstances(t *testing.T) {
	srv := newFakeMTN(t, "root", "toor", "1029384756")
	sessionGrace = 500 * time.Millisecond
	t.Cleanup(func() { sessionGrace = 3 * time.Second })
	e := chattest.Start(t, kinds(), "mtn", workerYAML("mtn0", srv.Port(), "    session_timeout_period: 3\n")+workerYAML("mtn1", srv.Port(), "    session_timeout_period: 3\n"))
	p0, p1 := srv.LoggedInPeer(0), srv.LoggedInPeer(1)
	srv.ussd(p0, sid, "1", "2348031234567", "1", "0", "*123*4#")
	e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionNew }, within)
	srv.ussd(p1, sid, "2", "2348031234567", "4", "0", "2")
	res := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Session() == schemas.SessionResume }, within)
	if res.To() != "*123*4#" || res.Text() != "2" {
		t.Errorf("resume on the other instance %s", chattest.JSON(t, res))
	}
	time.Sleep(3500 * time.Millisecond) // past session_timeout_period
	srv.ussd(p0, sid, "3", "2348031234567", "4", "0", "3")
	f := e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "no USSD session") }, within)
	if !strings.Contains(f.Reason, "session_timeout_period 3s") {
		t.Errorf("failure %s", f.Reason)
	}
	g := srv.packet(func(g got) bool { return g.typ == "USSDError" && g.sessionID == sid })
	if g.fields["errorCode"] != "207" || g.fields["requestId"] != "3" {
		t.Errorf("USSDError %+v", g.fields)
	}
}

func TestConfig(t *testing.T) {
	base := "transport_name: t\nserver_hostname: h\nserver_port: 1\nusername: u\npassword: p\napplication_id: a\n"
	w := func(fields string) string { return transporttest.Worker("mtn_nigeria_ussd", fields) }
	transporttest.WantConfigErrors(t, kinds(), [][2]string{
		{w("transport_name: t\nserver_port: 1\nusername: u\npassword: p\napplication_id: a\n"), "key server_hostname: is required"},
		{w("transport_name: t\nserver_hostname: h\nusername: u\npassword: p\napplication_id: a\n"), "key server_port: is required"},
		{w("transport_name: t\nserver_hostname: h\nserver_port: 1\npassword: p\napplication_id: a\n"), "key username: is required"},
		{w("transport_name: t\nserver_hostname: h\nserver_port: 1\nusername: u\npassword: p\n"), "key application_id: is required"},
		{w(strings.Replace(base, "server_port: 1\n", "", 1) + "server_port: 70000\n"), "key server_port"},
		{w(base + "enquire_link_interval: -1\n"), "key enquire_link_interval"},
		{w(base + "session_timeout_period: -1\n"), "key session_timeout_period"},
	})
	cfg := &Config{ServerHostname: "h", ServerPort: 1, Username: "u", Password: "p", ApplicationID: "a"}
	cfg.TransportName = "t"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.EnquireLinkInterval != 30 || cfg.TimeoutPeriod != 30 || *cfg.UserTerminationResponse != "Session Ended" || cfg.SessionTimeoutPeriod != 600 {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestStopsReadingWhileKafkaBlocks(t *testing.T) {
	srv := newFakeMTN(t, "root", "toor", "1029384756")
	e := start(t, srv, "")
	p := srv.LoggedInPeer(0)
	code := strings.Repeat("9", 16000)
	tcptest.StopsReadingWhileKafkaBlocks(t, e, 600, func(i int) {
		srv.ussd(p, fmt.Sprintf("%016d", i), "1", "2348030000000", "1", "0", code)
	}, func(m *schemas.UserMessage) string {
		meta, _ := m.TransportMetadata["mtn_nigeria_ussd"].(map[string]any)
		return fmt.Sprint(meta["session_id"])
	})
}
