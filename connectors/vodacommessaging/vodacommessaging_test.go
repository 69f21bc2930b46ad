package vodacommessaging_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/connectors/vodacommessaging"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(vodacommessaging.Kind()) }

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

const menuOpen = "<request>\n\t<headertext>%s</headertext>\n\t<options>\n\t\t<option command=\"1\" order=\"1\" callback=\"http://ussd.example.org:8123/api/v1/ussd\" display=\"False\" ></option>\n\t</options>\n</request>"

func TestVodacomMessaging(t *testing.T) {
	e := transporttest.Start(t, kinds(), "vm", `
  - name: vm
    kind: vumi.transports.vodacom_messaging.VodacomMessagingTransport
    transport_name: vm
    web_path: /api/v1/ussd
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    web_host: ussd.example.org:8123
    ussd_string_prefix: "*120*666"
    web_username: vodacom
    web_password: secret
`)
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "dialled code starts a session", Path: "/api/v1/ussd", User: "vodacom", Pass: "secret",
			Query: q("request", "*120*666#", "msisdn", "27821234567", "ussdSessionId", "s-1", "provider", "vodacom"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "*120*666#" || m.To() != "*120*666#" || m.From() != "27821234567" || m.Session() != schemas.SessionNew ||
					*m.Provider != "vodacom" || *m.TransportType != "ussd" || m.TransportMetadata["session_id"] != "s-1" {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply:      transporttest.Reply("Pick <one> & go", true),
			WantStatus: 200, WantBody: strings.Replace(menuOpen, "%s", "Pick &lt;one&gt; &amp; go", 1),
			WantHeader: map[string]string{"Content-Type": "text/xml; charset=utf-8"},
		},
		{
			Name: "other text resumes it; a closing reply has no options", Path: "/api/v1/ussd", User: "vodacom", Pass: "secret",
			Query: q("request", "1", "msisdn", "27821234567", "ussdSessionId", "s-1", "provider", "vodacom"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Text() != "1" || m.To() != "" || m.Session() != schemas.SessionResume {
					t.Errorf("inbound %+v", m)
				}
			},
			Reply:      transporttest.Reply("Bye", false),
			WantStatus: 200, WantBody: "<request>\n\t<headertext>Bye</headertext>\n</request>",
		},
		{
			Name: "provider is optional", Path: "/api/v1/ussd", User: "vodacom", Pass: "secret",
			Query: q("request", "2", "msisdn", "27821234567", "ussdSessionId", "s-2"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.Provider != nil {
					t.Errorf("provider %v", *m.Provider)
				}
			},
			Reply:      transporttest.Reply("ok", false),
			WantStatus: 200,
		},
		{Name: "missing parameters", Path: "/api/v1/ussd", User: "vodacom", Pass: "secret", Query: q("request", "1"),
			WantStatus: 400, WantBody: `{"missing_parameter":["msisdn","ussdSessionId"]}`},
		{Name: "unexpected parameter", Path: "/api/v1/ussd", User: "vodacom", Pass: "secret",
			Query:      q("request", "1", "msisdn", "1", "ussdSessionId", "s", "colour", "red"),
			WantStatus: 400, WantBody: `{"unexpected_parameter":["colour"]}`},
		{Name: "no credentials", Path: "/api/v1/ussd", Query: q("request", "1", "msisdn", "1", "ussdSessionId", "s"), WantStatus: 401},
		{Name: "wrong password", Path: "/api/v1/ussd", User: "vodacom", Pass: "x", Query: q("request", "1", "msisdn", "1", "ussdSessionId", "s"), WantStatus: 401},
	})
	// A reply without content is nacked.
	bad := e.Inbound()[0].Reply("", true)
	bad.Content = nil
	e.SendOutbound(bad)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == bad.MessageID && *ev.NackReason == "Missing fields: content"
	}, 30*time.Second)
}

func TestVodacomMessagingConfigErrors(t *testing.T) {
	cases := map[string]string{
		"ussd_string_prefix": "name: a, kind: vodacom_messaging_ussd, transport_name: a, web_path: /x, web_host: h",
		"web_host":           "name: a, kind: vodacom_messaging_ussd, transport_name: a, web_path: /x, ussd_string_prefix: '*1'",
	}
	transporttest.ConfigErrors(t, kinds(), cases)
	bad := "name: a, kind: vodacom_messaging_ussd, transport_name: a, web_path: /x, ussd_string_prefix: '*1', web_host: 'http://h/'"
	if _, err := transporttest.LoadWorker(kinds(), bad); err == nil || !strings.Contains(err.Error(), "key web_host") {
		t.Errorf("web_host with scheme: %v", err)
	}
}

func TestResponse(t *testing.T) {
	got := vodacommessaging.Response("h:1", "/p", "Menu", true)
	want := "<request>\n\t<headertext>Menu</headertext>\n\t<options>\n\t\t<option command=\"1\" order=\"1\" callback=\"http://h:1/p\" display=\"False\" ></option>\n\t</options>\n</request>"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
