package mxit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func kinds() *topology.Registry { return topology.NewRegistry().Add(Kind()) }

// fakeAPI is Mxit's authentication and Messaging APIs, from their
// description: POST /token (Basic auth, client credentials) answers a
// token; POST /message/send/ needs it as a bearer token.
type fakeAPI struct {
	srv        *httptest.Server
	mu         sync.Mutex
	tokenCalls []url.Values
	sends      []map[string]any
	sendAuth   []string
	tokens     atomic.Int64
	revoke     atomic.Bool
	authError  atomic.Bool
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/token":
			user, pass, _ := r.BasicAuth()
			_ = r.ParseForm()
			f.mu.Lock()
			f.tokenCalls = append(f.tokenCalls, r.PostForm)
			f.mu.Unlock()
			if user != "cid" || pass != "csecret" || f.authError.Load() {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error": "invalid_client", "error_description": "The client credentials are invalid"}`)
				return
			}
			n := f.tokens.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok%d", n), "token_type": "bearer", "expires_in": 3600, "scope": r.PostForm.Get("scope")})
		case "/message/send/":
			var m map[string]any
			_ = json.NewDecoder(r.Body).Decode(&m)
			f.mu.Lock()
			f.sends = append(f.sends, m)
			f.sendAuth = append(f.sendAuth, r.Header.Get("Authorization"))
			f.mu.Unlock()
			if f.revoke.Swap(false) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if m["To"] == "rejected" {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, "unknown user")
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func start(t *testing.T, api *fakeAPI) *transporttest.Env {
	return transporttest.Start(t, kinds(), "mxit", fmt.Sprintf(`
  - name: mxit
    kind: vumi.transports.mxit.mxit.MxitTransport
    transport_name: mxit
    web_path: /mxit
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    client_id: cid
    client_secret: csecret
    api_send_url: %s/message/send/
    api_auth_url: %s
    redis_manager: {}
`, api.srv.URL, api.srv.URL))
}

var mxitHeaders = map[string]string{
	"X-Device-User-Agent": "ua",
	"X-Mxit-Contact":      "contact",
	"X-Mxit-USERID-R":     "user-id",
	"X-Mxit-Nick":         "nick",
	"X-Mxit-Location":     "ZA,South Africa,11,Western Cape,23,Kraaifontein,3,537001999,1234",
	"X-Mxit-Profile":      "en,ZA,1990-01-01,Male,1",
	"X-Mxit-User-Input":   "&lt;&amp;&gt;",
}

// request sends a Mobi Portal request in the background; its response
// arrives once the application replies.
func request(t *testing.T, e *transporttest.Env, query string, headers map[string]string) *transporttest.Pending {
	req, _ := http.NewRequest(http.MethodGet, e.BaseURL+"/mxit"+query, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return transporttest.Go(req)
}

func TestMobiPortalRequestAndReply(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api)
	done := request(t, e, "", mxitHeaders)
	in := e.WaitInbound(func(m *schemas.UserMessage) bool { return true }, 30*time.Second)
	if in.To() != "contact" || in.From() != "user-id" || *in.Provider != "mxit" || *in.TransportType != "mxit" {
		t.Errorf("inbound %+v", in)
	}
	if in.Text() != "&lt;&amp;&gt;" {
		t.Errorf("content %q: Vumi URL-decodes the header (it does not HTML-decode it)", in.Text())
	}
	info, _ := in.HelperMetadata["mxit_info"].(map[string]any)
	loc, _ := info["X-Mxit-Location"].(map[string]any)
	prof, _ := info["X-Mxit-Profile"].(map[string]any)
	if info["X-Mxit-User-Input"] != "<&>" || info["X-Mxit-Nick"] != "nick" || loc["city"] != "Kraaifontein" || loc["cell_id"] != "1234" || prof["gender"] != "Male" || len(info) != 7 {
		t.Errorf("mxit_info %v", info)
	}
	reply := in.Reply("Hello!\n1. option 1\n2. option <2>\n3. option 3", true)
	e.SendOutbound(reply)
	resp, body := done.Wait(t)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{`<meta name="mxit" content="clearscreen" />`, "<p>Hello!</p>", `<a href="?input=1">`, "1. option 1", "2. option &lt;2&gt;", `?input=3`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	e.WaitEvent(func(ev *schemas.Event) bool {
		return ev.UserMessageID == reply.MessageID && ev.EventType == schemas.EventAck
	}, 30*time.Second)

	// Input from the query when the header is absent; a plain reply has no list.
	h := map[string]string{"X-Mxit-Contact": "contact", "X-Mxit-USERID-R": "u2"}
	done = request(t, e, "?input=bar", h)
	in2 := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "u2" }, 30*time.Second)
	if in2.Text() != "bar" {
		t.Errorf("content from input %q", in2.Text())
	}
	e.SendOutbound(in2.Reply("foo!", false))
	_, body = done.Wait(t)
	if !strings.Contains(body, "<p>foo!</p>") || strings.Contains(body, "<ul>") {
		t.Errorf("plain page %s", body)
	}
	// A quote_plus'd header is decoded.
	h3 := map[string]string{"X-Mxit-Contact": "contact", "X-Mxit-USERID-R": "u3", "X-Mxit-User-Input": "foo+bar%21"}
	done = request(t, e, "", h3)
	in3 := e.WaitInbound(func(m *schemas.UserMessage) bool { return m.From() == "u3" }, 30*time.Second)
	if in3.Text() != "foo bar!" {
		t.Errorf("unquoted content %q", in3.Text())
	}
	e.SendOutbound(in3.Reply("ok", false))
	done.Wait(t)
}

