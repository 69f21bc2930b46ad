package parlayx_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/parlayx"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(parlayx.Kind()) }

func config(network, password, extra string) string {
	return fmt.Sprintf(`
  - name: parlayx
    kind: vumi.transports.parlayx.ParlayXTransport
    transport_name: parlayx
    web_notification_path: /services/SmsNotification
    web_notification_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    notification_endpoint_uri: http://vumi.example.com/services/SmsNotification
    remote_send_uri: %[1]s/services/SendSms
    remote_notification_uri: %[1]s/services/SmsNotificationManager
    short_code: "54321"
    service_provider_service_id: service-id
    service_provider_id: sp-id
    service_provider_password: %[2]s
    outbound_timeout: 5
    publish_status: true
%[3]s`, network, password, extra)
}

// request is a SOAP request as the fake network decodes it.
type request struct {
	path, soapAction, op string
	header               struct {
		SpID       string `xml:"spId"`
		SpPassword string `xml:"spPassword"`
		ServiceID  string `xml:"serviceId"`
		TimeStamp  string `xml:"timeStamp"`
		OA         string `xml:"OA"`
		LinkID     string `xml:"linkid"`
	}
	send struct {
		Addresses string `xml:"addresses"`
		Message   string `xml:"message"`
		Endpoint  string `xml:"receiptRequest>endpoint"`
		Interface string `xml:"receiptRequest>interfaceName"`
		Correlat  string `xml:"receiptRequest>correlator"`
	}
	manage struct {
		Endpoint   string `xml:"reference>endpoint"`
		Interface  string `xml:"reference>interfaceName"`
		Correlator string `xml:"reference>correlator"`
		ShortCode  string `xml:"smsServiceActivationNumber"`
		StopCorr   string `xml:"correlator"`
	}
}

// fakeNetwork is a network's ParlayX SendSmsService and
// SmsNotificationManager, written from the ParlayX 2.x SMS specification
// (ETSI ES 202 391-4): it checks the RequestSOAPHeader's spPassword
// (md5 of spId, password and timeStamp) and answers SendSms with a result,
// or with the fault the message text asks for.
type fakeNetwork struct {
	*httptest.Server
	password string
	mu       sync.Mutex
	reqs     []request
}

