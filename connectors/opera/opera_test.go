package opera_test

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/opera"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(opera.Kind()) }

func worker(name, port, gateway, extra string) string {
	return fmt.Sprintf(`
  - name: %s
    kind: vumi.transports.opera.OperaTransport
    transport_name: opera
    url: %s/Gateway
    channel: channel
    service: service
    password: s3cret
    web_receipt_path: /receipt.xml
    web_receive_path: /receive.xml
    web_port: %s
    web_interface: 127.0.0.1
    outbound_timeout: 5
    publish_status: true
%s`, name, gateway, port, extra)
}

// call is an EAPIGateway.SendSMS call as the fake gateway decodes it:
// member name -> (type, text).
type call struct {
	method  string
	members map[string][2]string
}

// fakeOpera is Opera's XML-RPC gateway as its interface is described:
// EAPIGateway.SendSMS with one struct parameter, answering a struct with
// an Identifier, or a fault. SMSText picks the misbehaviour: "fault"
// answers an XML-RPC fault, "payment" HTTP 402, "garbage" something that
// is not XML-RPC.
type fakeOpera struct {
	*httptest.Server
	mu    sync.Mutex
	calls []call
	n     int
}

func newFake(t *testing.T) *fakeOpera {
	f := &fakeOpera{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeOpera) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var mc struct {
		Method  string `xml:"methodName"`
		Members []struct {
			Name  string `xml:"name"`
			Value struct {
				Inner []struct {
					XMLName xml.Name
					Text    string `xml:",chardata"`
				} `xml:",any"`
			} `xml:"value"`
		} `xml:"params>param>value>struct>member"`
	}
	if r.URL.Path != "/Gateway" || r.Header.Get("Content-Type") != "text/xml" || xml.Unmarshal(body, &mc) != nil {
		http.Error(w, "bad call", 400)
		return
	}
	c := call{method: mc.Method, members: map[string][2]string{}}
	for _, m := range mc.Members {
		if len(m.Value.Inner) == 1 {
			c.members[m.Name] = [2]string{m.Value.Inner[0].XMLName.Local, m.Value.Inner[0].Text}
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.n++
	n := f.n
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	switch c.members["SMSText"][1] {
	case "fault":
		io.WriteString(w, `<?xml version="1.0"?><methodResponse><fault><value><struct>
<member><name>faultCode</name><value><int>503</int></value></member>
<member><name>faultString</name><value><string>oh noes!</string></value></member>
</struct></value></fault></methodResponse>`)
	case "payment":
		w.WriteHeader(402)
	case "garbage":
		io.WriteString(w, "<html>busy</html>")
	default:
		fmt.Fprintf(w, `<?xml version="1.0"?><methodResponse><params><param><value><struct>
<member><name>Identifier</name><value><string>abc%d</string></value></member>
</struct></value></param></params></methodResponse>`, n)
	}
}

func (f *fakeOpera) wait(t *testing.T, text string) call {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, c := range f.calls {
			if c.members["SMSText"][1] == text {
				f.mu.Unlock()
				return c
			}
		}
		f.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no call with text %q", text)
	return call{}
}

func out(content string, meta schemas.Metadata) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String("9292"), schemas.String("27761234567"), schemas.String(content)
	m.TransportName, m.TransportType, m.TransportMetadata = schemas.String("opera"), schemas.String("sms"), meta
	return m
}

const postEvent = `<?xml version="1.0"?>
<!DOCTYPE bspostevent>
<bspostevent>
  <field name="MOReference" type = "string">282341913</field>
  <field name="ReceiveDate" type = "date">
         2010-06-04 15:51:25 +0000</field>
  <field name="Local" type = "string">*32323</field>
  <field name="MessageID" type = "string">%s</field>
  <field name="Remote" type = "string">+27831234567</field>
  <field name="MobileNetwork" type = "string">mtn-za</field>
  <field name="Text" type = "string">Hello World &amp; more</field>
  <field name="ServiceName" type = "string">Robertson&#8217;s Herb &amp; Spices Promo</field>
</bspostevent>`

func receipts(pairs ...string) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<!DOCTYPE receipts>\n<receipts>\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, `  <receipt>
    <msgid>26567958</msgid>
    <reference>%s</reference>
    <msisdn>+27123456789</msisdn>
    <status>%s</status>
    <timestamp>20080831T15:59:24</timestamp>
    <billed>NO</billed>
  </receipt>
`, pairs[i], pairs[i+1])
	}
	b.WriteString("</receipts>")
	return b.String()
}

