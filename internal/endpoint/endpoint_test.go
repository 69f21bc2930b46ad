package endpoint

import (
	"strings"
	"testing"
)

func TestServer(t *testing.T) {
	ok := map[string]string{
		"tcp:9010":                          ":9010",
		"tcp:port=9010":                     ":9010",
		"tcp:port=9010:interface=127.0.0.1": "127.0.0.1:9010",
		"tcp:9010:interface=127.0.0.1":      "127.0.0.1:9010",
		"127.0.0.1:9010":                    "127.0.0.1:9010",
		":0":                                ":0",
		"tcp6:port=9010:interface=\\:\\:1":  "[::1]:9010",
		"tcp:port=9010:interface=0.0.0.0:backlog=50": "0.0.0.0:9010",
	}
	for in, want := range ok {
		got, err := Server(in)
		if err != nil || got != want {
			t.Errorf("Server(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                   "empty",
		"tcp:":               "port",
		"unix:/tmp/x":        "only tcp",
		"tcp:port=99999":     "not a number",
		"tcp:port=1:iface=x": "unknown option",
		"9010":               "want PROTOCOL:ARGS",
	}
	for in, want := range bad {
		if _, err := Server(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Server(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestClient(t *testing.T) {
	ok := map[string]string{
		"tcp:host=localhost:port=2775": "localhost:2775",
		"tcp:localhost:2775":           "localhost:2775",
		"smsc.example.com:2775":        "smsc.example.com:2775",
	}
	for in, want := range ok {
		got, err := Client(in)
		if err != nil || got != want {
			t.Errorf("Client(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tcp:host=x", "tcp:port=1", "tcp:host=x:port=y", "unix:/x"} {
		if _, err := Client(in); err == nil {
			t.Errorf("Client(%q) should fail", in)
		}
	}
}

func FuzzEndpoints(f *testing.F) {
	for _, s := range []string{"tcp:9010", "tcp:port=1:interface=\\:\\:1", "tcp:host=a:port=2", "127.0.0.1:80", ":", "tcp:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Server(s)
		_, _ = Client(s)
	})
}
