package smssync_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/smssync"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(smssync.Kinds()...) }

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

type payload struct {
	Payload struct {
		Success  string              `json:"success"`
		Task     string              `json:"task"`
		Secret   string              `json:"secret"`
		Messages []map[string]string `json:"messages"`
	} `json:"payload"`
}

func parse(t testing.TB, body string) payload {
	var p payload
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return p
}

func TestNormalizeMSISDN(t *testing.T) {
	cases := []struct{ raw, cc, want string }{
		{"12345", "27", "12345"},
		{"0761234567", "27", "+27761234567"},
		{"0027761234567", "27", "+27761234567"},
		{"+27761234567", "27", "+27761234567"},
		{"27761234567", "27", "+27761234567"},
		{"(076) 123-4567", "27", "+27761234567"},
		{"761234567", "27", "761234567"},
	}
	for _, c := range cases {
		if got := smssync.NormalizeMSISDN(c.raw, c.cc); got != c.want {
			t.Errorf("NormalizeMSISDN(%q, %q) = %q, want %q", c.raw, c.cc, got, c.want)
		}
	}
}

// singleYAML is a single-account SMSSync transport named phone.
const singleYAML = `
  - name: phone
    kind: vumi.transports.smssync.SingleSmsSync
    transport_name: phone
    web_path: /smssync
    web_port: ${WEB_PORT}
    smssync_secret: s3cret
    country_code: "+27"
`

// poll asks for the queued messages as the phone does.
func poll(t *testing.T, e *transporttest.Env) []map[string]string {
	t.Helper()
	var got []map[string]string
	transporttest.Run(t, e, []transporttest.Case{{Name: "poll", Path: "/smssync", Query: q("task", "send"), WantStatus: 200,
		Check: func(t testing.TB, body string) { got = parse(t, body).Payload.Messages }}})
	return got
}

func TestSingleSmsSync(t *testing.T) {
	e := transporttest.Start(t, kinds(), "phone", singleYAML+"    reply_delay: 0.3\n")
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "received SMS with a reply", Method: "POST", Path: "/smssync", ContentType: "application/x-www-form-urlencoded",
			Body: q("secret", "s3cret", "sent_timestamp", "11-22-26 10:30", "sent_to", "0761110000", "from", "0832223333", "message", "hello").Encode(),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.From() != "+27832223333" || m.To() != "+27761110000" || m.Text() != "hello" || *m.TransportType != "sms" ||
					!m.Timestamp.Equal(time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)) {
					t.Errorf("inbound %+v at %v", m, m.Timestamp)
				}
			},
			Reply:      func(in *schemas.UserMessage) *schemas.UserMessage { return in.Reply("thanks", true) },
			WantStatus: 200,
			Check: func(t testing.TB, body string) {
				p := parse(t, body)
				if p.Payload.Success != "true" || len(p.Payload.Messages) != 1 || p.Payload.Messages[0]["message"] != "thanks" || p.Payload.Messages[0]["to"] != "+27832223333" {
					t.Errorf("payload %s", body)
				}
			},
		},
		{
			Name: "wrong secret", Method: "POST", Path: "/smssync", ContentType: "application/x-www-form-urlencoded",
			Body:       q("secret", "nope", "sent_timestamp", "1", "sent_to", "1", "from", "2", "message", "x").Encode(),
			WantStatus: 200, WantBody: `{"payload":{"success":"false"}}`,
		},
		{
			Name: "missing field", Path: "/smssync", Query: q("secret", "s3cret", "from", "2"),
			WantStatus: 200, WantBody: `{"payload":{"success":"false"}}`,
		},
		{
			Name: "poll with nothing queued", Path: "/smssync", Query: q("task", "send"),
			WantStatus: 200, WantBody: `{"payload":{"messages":[],"secret":"s3cret","task":"send"}}`,
		},
	})
	// An outbound message waits for the next poll, then is acked.
	out := schemas.NewUserMessage()
	out.ToAddr, out.Content = schemas.String("+27761234567"), schemas.String("queued for you")
	e.SendOutbound(out)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := poll(t, e)
		if len(got) == 1 && got[0]["message"] == "queued for you" && got[0]["to"] == "+27761234567" {
			break
		}
		if len(got) > 0 || time.Now().After(deadline) {
			t.Fatalf("poll returned %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventAck && ev.UserMessageID == out.MessageID
	}, 30*time.Second)
	// Handed over once: the next poll is empty.
	transporttest.Run(t, e, []transporttest.Case{{Name: "poll again", Path: "/smssync", Query: q("task", "send"), WantStatus: 200,
		WantBody: `{"payload":{"messages":[],"secret":"s3cret","task":"send"}}`}})
}

func TestMultiSmsSync(t *testing.T) {
	e := transporttest.Start(t, kinds(), "phones", `
  - name: phones
    kind: smssync_multi
    transport_name: phones
    web_path: /sync
    web_port: ${WEB_PORT}
    country_codes: {ke: "254", za: "+27"}
`)
	transporttest.Run(t, e, []transporttest.Case{
		{
			Name: "account from the path", Path: "/sync/ke/", Query: q("secret", "", "sent_timestamp", "1700000000000", "sent_to", "0711000000", "from", "0722000000", "message", "jambo"),
			WantInbound: func(t testing.TB, m *schemas.UserMessage) {
				if m.From() != "+254722000000" || m.TransportMetadata["account_id"] != "ke" || m.Timestamp.UnixMilli() != 1700000000000 {
					t.Errorf("inbound %+v", m)
				}
			},
			WantStatus: 200,
			Check: func(t testing.TB, body string) {
				if p := parse(t, body); p.Payload.Success != "true" {
					t.Errorf("payload %s", body)
				}
			},
		},
		{Name: "no account", Path: "/sync/", Query: q("task", "send"), WantStatus: 200, WantBody: `{"payload":{"success":"false"}}`},
	})
	// A message for account za reaches za's phone, not ke's.
	out := schemas.NewUserMessage()
	out.ToAddr, out.Content = schemas.String("+27761234567"), schemas.String("for za")
	out.TransportMetadata = schemas.Metadata{"account_id": "za"}
	e.SendOutbound(out)
	// One without an account is nacked and failed.
	lost := schemas.NewUserMessage()
	lost.ToAddr, lost.Content = schemas.String("+27761234567"), schemas.String("whose?")
	e.SendOutbound(lost)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.EventType == schemas.EventNack && ev.UserMessageID == lost.MessageID
	}, 30*time.Second)
	e.WaitFailure(func(f *schemas.Failure) bool {
		return f.FailureCode != nil && *f.FailureCode == schemas.FailurePermanent
	}, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ke, za []map[string]string
		transporttest.Run(t, e, []transporttest.Case{
			{Name: "ke polls", Path: "/sync/ke", Query: q("task", "send"), Check: func(t testing.TB, b string) { ke = parse(t, b).Payload.Messages }},
			{Name: "za polls", Path: "/sync/za", Query: q("task", "send"), Check: func(t testing.TB, b string) { za = parse(t, b).Payload.Messages }},
		})
		if len(ke) != 0 {
			t.Fatalf("ke got %v", ke)
		}
		if len(za) == 1 && za[0]["message"] == "for za" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("za never got its message")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