func TestOpera(t *testing.T) {
	fake := newFake(t)
	e := transporttest.Start(t, kinds(), "opera", worker("opera", "${WEB_PORT}", fake.URL, ""))
	inbound := func(id string) func(t testing.TB, m *schemas.UserMessage) {
		return func(t testing.TB, m *schemas.UserMessage) {
			if m.MessageID != id || m.To() != "32323" || m.From() != "+27831234567" || m.Text() != "Hello World & more" ||
				*m.TransportType != "sms" || len(m.TransportMetadata) != 1 || m.TransportMetadata["provider"] != "mtn-za" {
				t.Errorf("inbound %+v", m)
			}
		}
	}
	doc := fmt.Sprintf(postEvent, "373736741")
	form := url.Values{"XmlMsg": {fmt.Sprintf(postEvent, "1487577162")}}.Encode()
	partial := strings.Replace(doc, `<field name="Local" type = "string">*32323</field>`, "", 1)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "inbound XML", Method: "POST", Path: "/receive.xml", Body: doc, WantInbound: inbound("373736741"),
			WantStatus: 200, WantBody: doc, WantHeader: map[string]string{"Content-Type": "text/xml; charset=utf8"}},
		{Name: "inbound form-encoded XmlMsg", Method: "POST", Path: "/receive.xml", Body: form, ContentType: "application/x-www-form-urlencoded",
			WantInbound: inbound("1487577162"), WantStatus: 200, WantBody: fmt.Sprintf(postEvent, "1487577162")},
		{Name: "no data", Method: "POST", Path: "/receive.xml", WantStatus: 400, WantBody: "XmlMsg missing."},
		{Name: "form without XmlMsg", Method: "POST", Path: "/receive.xml", Body: "Xml=1", WantStatus: 400, WantBody: "XmlMsg missing."},
		{Name: "missing field", Method: "POST", Path: "/receive.xml", Body: partial, WantStatus: 400, WantBody: "Missing field: Local"},
		{Name: "malformed XML", Method: "POST", Path: "/receive.xml", Body: "<bspostevent><field name='x'>", WantStatus: 400,
			WantBodyContains: []string{"bspostevent:"}},
		{Name: "wrong root element", Method: "POST", Path: "/receive.xml", Body: "<receipts/>", WantStatus: 400, WantBodyContains: []string{"bspostevent"}},
		{Name: "malformed receipts", Method: "POST", Path: "/receipt.xml", Body: "<receipts><receipt>", WantStatus: 400, WantBodyContains: []string{"receipts:"}},
		{Name: "receipt without reference", Method: "POST", Path: "/receipt.xml", Body: "<receipts><receipt><status>D</status></receipt></receipts>",
			WantStatus: 400, WantBody: "receipt 1: no reference"},
		{Name: "GET not allowed", Path: "/receive.xml", WantStatus: 405},
		{Name: "unknown path", Method: "POST", Path: "/other", Body: doc, WantStatus: 404},
		{Name: "health", Path: "/health", WantStatus: 200, WantBody: "OK"},
	})

	// Outbound: EAPIGateway.SendSMS with the account, defaults and the
	// message; acked with Opera's identifier.
	before := time.Now().UTC()
	m := out("hello world", nil)
	e.SendOutbound(m)
	c := fake.wait(t, "hello world")
	for k, want := range map[string][2]string{
		"Service": {"string", "service"}, "Password": {"string", "s3cret"}, "Channel": {"string", "channel"},
		"Numbers": {"string", "27761234567"}, "Priority": {"string", "standard"}, "Receipt": {"string", "Y"}, "MaxSegments": {"int", "9"},
	} {
		if c.members[k] != want {
			t.Errorf("%s = %v, want %v", k, c.members[k], want)
		}
	}
	delivery, err1 := time.Parse(opera.TimeFormat, c.members["Delivery"][1])
	expiry, err2 := time.Parse(opera.TimeFormat, c.members["Expiry"][1])
	if c.method != "EAPIGateway.SendSMS" || err1 != nil || err2 != nil || c.members["Delivery"][0] != "dateTime.iso8601" ||
		delivery.Before(before.Truncate(time.Second)) || delivery.After(time.Now().UTC()) || expiry.Sub(delivery) != 24*time.Hour {
		t.Errorf("call %+v", c)
	}
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ack.EventType != schemas.EventAck || !strings.HasPrefix(*ack.SentMessageID, "abc") {
		t.Fatalf("event %s %v", ack.EventType, ack.SentMessageID)
	}
	ident := *ack.SentMessageID

	// Receipts for that identifier become delivery reports of the message,
	// raw or form-encoded; receipts for unknown identifiers are dropped.
	for _, tc := range []struct {
		status string
		want   schemas.DeliveryStatus
		form   bool
	}{{"P", schemas.DeliveryPending, false}, {"D", schemas.DeliveryDelivered, true}, {"X", schemas.DeliveryFailed, false}} {
		n := e.CountRecords("opera.event")
		body := receipts(ident, tc.status)
		if tc.status == "P" {
			body = receipts(ident, tc.status, "unknown-ref", "D")
		}
		if tc.form {
			body = url.Values{"XmlMsg": {body}}.Encode()
		}
		transporttest.Run(t, e, []transporttest.Case{{Name: "receipt " + tc.status, Method: "POST", Path: "/receipt.xml", Body: body, WantStatus: 200}})
		ev := e.WaitEvent(func(ev *schemas.Event) bool {
			return ev.UserMessageID == m.MessageID && ev.EventType == schemas.EventDeliveryReport && *ev.DeliveryStatus == tc.want
		}, 30*time.Second)
		if op, _ := ev.TransportMetadata["opera"].(map[string]any); op["status"] != tc.status || op["reference"] != ident {
			t.Errorf("receipt metadata %v", ev.TransportMetadata)
		}
		if got := e.CountRecords("opera.event"); got != n+1 {
			t.Errorf("receipt %s: %d events published, want 1 (the unknown reference is dropped)", tc.status, got-n)
		}
	}

	// transport_metadata overrides the schedule, priority and receipt.
	m2 := out("scheduled", schemas.Metadata{"deliver_at": "2011-01-01 00:00:00.000000", "expire_at": "2011-01-01T01:00:00Z", "priority": "high", "receipt": "N"})
	e.SendOutbound(m2)
	c = fake.wait(t, "scheduled")
	if c.members["Delivery"][1] != "20110101T00:00:00" || c.members["Expiry"][1] != "20110101T01:00:00" ||
		c.members["Priority"][1] != "high" || c.members["Receipt"][1] != "N" {
		t.Errorf("scheduled call %+v", c.members)
	}
	// Non-ASCII text goes as UTF-8 in base64.
	e.SendOutbound(out("üïéßø", nil))
	want := base64.StdEncoding.EncodeToString([]byte("üïéßø"))
	c = fake.wait(t, want)
	if c.members["SMSText"][0] != "base64" {
		t.Errorf("unicode call %+v", c.members)
	}

	// A fault is a temporary failure (retried by the failure worker), not
	// a nack; HTTP errors are nacked and permanent; an unreadable answer
	// is nacked; a bad deliver_at is nacked unsent.
	for _, tc := range []struct {
		text   string
		meta   schemas.Metadata
		nack   string
		code   *schemas.FailureCode
		reason string
	}{
		{"fault", nil, "", code(schemas.FailureTemporary), "XML-RPC fault 503: oh noes!"},
		{"payment", nil, "402 Payment Required", code(schemas.FailurePermanent), "402 Payment Required"},
		{"garbage", nil, "invalid XML-RPC response", nil, "invalid XML-RPC response"},
		{"bad time", schemas.Metadata{"deliver_at": "tomorrow"}, "transport_metadata.deliver_at", code(schemas.FailurePermanent), "deliver_at"},
	} {
		m := out(tc.text, tc.meta)
		e.SendOutbound(m)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
		if !strings.Contains(f.Reason, tc.reason) || fmt.Sprint(deref(f.FailureCode)) != fmt.Sprint(deref(tc.code)) || strings.Contains(f.Reason, "s3cret") {
			t.Errorf("%s: failure %q (%v)", tc.text, f.Reason, deref(f.FailureCode))
		}
		if tc.nack != "" {
			ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
			if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, tc.nack) {
				t.Errorf("%s: event %s %v", tc.text, ev.EventType, ev.NackReason)
			}
		}
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "outbound" && s.Type == "xmlrpc_fault" }, 30*time.Second)
}

