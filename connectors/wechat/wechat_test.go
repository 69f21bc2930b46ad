package wechat

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(Kind()) }

const within = 30 * time.Second

// fakeAPI is WeChat's API from its description: token, the customer
// service send, user info and menu creation.
type fakeAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []string
	pushes []map[string]any
	menus  []map[string]any
	status int
	errc   int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{status: 200}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, r.URL.Path)
		q := r.URL.Query()
		switch r.URL.Path {
		case "/cgi-bin/token":
			if q.Get("grant_type") != "client_credential" || q.Get("appid") != "app" || q.Get("secret") != "sec" {
				_, _ = io.WriteString(w, `{"errcode": 40013, "errmsg": "invalid appid"}`)
				return
			}
			_, _ = io.WriteString(w, `{"access_token": "TOKEN", "expires_in": 7200}`)
		case "/cgi-bin/message/custom/send":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			if q.Get("access_token") != "TOKEN" {
				_, _ = io.WriteString(w, `{"errcode": 40001, "errmsg": "invalid credential"}`)
				return
			}
			f.pushes = append(f.pushes, m)
			if f.status != 200 {
				w.WriteHeader(f.status)
				return
			}
			fmt.Fprintf(w, `{"errcode": %d, "errmsg": "x"}`, f.errc)
		case "/cgi-bin/user/info":
			fmt.Fprintf(w, `{"subscribe": 1, "openid": %q, "nickname": "Band", "language": %q}`, q.Get("openid"), q.Get("lang"))
		case "/cgi-bin/menu/create":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			f.menus = append(f.menus, m)
			_, _ = io.WriteString(w, `{"errcode": 0, "errmsg": "ok"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func start(t *testing.T, api *fakeAPI, extra string) *transporttest.Env {
	return transporttest.Start(t, kinds(), "wechat", fmt.Sprintf(`
  - name: wechat
    kind: vumi.transports.wechat.wechat.WeChatTransport
    transport_name: wechat
    twisted_endpoint: tcp:port=${WEB_PORT}:interface=127.0.0.1
    auth_token: tok3n
    wechat_appid: app
    wechat_secret: sec
    api_url: %s/cgi-bin/
%s`, api.srv.URL, extra))
}

func signed(token string, extra url.Values) string {
	q := url.Values{"timestamp": {"1234"}, "nonce": {"5678"}}
	parts := []string{"1234", "5678", token}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	q.Set("signature", hex.EncodeToString(sum[:]))
	for k, v := range extra {
		q[k] = v
	}
	return q.Encode()
}

type response struct {
	code int
	body string
}

func post(t *testing.T, e *transporttest.Env, query, body string) *transporttest.Pending {
	req, err := http.NewRequest(http.MethodPost, e.BaseURL+"/api/v1/wechat/?"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml")
	return transporttest.Go(req)
}

func wait(t *testing.T, p *transporttest.Pending) response {
	t.Helper()
	resp, body := p.Wait(t)
	return response{resp.StatusCode, body}
}

func textXML(from, content, msgID string) string {
	return fmt.Sprintf(`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%s</MsgId></xml>`, from, content, msgID)
}

func eventXML(from, event, key string) string {
	return fmt.Sprintf(`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event><EventKey><![CDATA[%s]]></EventKey></xml>`, from, event, key)
}

func TestVerification(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api, "")
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "echo when signed", Path: "/api/v1/wechat/?" + signed("tok3n", url.Values{"echostr": {"hello"}}), WantStatus: 200, WantBody: "hello"},
		{Name: "bad signature", Path: "/api/v1/wechat/?" + signed("wrong", url.Values{"echostr": {"hello"}}), WantStatus: 400},
		{Name: "unsigned post", Method: http.MethodPost, Path: "/api/v1/wechat/", Body: textXML("u", "x", "1"), WantStatus: 400, WantBody: "Bad request for incoming message"},
		{Name: "malformed XML", Method: http.MethodPost, Path: "/api/v1/wechat/?" + signed("tok3n", nil), Body: "<xml><MsgType>text", WantStatus: 400, WantBodyContains: []string{"invalid WeChat message"}},
		{Name: "unsupported type", Method: http.MethodPost, Path: "/api/v1/wechat/?" + signed("tok3n", nil), Body: "<xml><MsgType>image</MsgType></xml>", WantStatus: 400, WantBodyContains: []string{"Unsupported MsgType: image"}},
		{Name: "missing field", Method: http.MethodPost, Path: "/api/v1/wechat/?" + signed("tok3n", nil), Body: "<xml><MsgType>text</MsgType><ToUserName>a</ToUserName></xml>", WantStatus: 400, WantBodyContains: []string{"FromUserName must appear once"}},
	})
	e.WaitFailure(func(f *schemas.Failure) bool { return strings.Contains(f.Reason, "Unsupported MsgType") }, within)
}

func TestTextMessagesRepliesAndRedelivery(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api, "    embed_user_profile: true\n    embed_user_profile_lang: fr\n")
	q := signed("tok3n", nil)
	ch := post(t, e, q, textXML("fromUser", "hi <there>", "1001"))
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return true }, within)
	if in.From() != "fromUser" || in.To() != "toUser@default" || in.Text() != "hi <there>" || *in.TransportType != "wechat" || !in.Timestamp.Equal(time.Unix(1348831860, 0)) {
		t.Errorf("inbound %+v", in)
	}
	meta, _ := in.TransportMetadata["wechat"].(map[string]any)
	up, _ := meta["UserProfile"].(map[string]any)
	if meta["MsgId"] != "1001" || meta["ToUserName"] != "toUser" || meta["MsgType"] != "text" || up["nickname"] != "Band" || up["language"] != "fr" {
		t.Errorf("transport_metadata %v", meta)
	}
	reply := in.Reply("Hello & welcome", true)
	e.SendOutbound(reply)
	r := wait(t, ch)
	want := `<xml><ToUserName>fromUser</ToUserName><FromUserName>toUser</FromUserName><CreateTime>` + fmt.Sprint(reply.Timestamp.Unix()) + `</CreateTime><MsgType>text</MsgType><Content>Hello &amp; welcome</Content></xml>`
	if r.code != 200 || r.body != want {
		t.Errorf("reply %d %s\nwant %s", r.code, r.body, want)
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, within)

	// WeChat delivers the same message again: the cached reply, nothing new.
	before := len(e.Inbound())
	r = wait(t, post(t, e, q, textXML("fromUser", "hi <there>", "1001")))
	if r.code != 200 || r.body != want {
		t.Errorf("redelivery answered %d %q", r.code, r.body)
	}
	time.Sleep(200 * time.Millisecond)
	if len(e.Inbound()) != before {
		t.Error("a redelivered message was published again")
	}

	// A reply with a URL is a news message.
	ch = post(t, e, q, textXML("fromUser", "news?", "1002"))
	in2 := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Text() == "news?" }, within)
	e.SendOutbound(in2.Reply("Read this http://example.org/a?b=c", false))
	r = wait(t, ch)
	for _, s := range []string{"<MsgType>news</MsgType>", "<ArticleCount>1</ArticleCount>", "<Title>Read this </Title>", "<Url>http://example.org/a?b=c</Url>", "<Description>Read this http://example.org/a?b=c</Description>"} {
		if !strings.Contains(r.body, s) {
			t.Errorf("news reply lacks %q: %s", s, r.body)
		}
	}
}

func TestEventsMasksAndPush(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api, "")
	q := signed("tok3n", nil)
	// A menu click: answered at once, published as a new session with the
	// key as the address mask.
	r := wait(t, post(t, e, q, eventXML("fromUser", "CLICK", "menu1")))
	if r.code != 200 || r.body != "" {
		t.Errorf("event answered %d %q", r.code, r.body)
	}
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return true }, within)
	if in.To() != "toUser@menu1" || in.Session() != schemas.SessionNew || in.Content != nil {
		t.Errorf("click inbound %+v", in)
	}
	// Its reply has no waiting request: pushed through the API.
	reply := in.Reply("Menu 1", true)
	e.SendOutbound(reply)
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, within)
	api.mu.Lock()
	if len(api.pushes) != 1 || api.pushes[0]["touser"] != "fromUser" || api.pushes[0]["msgtype"] != "text" {
		t.Errorf("pushes %v", api.pushes)
	}
	api.mu.Unlock()
	// The user's next text is addressed within the menu.
	ch := post(t, e, q, textXML("fromUser", "1", "2001"))
	t1 := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Text() == "1" }, within)
	if t1.To() != "toUser@menu1" {
		t.Errorf("masked to_addr %q", t1.To())
	}
	// Closing the session clears the mask.
	e.SendOutbound(t1.Reply("bye", false))
	wait(t, ch)
	ch = post(t, e, q, textXML("fromUser", "2", "2002"))
	t2 := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.Text() == "2" }, within)
	if t2.To() != "toUser@default" {
		t.Errorf("to_addr after close %q", t2.To())
	}
	e.SendOutbound(t2.Reply("ok", true))
	wait(t, ch)
	// Unsubscribe: no message.
	n := len(e.Inbound())
	if r := wait(t, post(t, e, q, eventXML("fromUser", "unsubscribe", ""))); r.code != 200 {
		t.Errorf("unsubscribe %d", r.code)
	}
	time.Sleep(200 * time.Millisecond)
	if len(e.Inbound()) != n {
		t.Error("unsubscribe was published")
	}
	// Push failures nack.
	api.mu.Lock()
	api.status = 500
	api.mu.Unlock()
	m := &schemas.UserMessage{MessageID: "p1", ToAddr: schemas.String("fromUser"), FromAddr: schemas.String("toUser@default"), Content: schemas.String("x"),
		TransportName: schemas.String("wechat"), Timestamp: schemas.Now()}
	e.SendOutbound(m)
	ev := e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "p1" }, within)
	if ev.EventType != schemas.EventNack || *ev.NackReason != "Received status code: 500" {
		t.Errorf("push failure %+v", ev)
	}
	api.mu.Lock()
	api.status, api.errc = 200, 45015
	api.mu.Unlock()
	m.MessageID = "p2"
	e.SendOutbound(m)
	ev = e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == "p2" }, within)
	if ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "errcode: 45015") {
		t.Errorf("push errcode %+v", ev)
	}
}

func TestMenuCreatedAtStart(t *testing.T) {
	api := newFakeAPI(t)
	start(t, api, "    wechat_menu: {button: [{type: click, name: Daily Song, key: V1001_TODAY_MUSIC}]}\n")
	deadline := time.Now().Add(within)
	for {
		api.mu.Lock()
		n := len(api.menus)
		var b []any
		if n > 0 {
			b, _ = api.menus[0]["button"].([]any)
		}
		api.mu.Unlock()
		if n > 0 {
			if len(b) != 1 {
				t.Errorf("menu %v", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("menu not created")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseIncoming(t *testing.T) {
	in, err := ParseIncoming([]byte(textXML("u", "  hi  ", "42")))
	if err != nil || in.Content != "hi" || in.MsgID != "42" || in.MsgType != "text" {
		t.Errorf("%+v %v", in, err)
	}
	for _, bad := range []string{"", "<xml>", "<xml><MsgType>text</MsgType><MsgType>event</MsgType></xml>", "<xml></xml>", "<a/><b/>"} {
		if _, err := ParseIncoming([]byte(bad)); !errors.Is(err, ErrParse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	o := BuildOutgoing("u", "a", "1", schemas.String("see https://x.org/p"))
	if o.News == nil || o.News[0].URL != "https://x.org/p" || o.News[0].Title != "see " {
		t.Errorf("news %+v", o)
	}
	if j := string(BuildOutgoing("u", "a", "1", schemas.String("plain")).JSON()); j != `{"msgtype":"text","text":{"content":"plain"},"touser":"u"}` {
		t.Errorf("json %s", j)
	}
}

func TestConfig(t *testing.T) {
	transporttest.WantConfigErrors(t, kinds(), [][2]string{
		{"  - {name: a, kind: wechat, transport_name: a, auth_token: t, wechat_appid: a, wechat_secret: s}", "key twisted_endpoint"},
		{"  - {name: a, kind: wechat, transport_name: a, twisted_endpoint: 'tcp:80', wechat_appid: a, wechat_secret: s}", "key auth_token"},
		{"  - {name: a, kind: wechat, transport_name: a, twisted_endpoint: 'tcp:80', auth_token: t, wechat_appid: a}", "key wechat_secret"},
		{"  - {name: a, kind: wechat, transport_name: a, twisted_endpoint: 'tcp:80', auth_token: t, wechat_appid: a, wechat_secret: s, api_url: x}", "key api_url"},
	})
}

func FuzzParseIncoming(f *testing.F) {
	f.Add([]byte(textXML("u", "hi", "1")))
	f.Add([]byte(eventXML("u", "subscribe", "")))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseIncoming(b)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatal(err)
			}
			return
		}
		if in.MsgType != "text" && in.MsgType != "event" {
			t.Fatalf("type %q", in.MsgType)
		}
		_ = BuildOutgoing(in.FromUserName, in.ToUserName, in.CreateTime, &in.Content).XML()
	})
}