func newNetwork(t *testing.T, password string) *fakeNetwork {
	f := &fakeNetwork{password: password}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

const env = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>`

func fault(code, msg, detail string) string {
	return fmt.Sprintf(env, fmt.Sprintf(`<soapenv:Fault><faultcode>%s</faultcode><faultstring>%s</faultstring>%s</soapenv:Fault>`, code, msg, detail))
}

func exception(kind, id, text string) string {
	return fault("soapenv:Client", text, fmt.Sprintf(`<detail><ns1:%[1]sDetail xmlns:ns1="http://www.csapi.org/schema/parlayx/common/v2_1">`+
		`<messageId>%[2]s</messageId><text>%[3]s</text><variables>x</variables></ns1:%[1]sDetail></detail>`, kind, id, text))
}

func (f *fakeNetwork) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var e struct {
		Header struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Header"`
		Body struct {
			Ops []struct {
				XMLName xml.Name
				Inner   []byte `xml:",innerxml"`
			} `xml:",any"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
	}
	w.Header().Set("Content-Type", "text/xml")
	if err := xml.Unmarshal(body, &e); err != nil || len(e.Body.Ops) != 1 {
		w.WriteHeader(500)
		io.WriteString(w, fault("soapenv:Client", "Malformed SOAP request", ""))
		return
	}
	req := request{path: r.URL.Path, soapAction: r.Header.Get("SOAPAction"), op: e.Body.Ops[0].XMLName.Space + " " + e.Body.Ops[0].XMLName.Local}
	var hdr struct {
		R *struct {
			SpID       string `xml:"spId"`
			SpPassword string `xml:"spPassword"`
			ServiceID  string `xml:"serviceId"`
			TimeStamp  string `xml:"timeStamp"`
			OA         string `xml:"OA"`
			LinkID     string `xml:"linkid"`
		} `xml:"http://www.huawei.com.cn/schema/common/v2_1 RequestSOAPHeader"`
	}
	_ = xml.Unmarshal([]byte("<x>"+string(e.Header.Inner)+"</x>"), &hdr)
	if hdr.R != nil {
		req.header = *hdr.R
	}
	inner := append(append([]byte("<x>"), e.Body.Ops[0].Inner...), "</x>"...)
	_ = xml.Unmarshal(inner, &req.send)
	_ = xml.Unmarshal(inner, &req.manage)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	f.mu.Unlock()

	sum := md5.Sum([]byte(req.header.SpID + f.password + req.header.TimeStamp))
	if hdr.R == nil || req.header.SpPassword != hex.EncodeToString(sum[:]) {
		w.WriteHeader(500)
		io.WriteString(w, exception("ServiceException", "SVC0901", "Authentication failed"))
		return
	}
	switch e.Body.Ops[0].XMLName.Local {
	case "startSmsNotification":
		io.WriteString(w, fmt.Sprintf(env, `<nm:startSmsNotificationResponse xmlns:nm="http://www.csapi.org/schema/parlayx/sms/notification_manager/v2_3/local"/>`))
		return
	case "stopSmsNotification":
		io.WriteString(w, fmt.Sprintf(env, `<nm:stopSmsNotificationResponse xmlns:nm="http://www.csapi.org/schema/parlayx/sms/notification_manager/v2_3/local"/>`))
		return
	}
	switch req.send.Message {
	case "server fault":
		w.WriteHeader(500)
		io.WriteString(w, fault("soapenv:Server", "System overloaded", ""))
	case "client fault":
		w.WriteHeader(500)
		io.WriteString(w, fault("soapenv:Client", "Invalid input", ""))
	case "policy":
		w.WriteHeader(500)
		io.WriteString(w, exception("PolicyException", "POL0001", "Policy error"))
	case "service server":
		w.WriteHeader(500)
		io.WriteString(w, strings.Replace(exception("ServiceException", "SVC0001", "Service error"), "soapenv:Client", "soapenv:Server", 1))
	case "garbage":
		io.WriteString(w, "<html>maintenance</html>")
	default:
		fmt.Fprintf(w, env, fmt.Sprintf(`<ns2:sendSmsResponse xmlns:ns2="http://www.csapi.org/schema/parlayx/sms/send/v2_2/local"><ns2:result>req-%d</ns2:result></ns2:sendSmsResponse>`, n))
	}
}

func (f *fakeNetwork) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeNetwork) waitSend(t *testing.T, text string) request {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range f.requests() {
			if r.send.Message == text {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no SendSms with %q", text)
	return request{}
}

func out(to, content string, meta schemas.Metadata) *schemas.UserMessage {
	m := schemas.NewUserMessage()
	m.FromAddr, m.ToAddr, m.Content = schemas.String("54321"), schemas.String(to), schemas.String(content)
	m.TransportName, m.TransportType, m.TransportMetadata = schemas.String("parlayx"), schemas.String("sms"), meta
	return m
}

const nsN = `xmlns:loc="http://www.csapi.org/schema/parlayx/sms/notification/v2_2/local"`

func soap(header, body string) string {
	h := ""
	if header != "" {
		h = "<soapenv:Header>" + header + "</soapenv:Header>"
	}
	return `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` + h + "<soapenv:Body>" + body + "</soapenv:Body></soapenv:Envelope>"
}

func reception(correlator, msg, sender, san string) string {
	return fmt.Sprintf(`<loc:notifySmsReception %s><loc:correlator>%s</loc:correlator><loc:message><message>%s</message>`+
		`<senderAddress>%s</senderAddress><smsServiceActivationNumber>%s</smsServiceActivationNumber><dateTime>2013-06-18T10:59:33Z</dateTime></loc:message></loc:notifySmsReception>`,
		nsN, correlator, msg, sender, san)
}

func receipt(correlator, address, status string) string {
	return fmt.Sprintf(`<loc:notifySmsDeliveryReceipt %s><loc:correlator>%s</loc:correlator><loc:deliveryStatus><address>%s</address>`+
		`<deliveryStatus>%s</deliveryStatus></loc:deliveryStatus></loc:notifySmsDeliveryReceipt>`, nsN, correlator, address, status)
}

const linkHeader = `<ns1:NotifySOAPHeader xmlns:ns1="http://www.csapi.org/schema/parlayx/common/v2_1"><ns1:linkid>link-7</ns1:linkid></ns1:NotifySOAPHeader>`

func TestParlayX(t *testing.T) {
	net := newNetwork(t, "s3cret")
	// Registered first, so it runs after the transport has stopped.
	var env *transporttest.Env
	t.Cleanup(func() {
		var start, stop *request
		for _, r := range net.requests() {
			r := r
			if strings.HasSuffix(r.op, "startSmsNotification") {
				start = &r
			}
			if strings.HasSuffix(r.op, "stopSmsNotification") {
				stop = &r
			}
		}
		if start == nil || stop == nil {
			t.Fatalf("notifications: start %v stop %v", start, stop)
		}
		if start.path != "/services/SmsNotificationManager" || start.manage.Endpoint != "http://vumi.example.com/services/SmsNotification" ||
			start.manage.Interface != "notifySmsReception" || start.manage.ShortCode != "54321" || start.manage.Correlator == "" ||
			stop.manage.StopCorr != start.manage.Correlator || start.op != parlayx.NSNotificationManager+" startSmsNotification" {
			t.Errorf("start %+v stop %+v", start.manage, stop.manage)
		}
	})
	env = transporttest.Start(t, kinds(), "parlayx", config(net.URL, "s3cret", "    start_notifications: true\n"))
	e := env
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "notifications" && s.Status == schemas.StatusOK }, 30*time.Second)

	p := "/services/SmsNotification"
	faultBody := func(code, msg string) []string {
		return []string{"<faultcode>" + code + "</faultcode>", "<faultstring>" + msg + "</faultstring>"}
	}
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "notifySmsReception", Method: "POST", Path: p, Body: soap(linkHeader, reception("1234", "hello &amp; bye", "tel:27117654321", "54321")),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.MessageID != "1234" || m.Text() != "hello & bye" || m.From() != "+27117654321" || m.To() != "54321" ||
					*m.Provider != "parlayx" || *m.TransportType != "sms" || m.TransportMetadata["linkid"] != "link-7" {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200, WantBodyContains: []string{"notifySmsReceptionResponse", parlayx.NSNotification}},
		{Name: "reception without linkid", Method: "POST", Path: p, Body: soap("", reception("5678:abc", "hi", "tel:27117654321", "54321")),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if v, ok := m.TransportMetadata["linkid"]; m.MessageID != "5678" || !ok || v != nil {
					t.Errorf("inbound %+v", m)
				}
			}, WantStatus: 200},
		{Name: "not XML", Method: "POST", Path: p, Body: "sup", WantStatus: 500, WantBodyContains: faultBody("soapenv:Client", "invalid XML: text outside the root element")},
		{Name: "not an envelope", Method: "POST", Path: p, Body: "<hello/>", WantStatus: 500, WantBodyContains: faultBody("soapenv:Client", "Malformed SOAP request")},
		{Name: "no body", Method: "POST", Path: p, Body: `<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>`, WantStatus: 500,
			WantBodyContains: faultBody("soapenv:Client", "Malformed SOAP request")},
		{Name: "empty body", Method: "POST", Path: p, Body: soap("", ""), WantStatus: 500, WantBodyContains: faultBody("soapenv:Client", "No actionable items")},
		{Name: "unknown operation", Method: "POST", Path: p, Body: soap("", "<WhatIsThis/>"), WantStatus: 500,
			WantBodyContains: faultBody("soapenv:Server", "No handler for WhatIsThis")},
		{Name: "reception without sender", Method: "POST", Path: p, Body: soap("", strings.Replace(reception("1", "m", "", "54321"), "<senderAddress></senderAddress>", "", 1)),
			WantStatus: 500, WantBodyContains: faultBody("soapenv:Client", "notifySmsReception: message has no senderAddress")},
		{Name: "reception with a bad dateTime", Method: "POST", Path: p, Body: soap("", strings.Replace(reception("1", "m", "tel:2711", "54321"), "2013-06-18T10:59:33Z", "yesterday", 1)),
			WantStatus: 500, WantBodyContains: []string{"is not an ISO 8601 time"}},
		{Name: "unknown delivery status", Method: "POST", Path: p, Body: soap("", receipt("1", "tel:27117654321", "WhatIsThis")),
			WantStatus: 500, WantBodyContains: faultBody("soapenv:Client", `No such delivery status enumeration value: &#34;WhatIsThis&#34;`)},
		{Name: "GET", Path: p, WantStatus: 405},
		{Name: "other path", Method: "POST", Path: "/other", Body: soap("", reception("1", "m", "tel:2711", "1")), WantStatus: 404},
	})

	// Outbound: SendSms with the header, the address, a unique correlator
	// and the notification endpoint; acked with the request identifier.
	m := out("+27117654321", "hello world", schemas.Metadata{"linkid": "link-7"})
	before := time.Now()
	e.SendOutbound(m)
	r := net.waitSend(t, "hello world")
	ts, err := time.ParseInLocation("20060102150405", r.header.TimeStamp, time.Local)
	if r.path != "/services/SendSms" || r.soapAction != "" || r.op != parlayx.NSSend+" sendSms" || r.send.Addresses != "tel:27117654321" ||
		r.send.Endpoint != "http://vumi.example.com/services/SmsNotification" || r.send.Interface != "SmsNotification" ||
		parlayx.ExtractMessageID(r.send.Correlat) != m.MessageID || len(r.send.Correlat) <= len(m.MessageID)+1 ||
		r.header.SpID != "sp-id" || r.header.ServiceID != "service-id" || r.header.OA != "tel:27117654321" || r.header.LinkID != "link-7" ||
		err != nil || ts.Before(before.Truncate(time.Second)) {
		t.Errorf("SendSms %+v", r)
	}
	ack := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ack.EventType != schemas.EventAck || !strings.HasPrefix(*ack.SentMessageID, "req-") {
		t.Errorf("event %s %v", ack.EventType, ack.SentMessageID)
	}
	// A receipt for that correlator is a delivery report of the message.
	for status, want := range map[string]schemas.DeliveryStatus{"DeliveredToTerminal": schemas.DeliveryDelivered,
		"MessageWaiting": schemas.DeliveryPending, "DeliveryImpossible": schemas.DeliveryFailed} {
		transporttest.Run(t, e, []transporttest.Case{{Name: "receipt " + status, Method: "POST", Path: p,
			Body: soap("", receipt(r.send.Correlat, "tel:27117654321", status)), WantStatus: 200,
			WantBodyContains: []string{"notifySmsDeliveryReceiptResponse"}}})
		e.WaitEvent(func(ev *schemas.Event) bool {
			return ev.UserMessageID == m.MessageID && ev.EventType == schemas.EventDeliveryReport && *ev.DeliveryStatus == want
		}, 30*time.Second)
	}

	// Faults: server-class ones are temporary (no nack); exceptions and
	// client-class ones are nacked and permanent; an answer that is not
	// SOAP is nacked; an address not in international format is nacked
	// unsent.
	for _, tc := range []struct {
		to, text, nack string
		code           string
		reason         string
	}{
		{"+27117654321", "server fault", "", "temporary", "SOAP fault soapenv:Server: System overloaded"},
		{"+27117654321", "client fault", "Invalid input", "permanent", "SOAP fault soapenv:Client: Invalid input"},
		{"+27117654321", "policy", "Policy error", "permanent", "PolicyException POL0001: Policy error"},
		{"+27117654321", "service server", "Service error", "permanent", "ServiceException SVC0001"},
		{"+27117654321", "garbage", "invalid SOAP response", "unspecified", "not a SOAP envelope"},
		{"27117654321", "national", "only international format addresses are supported", "permanent", "international"},
	} {
		m := out(tc.to, tc.text, nil)
		e.SendOutbound(m)
		f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
		code := "unspecified"
		if f.FailureCode != nil {
			code = string(*f.FailureCode)
		}
		if code != tc.code || !strings.Contains(f.Reason, tc.reason) || strings.Contains(f.Reason, "s3cret") {
			t.Errorf("%s: failure %q (%s)", tc.text, f.Reason, code)
		}
		if tc.nack != "" {
			ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
			if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, tc.nack) {
				t.Errorf("%s: event %s %v", tc.text, ev.EventType, ev.NackReason)
			}
		}
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "outbound" && s.Type == "soap_fault" }, 30*time.Second)
}