func code(c schemas.FailureCode) *schemas.FailureCode { return &c }

func deref(c *schemas.FailureCode) string {
	if c == nil {
		return "unspecified"
	}
	return string(*c)
}

func postReceipt(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/receipt.xml", "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("receipt: HTTP %d", resp.StatusCode)
	}
}

// TestOperaIDsShared: the identifier map is a table every instance
// reads: whichever instance sent a message, both match its receipts.
func TestOperaIDsShared(t *testing.T) {
	fake := newFake(t)
	workers := worker("opera0", "${PORT0}", fake.URL, "") + worker("opera1", "${PORT1}", fake.URL, "")
	e := transporttest.StartMulti(t, kinds(), "opera", workers, 2)
	m := out("shared", nil)
	e.SendOutbound(m)
	ack := e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == m.MessageID && ev.EventType == schemas.EventAck
	}, 30*time.Second)
	for i, status := range []string{"P", "D"} {
		postReceipt(t, e.URLs[i], receipts(*ack.SentMessageID, status))
		e.WaitEvent(func(ev *schemas.Event) bool {
			return ev.UserMessageID == m.MessageID && ev.EventType == schemas.EventDeliveryReport && ev.DeliveryStatus != nil &&
				*ev.DeliveryStatus == schemas.DeliveryStatus(opera.DeliveryStatus(status))
		}, 30*time.Second)
	}
}

