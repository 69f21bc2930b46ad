package twitter

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestSignatureGolden is the worked example of Twitter's "Creating a
// signature" documentation.
func TestSignatureGolden(t *testing.T) {
	c := Credentials{
		ConsumerKey: "xvz1evFS4wEEPTGEFPHBog", ConsumerSecret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
		AccessToken: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", AccessSecret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
	}
	u, _ := url.Parse("https://api.twitter.com/1.1/statuses/update.json?include_entities=true")
	form := url.Values{"status": {"Hello Ladies + Gentlemen, a signed OAuth request!"}}
	h := c.authorization("POST", u, form, "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", time.Unix(1318622958, 0))
	if want := `oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D"`; !strings.Contains(h, want) {
		t.Errorf("header %s\nwant it to contain %s", h, want)
	}
	for _, p := range []string{`OAuth `, `oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog"`, `oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"`, `oauth_timestamp="1318622958"`, `oauth_version="1.0"`} {
		if !strings.Contains(h, p) {
			t.Errorf("header lacks %s: %s", p, h)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	cases := map[string]string{
		"Ladies + Gentlemen": "Ladies%20%2B%20Gentlemen",
		"An encoded string!": "An%20encoded%20string%21",
		"Dogs, Cats & Mice":  "Dogs%2C%20Cats%20%26%20Mice",
		"☃":                  "%E2%98%83",
		"a-b.c_d~e":          "a-b.c_d~e",
	}
	for in, want := range cases {
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := Config{ScreenName: "@vumibot", ConsumerKey: "k", ConsumerSecret: "s", AccessToken: "t", AccessTokenSecret: "ts"}
		c.TransportName = "tw"
		return c
	}
	cases := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "no screen name", mod: func(c *Config) { c.ScreenName = "" }, wantErr: "key screen_name: is required"},
		{name: "no consumer secret", mod: func(c *Config) { c.ConsumerSecret = "" }, wantErr: "key consumer_secret: is required"},
		{name: "no token secret", mod: func(c *Config) { c.AccessTokenSecret = "" }, wantErr: "key access_token_secret: is required"},
		{name: "empty endpoints", mod: func(c *Config) { c.Endpoints = map[string]string{} }, wantErr: "either dms, tweets or both"},
		{name: "same endpoints", mod: func(c *Config) { c.Endpoints = map[string]string{"dms": "x", "tweets": "x"} }, wantErr: "same endpoint"},
		{name: "unknown type", mod: func(c *Config) { c.Endpoints = map[string]string{"likes": "x"} }, wantErr: "key endpoints.likes"},
		{name: "bad term", mod: func(c *Config) { c.Terms = []string{"a,b"} }, wantErr: "key terms[0]"},
		{name: "bad api url", mod: func(c *Config) { c.APIURL = "ftp://x" }, wantErr: "key api_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ScreenName != "vumibot" || c.Endpoints["tweets"] != "default" || c.api.String() != "https://api.twitter.com/1.1/" {
				t.Errorf("defaults: %+v", c)
			}
		})
	}
}

func TestTweetAddressing(t *testing.T) {
	cases := []struct {
		name, json, to, content string
	}{
		{"leading mention", `{"text":"@bot hi","user":{"screen_name":"a"},"entities":{"user_mentions":[{"screen_name":"bot","indices":[0,4]}]}}`, "@bot", "hi"},
		{"later mention", `{"text":"hi @bot","user":{"screen_name":"a"},"entities":{"user_mentions":[{"screen_name":"bot","indices":[3,7]}]}}`, NoUserAddr, "hi @bot"},
		{"no entities", `{"text":"hello","user":{"screen_name":"a"}}`, NoUserAddr, "hello"},
		{"odd indices", `{"text":"x","user":{"screen_name":"a"},"entities":{"user_mentions":[{"screen_name":"b","indices":"0"}]}}`, NoUserAddr, "x"},
		{"mention not in text", `{"text":"hey","user":{"screen_name":"a"},"entities":{"user_mentions":[{"screen_name":"b","indices":[0,2]}]}}`, "@b", "hey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeObject([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if !isTweet(m) {
				t.Fatal("not a tweet")
			}
			if got := tweetToAddr(m); got != tc.to {
				t.Errorf("to %q, want %q", got, tc.to)
			}
			if got := tweetContent(m); got != tc.content {
				t.Errorf("content %q, want %q", got, tc.content)
			}
		})
	}
}

func FuzzStreamMessage(f *testing.F) {
	f.Add(`{"text":"@bot hi","user":{"screen_name":"a"},"entities":{"user_mentions":[{"screen_name":"bot","indices":[0,4]}]}}`)
	f.Add(`{"direct_message":{"text":"x","sender":{},"recipient":{}}}`)
	c := &Config{Endpoints: map[string]string{"tweets": "default", "dms": "dm"}}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := decodeObject([]byte(s))
		if err != nil {
			return
		}
		if isTweet(m) {
			_ = c.tweetMessage(m)
		}
		if dm := obj(m, "direct_message"); isDM(dm) {
			_ = c.dmMessage(dm)
		}
	})
}

func TestOutboundRequest(t *testing.T) {
	c := &Config{Endpoints: map[string]string{"tweets": "default", "dms": "dm"}}
	cases := []struct {
		name     string
		to       string
		endpoint string
		meta     schemas.Metadata
		path     string
		params   url.Values
		wantErr  string
	}{
		{name: "reply", to: "@alice", endpoint: "", meta: schemas.Metadata{"twitter": map[string]any{"status_id": "5"}}, path: "statuses/update.json", params: url.Values{"status": {"@alice hi"}, "in_reply_to_status_id": {"5"}}},
		{name: "no user", to: NoUserAddr, path: "statuses/update.json", params: url.Values{"status": {"hi"}}},
		{name: "dm", to: "@bob", endpoint: "dm", path: "direct_messages/new.json", params: url.Values{"screen_name": {"bob"}, "text": {"hi"}}},
		{name: "dm without address", to: NoUserAddr, endpoint: "dm", wantErr: "needs a to_addr"},
		{name: "unknown endpoint", to: "@x", endpoint: "sms", wantErr: `endpoint "sms"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &schemas.UserMessage{ToAddr: schemas.String(tc.to), Content: schemas.String("hi"), TransportMetadata: tc.meta}
			m.SetEndpoint(tc.endpoint)
			path, params, err := c.outboundRequest(m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || path != tc.path || params.Encode() != tc.params.Encode() {
				t.Errorf("got %s %v %v", path, params, err)
			}
		})
	}
}
