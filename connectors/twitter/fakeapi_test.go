package twitter_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTwitter is a fake of the Twitter v1.1 REST and streaming APIs that
// checks every request's OAuth 1.0a signature with its own implementation
// of RFC 5849.
type fakeTwitter struct {
	t                        *testing.T
	srv                      *httptest.Server
	consumerKey, consumerSec string
	token, tokenSecret       string
	mu                       sync.Mutex
	requests                 []apiRequest
	nonces                   map[string]bool
	badSignatures            int
	userStream, trackStream  chan string
	userConns, trackConns    int
	closeUser                chan struct{}
	failStatus               map[string]int // status text -> HTTP code
	nextID                   int
	trackParams              url.Values
}

type apiRequest struct {
	Path   string
	Params url.Values
}

func newFakeTwitter(t *testing.T) *fakeTwitter {
	f := &fakeTwitter{
		t: t, consumerKey: "ck-123", consumerSec: "cs secret/+", token: "tok-456", tokenSecret: "ts~secret",
		nonces: map[string]bool{}, userStream: make(chan string, 100), trackStream: make(chan string, 100),
		closeUser: make(chan struct{}, 1), failStatus: map[string]int{}, nextID: 1000,
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// rfc3986 is percent-encoding per RFC 5849 §3.6, built on the standard
// library's query escaping.
func rfc3986(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// verify checks the Authorization header of r against its parameters.
func (f *fakeTwitter) verify(r *http.Request, form url.Values) error {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "OAuth ") {
		return fmt.Errorf("no OAuth header")
	}
	oauth := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(h, "OAuth "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("bad header part %q", part)
		}
		uk, _ := url.PathUnescape(k)
		uv, err := url.PathUnescape(strings.Trim(v, `"`))
		if err != nil {
			return err
		}
		oauth[uk] = uv
	}
	if oauth["oauth_consumer_key"] != f.consumerKey || oauth["oauth_token"] != f.token {
		return fmt.Errorf("wrong key or token")
	}
	if oauth["oauth_signature_method"] != "HMAC-SHA1" || oauth["oauth_version"] != "1.0" {
		return fmt.Errorf("wrong method or version")
	}
	ts, err := strconv.ParseInt(oauth["oauth_timestamp"], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("bad timestamp")
	}
	f.mu.Lock()
	replay := f.nonces[oauth["oauth_nonce"]]
	f.nonces[oauth["oauth_nonce"]] = true
	f.mu.Unlock()
	if replay || oauth["oauth_nonce"] == "" {
		return fmt.Errorf("nonce replayed")
	}
	var pairs []string
	add := func(k, v string) { pairs = append(pairs, rfc3986(k)+"="+rfc3986(v)) }
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			add(k, v)
		}
	}
	for k, vs := range form {
		for _, v := range vs {
			add(k, v)
		}
	}
	for k, v := range oauth {
		if k != "oauth_signature" {
			add(k, v)
		}
	}
	sort.Strings(pairs)
	base := r.Method + "&" + rfc3986("http://"+r.Host+r.URL.Path) + "&" + rfc3986(strings.Join(pairs, "&"))
	mac := hmac.New(sha1.New, []byte(rfc3986(f.consumerSec)+"&"+rfc3986(f.tokenSecret)))
	mac.Write([]byte(base))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(want), []byte(oauth["oauth_signature"])) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

func (f *fakeTwitter) serve(w http.ResponseWriter, r *http.Request) {
	var form url.Values
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			http.Error(w, "bad content type "+ct, http.StatusBadRequest)
			return
		}
		var err error
		if form, err = url.ParseQuery(string(b)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if err := f.verify(r, form); err != nil {
		f.mu.Lock()
		f.badSignatures++
		f.mu.Unlock()
		f.t.Logf("fake twitter: %s %s: %v", r.Method, r.URL.Path, err)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":32,"message":"Could not authenticate you."}]}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/userstream/1.1/user.json":
		if r.URL.Query().Get("with") != "user" {
			http.Error(w, "want with=user", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.userConns++
		f.mu.Unlock()
		f.stream(w, r, f.userStream, f.closeUser)
	case r.Method == http.MethodPost && r.URL.Path == "/stream/1.1/statuses/filter.json":
		f.mu.Lock()
		f.trackConns++
		f.trackParams = form
		f.mu.Unlock()
		f.stream(w, r, f.trackStream, nil)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/1.1/"):
		path := strings.TrimPrefix(r.URL.Path, "/api/1.1/")
		f.mu.Lock()
		f.requests = append(f.requests, apiRequest{Path: path, Params: form})
		f.nextID++
		id := f.nextID
		code := f.failStatus[form.Get("status")]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if code != 0 {
			w.WriteHeader(code)
			fmt.Fprint(w, `{"errors":[{"code":187,"message":"Status is a duplicate."}]}`)
			return
		}
		switch path {
		case "statuses/update.json":
			fmt.Fprintf(w, `{"id":%d,"id_str":"%d","text":%q,"user":{"screen_name":"vumibot"}}`, id, id, form.Get("status"))
		case "direct_messages/new.json":
			fmt.Fprintf(w, `{"id":%d,"id_str":"%d","text":%q,"recipient":{"screen_name":%q}}`, id, id, form.Get("text"), form.Get("screen_name"))
		case "friendships/create.json":
			fmt.Fprintf(w, `{"id":%d,"id_str":"%d","screen_name":%q}`, id, id, form.Get("screen_name"))
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":34,"message":"Sorry, that page does not exist."}]}`)
		}
	default:
		http.NotFound(w, r)
	}
}

// stream writes each queued message as one line, and a keep-alive newline
// every 100 ms, until the client goes or closeCh fires.
func (f *fakeTwitter) stream(w http.ResponseWriter, r *http.Request, msgs chan string, closeCh chan struct{}) {
	fl := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "\r\n")
	fl.Flush()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-closeCh:
			return
		case m := <-msgs:
			fmt.Fprint(w, m+"\r\n")
			fl.Flush()
		case <-tick.C:
			fmt.Fprint(w, "\r\n")
			fl.Flush()
		}
	}
}

func (f *fakeTwitter) waitRequest(t *testing.T, path string, match func(url.Values) bool) apiRequest {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, r := range f.requests {
			if r.Path == path && match(r.Params) {
				f.mu.Unlock()
				return r
			}
		}
		f.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s request matching within 20s", path)
	return apiRequest{}
}

func (f *fakeTwitter) conns() (user, track int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.userConns, f.trackConns
}
