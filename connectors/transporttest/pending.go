package transporttest

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Pending is an HTTP request sent in the background, for a transport that
// answers only once the application replies.
type Pending struct{ ch chan pendingResult }

type pendingResult struct {
	resp *http.Response
	body string
	err  error
}

// Go sends req in the background with http.DefaultClient.
func Go(req *http.Request) *Pending {
	p := &Pending{ch: make(chan pendingResult, 1)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.ch <- pendingResult{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p.ch <- pendingResult{resp: resp, body: string(b)}
	}()
	return p
}

// Wait returns the response and its body, failing the test when the
// request failed or no response came within 60 s.
func (p *Pending) Wait(t testing.TB) (*http.Response, string) {
	t.Helper()
	select {
	case r := <-p.ch:
		if r.err != nil {
			t.Fatalf("request failed: %v", r.err)
		}
		return r.resp, r.body
	case <-time.After(60 * time.Second):
		t.Fatal("no HTTP response within 60s")
	}
	return nil, ""
}
