package transporttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Request is one HTTP request a transport made to the outside world.
type Request struct {
	Method string
	Path   string
	Query  map[string][]string
	Header http.Header
	Body   string
}

// Response is what the RecordingServer answers.
type Response struct {
	Status int
	Body   string
	Header map[string]string
}

// RecordingServer is the outside world of a transport that makes HTTP
// requests (an aggregator's send API): it records every request and
// answers with the next queued response, or 200 "OK".
type RecordingServer struct {
	*httptest.Server
	t        testing.TB
	mu       sync.Mutex
	requests []Request
	queue    []Response
	notify   chan struct{}
}

// NewRecordingServer starts a server on loopback, closed when the test ends.
func NewRecordingServer(t testing.TB) *RecordingServer {
	rs := &RecordingServer{t: t, notify: make(chan struct{}, 1)}
	rs.Server = httptest.NewServer(http.HandlerFunc(rs.serve))
	t.Cleanup(rs.Close)
	return rs
}

// Respond queues responses for the next requests, in order.
func (rs *RecordingServer) Respond(rr ...Response) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.queue = append(rs.queue, rr...)
}

func (rs *RecordingServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rs.mu.Lock()
	rs.requests = append(rs.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(body)})
	resp := Response{Status: 200, Body: "OK"}
	if len(rs.queue) > 0 {
		resp, rs.queue = rs.queue[0], rs.queue[1:]
	}
	rs.mu.Unlock()
	select {
	case rs.notify <- struct{}{}:
	default:
	}
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

// Requests returns the requests received so far.
func (rs *RecordingServer) Requests() []Request {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]Request(nil), rs.requests...)
}

// WaitRequest waits for a request matching match.
func (rs *RecordingServer) WaitRequest(match func(Request) bool, within time.Duration) Request {
	rs.t.Helper()
	deadline := time.After(within)
	for {
		for _, r := range rs.Requests() {
			if match(r) {
				return r
			}
		}
		select {
		case <-rs.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			rs.t.Fatalf("no matching request within %v (got %d)", within, len(rs.Requests()))
			return Request{}
		}
	}
}
