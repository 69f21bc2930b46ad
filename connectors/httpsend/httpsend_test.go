package httpsend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
)

func TestPublic(t *testing.T) {
	u, _ := url.Parse("https://user:pw@sms.example.com:8443/send?username=u&password=s3cret#frag")
	if got := Public(u); got != "https://sms.example.com:8443/send" {
		t.Errorf("Public = %q", got)
	}
}

// TestDoUnreachable: a refused connection is a temporary failure whose
// text has no query (where providers take credentials).
func TestDoUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New("test", &http.Client{Timeout: 5 * time.Second})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/send?password=s3cret", nil)
	_, err = c.Do(context.Background(), nil, req)
	if code := worker.CodeOf(err); code == nil || *code != schemas.FailureTemporary || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v (code %v)", err, code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Error("the url.Error (with the full URL) was kept")
	}
}
