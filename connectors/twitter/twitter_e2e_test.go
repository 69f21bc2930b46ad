package twitter_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/connectors/twitter"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestFakeTwitter runs the transport against the fake API: mentions and
// DMs from the user stream, tracked terms from the filter stream,
// follow-back, tweets and DMs out, a refused tweet, and a stream that is
// reopened after the server closes it. Every request is signature-checked.
func TestFakeTwitter(t *testing.T) {
	f := newFakeTwitter(t)
	r := topology.NewRegistry()
	r.Add(twitter.Kinds()...)
	env := chattest.Start(t, r, "tw", fmt.Sprintf(`
  - name: twitter_transport
    kind: vumi.transports.twitter.TwitterTransport
    transport_name: tw
    publish_status: true
    screen_name: vumibot
    consumer_key: %q
    consumer_secret: %q
    access_token: %q
    access_token_secret: %q
    endpoints:
      tweets: default
      dms: dm_endpoint
    terms: [vumi, kafka streams]
    autofollow: true
    api_url: %s/api/1.1/
    stream_url: %s/stream/1.1/
    userstream_url: %s/userstream/1.1/
    reconnect_delay: 100ms
    reconnect_max_delay: 500ms
`, f.consumerKey, f.consumerSec, f.token, f.tokenSecret, f.srv.URL, f.srv.URL, f.srv.URL))
	for _, name := range []string{"user_stream", "track_stream"} {
		env.WaitStatus(func(s *schemas.Status) bool { return s.Component == name && s.Type == "connected" }, 20*time.Second)
	}
	f.mu.Lock()
	track := f.trackParams.Get("track")
	f.mu.Unlock()
	if track != "vumi,kafka streams" {
		t.Errorf("track = %q", track)
	}

	inbound := []struct {
		name   string
		stream chan string
		json   string
		check  func(t *testing.T, m *schemas.UserMessage)
	}{
		{
			name: "mention", stream: f.userStream,
			json: `{"id":100,"id_str":"100","text":"@vumibot hello there","user":{"id_str":"1","screen_name":"alice"},"in_reply_to_status_id_str":null,"in_reply_to_screen_name":"vumibot","entities":{"user_mentions":[{"screen_name":"vumibot","id_str":"9","indices":[0,8]}]}}`,
			check: func(t *testing.T, m *schemas.UserMessage) {
				if m.From() != "@alice" || m.To() != "@vumibot" || m.Text() != "hello there" || m.Endpoint() != "default" {
					t.Errorf("from %q to %q content %q endpoint %q", m.From(), m.To(), m.Text(), m.Endpoint())
				}
				if tw, _ := m.TransportMetadata["twitter"].(map[string]any); tw["status_id"] != "100" {
					t.Errorf("transport_metadata %v", m.TransportMetadata)
				}
				if tw, _ := m.HelperMetadata["twitter"].(map[string]any); tw["in_reply_to_screen_name"] != "vumibot" || len(tw["user_mentions"].([]any)) != 1 {
					t.Errorf("helper_metadata %v", m.HelperMetadata)
				}
			},
		},
		{
			name: "direct message", stream: f.userStream,
			json: `{"direct_message":{"id":200,"id_str":"200","text":"a secret","sender":{"screen_name":"bob"},"recipient":{"screen_name":"vumibot"},"entities":{"user_mentions":[]}}}`,
			check: func(t *testing.T, m *schemas.UserMessage) {
				if m.From() != "@bob" || m.To() != "@vumibot" || m.Endpoint() != "dm_endpoint" {
					t.Errorf("from %q to %q endpoint %q", m.From(), m.To(), m.Endpoint())
				}
				if dm, _ := m.HelperMetadata["dm_twitter"].(map[string]any); dm["id"] != "200" {
					t.Errorf("helper_metadata %v", m.HelperMetadata)
				}
			},
		},
		{
			name: "tracked term", stream: f.trackStream,
			json: `{"id_str":"300","text":"kafka streams are neat, says @someone","user":{"screen_name":"carol"},"entities":{"user_mentions":[{"screen_name":"someone","indices":[29,37]}]}}`,
			check: func(t *testing.T, m *schemas.UserMessage) {
				if m.From() != "@carol" || m.To() != twitter.NoUserAddr || m.Text() != "kafka streams are neat, says @someone" {
					t.Errorf("from %q to %q content %q", m.From(), m.To(), m.Text())
				}
			},
		},
	}
	for _, tc := range inbound {
		t.Run(tc.name, func(t *testing.T) {
			// Our own tweets and DMs come back on the streams: ignored.
			tc.stream <- `{"id_str":"1","text":"@alice own tweet","user":{"screen_name":"vumibot"}}`
			tc.stream <- `{"direct_message":{"id_str":"2","text":"own dm","sender":{"screen_name":"vumibot"},"recipient":{"screen_name":"x"}}}`
			tc.stream <- tc.json
			want := tc.json[strings.Index(tc.json, `"text":"`)+8:]
			want = want[:strings.Index(want, `"`)]
			m := env.WaitInbound(func(m *schemas.UserMessage) bool { return strings.HasSuffix(want, m.Text()) && m.Text() != "" }, 20*time.Second)
			if m.Transport() != "tw" || m.TransportType == nil || *m.TransportType != "twitter" {
				t.Errorf("transport fields %v %v", m.TransportName, m.TransportType)
			}
			tc.check(t, m)
		})
	}
	for _, m := range env.Inbound() {
		if strings.HasPrefix(m.Text(), "own") || strings.Contains(m.Text(), "own tweet") {
			t.Errorf("own message published: %q", m.Text())
		}
	}

	t.Run("follow back", func(t *testing.T) {
		f.userStream <- `{"event":"follow","source":{"screen_name":"vumibot"},"target":{"screen_name":"x"}}`
		f.userStream <- `{"event":"follow","source":{"screen_name":"dave"},"target":{"screen_name":"vumibot"}}`
		f.waitRequest(t, "friendships/create.json", func(v url.Values) bool { return v.Get("screen_name") == "dave" })
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.requests {
			if r.Path == "friendships/create.json" && r.Params.Get("screen_name") == "vumibot" {
				t.Error("followed itself")
			}
		}
	})

	outbound := []struct {
		name     string
		msg      func() *schemas.UserMessage
		path     string
		match    func(url.Values) bool
		wantNack string
	}{
		{
			name: "tweet reply",
			msg: func() *schemas.UserMessage {
				m := schemas.NewUserMessage()
				m.ToAddr, m.Content = schemas.String("@alice"), schemas.String("hi back ~ 100% ☺")
				m.TransportMetadata = schemas.Metadata{"twitter": map[string]any{"status_id": "100"}}
				return m
			},
			path: "statuses/update.json",
			match: func(v url.Values) bool {
				return v.Get("status") == "@alice hi back ~ 100% ☺" && v.Get("in_reply_to_status_id") == "100"
			},
		},
		{
			name: "tweet to nobody",
			msg: func() *schemas.UserMessage {
				m := schemas.NewUserMessage()
				m.ToAddr, m.Content = schemas.String(twitter.NoUserAddr), schemas.String("announcement")
				return m
			},
			path:  "statuses/update.json",
			match: func(v url.Values) bool { return v.Get("status") == "announcement" && !v.Has("in_reply_to_status_id") },
		},
		{
			name: "direct message",
			msg: func() *schemas.UserMessage {
				m := schemas.NewUserMessage()
				m.ToAddr, m.Content = schemas.String("@bob"), schemas.String("psst & more")
				m.SetEndpoint("dm_endpoint")
				return m
			},
			path:  "direct_messages/new.json",
			match: func(v url.Values) bool { return v.Get("screen_name") == "bob" && v.Get("text") == "psst & more" },
		},
		{
			name: "refused tweet is nacked",
			msg: func() *schemas.UserMessage {
				f.mu.Lock()
				f.failStatus["dup"] = 403
				f.mu.Unlock()
				m := schemas.NewUserMessage()
				m.ToAddr, m.Content = schemas.String(twitter.NoUserAddr), schemas.String("dup")
				return m
			},
			wantNack: "Status is a duplicate.",
		},
	}
	for _, tc := range outbound {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg()
			m.TransportName = schemas.String("tw")
			env.SendOutbound(m)
			if tc.wantNack != "" {
				e := env.WaitEvent(func(e *schemas.Event) bool { return e.UserMessageID == m.MessageID }, 20*time.Second)
				if e.EventType != schemas.EventNack || e.NackReason == nil || !strings.Contains(*e.NackReason, tc.wantNack) {
					t.Errorf("event %s %v", e.EventType, e.NackReason)
				}
				return
			}
			f.waitRequest(t, tc.path, tc.match)
			e := env.WaitEvent(func(e *schemas.Event) bool { return e.UserMessageID == m.MessageID }, 20*time.Second)
			if e.EventType != schemas.EventAck || e.SentMessageID == nil || *e.SentMessageID == "" || *e.SentMessageID == m.MessageID {
				t.Errorf("event %s sent_message_id %v", e.EventType, e.SentMessageID)
			}
		})
	}

	t.Run("user stream reopened", func(t *testing.T) {
		before, _ := f.conns()
		f.closeUser <- struct{}{}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if now, _ := f.conns(); now > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("user stream not reopened")
			}
			time.Sleep(20 * time.Millisecond)
		}
		f.userStream <- `{"id_str":"400","text":"@vumibot still there?","user":{"screen_name":"erin"},"entities":{"user_mentions":[{"screen_name":"vumibot","indices":[0,8]}]}}`
		env.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "@erin" && m.Text() == "still there?" }, 20*time.Second)
	})

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.badSignatures != 0 {
		t.Errorf("%d requests had a bad signature", f.badSignatures)
	}
}
