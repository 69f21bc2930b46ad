package transporttest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRecordingServer(t *testing.T) {
	rs := NewRecordingServer(t)
	rs.Respond(Response{Status: 503, Body: "busy"})
	for i, want := range []struct {
		status int
		body   string
	}{{503, "busy"}, {200, "OK"}} {
		resp, err := http.Post(rs.URL+"/send?to=1", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want.status || string(b) != want.body {
			t.Errorf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	r := rs.WaitRequest(func(r Request) bool { return r.Path == "/send" }, time.Second)
	if r.Method != "POST" || r.Body != "hi" || r.Query["to"][0] != "1" {
		t.Errorf("recorded %+v", r)
	}
	if n := len(rs.Requests()); n != 2 {
		t.Errorf("%d requests recorded", n)
	}
}