// TestOperaIDExpiry: identifiers are forgotten after message_id_lifetime.
func TestOperaIDExpiry(t *testing.T) {
	fake := newFake(t)
	e := transporttest.Start(t, kinds(), "opera", worker("opera", "${WEB_PORT}", fake.URL, "    message_id_lifetime: 2\n"))
	m := out("expiring", nil)
	start := time.Now()
	e.SendOutbound(m)
	ack := e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == m.MessageID && ev.EventType == schemas.EventAck
	}, 30*time.Second)
	for time.Since(start) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	n := e.CountRecords("opera.event")
	postReceipt(t, e.BaseURL, receipts(*ack.SentMessageID, "D"))
	if got := e.CountRecords("opera.event"); got != n {
		t.Errorf("%d events for a receipt past message_id_lifetime, want none", got-n)
	}
}

func TestOperaUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "opera", worker("opera", "${WEB_PORT}", unreachable, ""))
	m := out("hi", nil)
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary {
		t.Errorf("failure %s (%v)", f.Reason, f.FailureCode)
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "outbound" && s.Status == schemas.StatusDown }, 30*time.Second)
}

func TestOperaConfigErrors(t *testing.T) {
	base := "name: a, kind: opera, transport_name: a, url: 'http://h/', channel: c, password: p, service: s, web_port: 0, web_receipt_path: /r, web_receive_path: /in"
	cases := map[string]string{
		"url":                 strings.Replace(base, "http://h/", "h", 1),
		"password":            strings.Replace(base, "password: p, ", "", 1),
		"web_port":            strings.Replace(base, "web_port: 0, ", "", 1),
		"web_receive_path":    strings.Replace(base, "/in", "/r", 1),
		"max_segments":        base + ", max_segments: 10",
		"message_id_lifetime": base + ", message_id_lifetime: -1",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	cfg := transporttest.ValidConfig(t, kinds(), base+", redis_manager: {host: x}")
	c := cfg.Workers[0].Config.(*opera.Config)
	if c.MessageIDLifetime != 7*24*3600 || c.MaxSegments != 9 {
		t.Errorf("defaults: %+v", c)
	}
}