// TestParlayXAuthFailure: a wrong service provider password is refused by
// the network with a ServiceException: nacked, permanent.
func TestParlayXAuthFailure(t *testing.T) {
	net := newNetwork(t, "s3cret")
	e := transporttest.Start(t, kinds(), "parlayx", config(net.URL, "wrong", ""))
	m := out("+27117654321", "hi", nil)
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == m.MessageID }, 30*time.Second)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Authentication failed" {
		t.Errorf("event %s %v", ev.EventType, ev.NackReason)
	}
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailurePermanent || !strings.Contains(f.Reason, "SVC0901") || strings.Contains(f.Reason, "wrong") {
		t.Errorf("failure %s %v", f.Reason, f.FailureCode)
	}
}

func TestParlayXUnreachable(t *testing.T) {
	unreachable := transporttest.ClosedURL(t)
	e := transporttest.Start(t, kinds(), "parlayx", config(unreachable, "s3cret", ""))
	m := out("+27117654321", "hi", nil)
	e.SendOutbound(m)
	f := e.WaitFailure(func(f *schemas.Failure) bool { return f.Message != nil && strings.Contains(*f.Message, m.MessageID) }, 30*time.Second)
	if f.FailureCode == nil || *f.FailureCode != schemas.FailureTemporary {
		t.Errorf("failure %s %v", f.Reason, f.FailureCode)
	}
	e.WaitStatus(func(s *schemas.Status) bool { return s.Component == "outbound" && s.Status == schemas.StatusDown }, 30*time.Second)
}

func TestParlayXConfigErrors(t *testing.T) {
	base := "name: a, kind: parlayx, transport_name: a, web_notification_path: /n, notification_endpoint_uri: 'http://v/n', remote_send_uri: 'http://p/s', " +
		"service_provider_service_id: s, service_provider_id: i, service_provider_password: p"
	cases := map[string]string{
		"remote_send_uri":           strings.Replace(base, "'http://p/s'", "'p/s'", 1),
		"service_provider_password": strings.Replace(base, ", service_provider_password: p", "", 1),
		"web_notification_path":     strings.Replace(base, "web_notification_path: /n, ", "", 1),
		"remote_notification_uri":   base + ", start_notifications: true, short_code: '1'",
		"short_code":                base + ", start_notifications: true, remote_notification_uri: 'http://p/n'",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	transporttest.ValidConfig(t, kinds(), base)
}