func TestNotAMxitRequest(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api)
	transporttest.Run(t, e, []transporttest.Case{
		{Name: "no contact header", Path: "/mxit", WantStatus: 400, WantBody: "Bad Request"},
	})
}

func TestSendsThroughMessagingAPI(t *testing.T) {
	api := newFakeAPI(t)
	e := start(t, api)
	send := func(id, to string) *schemas.Event {
		e.SendOutbound(&schemas.UserMessage{MessageID: id, FromAddr: schemas.String("myapp"), ToAddr: schemas.String(to), Content: schemas.String("hello"),
			TransportName: schemas.String("mxit"), TransportType: schemas.String("mxit"), Timestamp: schemas.Now()})
		return e.WaitEvent(func(ev *schemas.Event) bool { return ev.UserMessageID == id }, 30*time.Second)
	}
	if ev := send("s1", "user-1"); ev.EventType != schemas.EventAck {
		t.Errorf("event %+v", ev)
	}
	api.mu.Lock()
	if len(api.tokenCalls) != 1 || api.tokenCalls[0].Get("grant_type") != "client_credentials" || api.tokenCalls[0].Get("scope") != "message/send" {
		t.Errorf("token requests %v", api.tokenCalls)
	}
	want := map[string]any{"Body": "hello", "ContainsMarkup": "true", "From": "myapp", "To": "user-1", "Spool": "true"}
	for k, v := range want {
		if api.sends[0][k] != v {
			t.Errorf("send %s = %v, want %v", k, api.sends[0][k], v)
		}
	}
	if api.sendAuth[0] != "Bearer tok1" {
		t.Errorf("authorization %q", api.sendAuth[0])
	}
	api.mu.Unlock()
	// The token is reused; a 401 gets a new one and one more try.
	send("s2", "user-2")
	api.revoke.Store(true)
	if ev := send("s3", "user-3"); ev.EventType != schemas.EventAck {
		t.Errorf("after a revoked token: %+v", ev)
	}
	api.mu.Lock()
	if len(api.tokenCalls) != 2 || api.sendAuth[1] != "Bearer tok1" || api.sendAuth[3] != "Bearer tok2" {
		t.Errorf("token use: %d token calls, auth %v", len(api.tokenCalls), api.sendAuth)
	}
	api.mu.Unlock()
	// Mxit refuses the message: nack.
	if ev := send("s4", "rejected"); ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "HTTP 400: unknown user") {
		t.Errorf("rejected send: %+v", ev)
	}
	// The token request fails: nack with Mxit's error.
	api.revoke.Store(true)
	api.authError.Store(true)
	if ev := send("s5", "user-5"); ev.EventType != schemas.EventNack || !strings.Contains(*ev.NackReason, "invalid_client: The client credentials are invalid.") {
		t.Errorf("auth failure: %+v", ev)
	}
}

func TestParseAndRender(t *testing.T) {
	h, items := ParseResponse("Hello!\n1. option 1\n2. option 2\n3. option 3")
	if h != "Hello!" || len(items) != 3 || items[1] != [2]string{"2", "option 2"} {
		t.Errorf("parsed %q %v", h, items)
	}
	if h, items := ParseResponse("foo!"); h != "foo!" || items != nil {
		t.Errorf("single line %q %v", h, items)
	}
	page := string(RenderResponse("Zoë ☃\n1. café"))
	if !strings.Contains(page, "<p>Zoë ☃</p>") || !strings.Contains(page, "1. café") {
		t.Errorf("unicode page %s", page)
	}
}

func TestConfig(t *testing.T) {
	transporttest.WantConfigErrors(t, kinds(), [][2]string{
		{"  - {name: a, kind: mxit, transport_name: a, web_path: /x, client_secret: s}", "key client_id"},
		{"  - {name: a, kind: mxit, transport_name: a, web_path: /x, client_id: c}", "key client_secret"},
		{"  - {name: a, kind: mxit, transport_name: a, web_path: /x, client_id: c, client_secret: s, api_send_url: 'nope'}", "key api_send_url"},
		{"  - {name: a, kind: mxit, transport_name: a, web_path: /x, client_id: c, client_secret: s, timeout: -1}", "key timeout"},
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add("Hello!\n1. a\n2. b")
	f.Add("x\r\n\r\n1")
	f.Fuzz(func(t *testing.T, s string) {
		h, items := ParseResponse(s)
		if len(h) > len(s) {
			t.Fatal("header longer than the content")
		}
		for _, it := range items {
			if it[0] == "" || it[1] == "" {
				t.Fatalf("empty item %v", it)
			}
		}
		_ = RenderResponse(s)
	})
}

func FuzzRequestData(f *testing.F) {
	f.Add("ZA,South Africa", "en,ZA", "&lt;x&gt;", "foo+bar%2")
	f.Fuzz(func(t *testing.T, loc, prof, input, raw string) {
		h := http.Header{}
		h.Set("X-Mxit-Location", loc)
		h.Set("X-Mxit-Profile", prof)
		h.Set("X-Mxit-User-Input", input)
		d := requestData(h)
		if _, ok := d["X-Mxit-Location"].(map[string]any); !ok {
			t.Fatal("location not parsed")
		}
		r := &http.Request{Header: http.Header{"X-Mxit-User-Input": {raw}}}
		_ = requestContent(r)
	})
}
