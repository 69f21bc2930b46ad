package graphite

import (
	"bufio"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestPlaintext(t *testing.T) {
	for _, tc := range []struct {
		p    Point
		want string
	}{
		{Point{"vumi.w1.sent.sum", 1700000000, 3}, "vumi.w1.sent.sum 3 1700000000\n"},
		{Point{"a.avg", 5, 0.125}, "a.avg 0.125 5\n"},
		{Point{"a.min", 5, -1e21}, "a.min -1000000000000000000000 5\n"},
	} {
		if got := string(AppendPlaintext(nil, tc.p)); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct{ prefix, name, want string }{
		{"", "vumi.w1.sent.sum", "vumi.w1.sent.sum"},
		{"stats.", "vumi.w1.sent.sum", "stats.vumi.w1.sent.sum"},
		{"", "bad name\n.sum", "bad_name_.sum"},
	} {
		if got := Path(tc.prefix, tc.name); got != tc.want {
			t.Errorf("Path(%q, %q) = %q, want %q", tc.prefix, tc.name, got, tc.want)
		}
	}
}

// TestPickleGolden checks the pickle encoding against bytes that Python's
// pickle.loads reads as [('vumi.w1.sent.sum', (1700000000, 3.0)),
// ('a.b', (-1, 2.5)), ('big', (1099511627776, -0.5))].
func TestPickleGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/pickle.hex")
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(AppendPickle(nil, []Point{{"vumi.w1.sent.sum", 1700000000, 3}, {"a.b", -1, 2.5}, {"big", 1 << 40, -0.5}}))
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("pickle\n got %s\nwant %s", got, want)
	}
	if empty := AppendPickle(nil, nil); hex.EncodeToString(empty) != "0000000480025d2e" {
		t.Errorf("empty pickle %x", empty)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml, wantErr string
		check         func(*Config) bool
	}{
		{yaml: "{}", check: func(c *Config) bool {
			return c.Address == "127.0.0.1:2003" && c.Protocol == Plaintext && c.BufferSize == 10000 && c.BatchSize == 500
		}},
		{yaml: "protocol: pickle", check: func(c *Config) bool { return c.Address == "127.0.0.1:2004" }},
		{yaml: "protocol: amqp", wantErr: "key protocol"},
		{yaml: "address: carbon", wantErr: "key address"},
		{yaml: "buffer_size: -1", wantErr: "key buffer_size"},
		{yaml: "prefix: 'a b.'", wantErr: "key prefix"},
		{yaml: "reconnect_delay: 1m\nmax_reconnect_delay: 1s", wantErr: "key max_reconnect_delay"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.yaml), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(&c) {
				t.Fatalf("err %v, config %+v", err, c)
			}
		})
	}
}

// lineServer accepts connections and collects the lines received; it
// drops the first connection after one line, as a restarting Carbon would.
type lineServer struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns int
}

func newLineServer(t *testing.T) *lineServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			first := s.conns == 1
			s.mu.Unlock()
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
					if first {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *lineServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func testConfig(addr string) *Config {
	c := &Config{Address: addr, BatchSize: 1}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	c.ReconnectDelay, c.MaxReconnectDelay = 10*time.Millisecond, 50*time.Millisecond
	return c
}

func TestSenderReconnects(t *testing.T) {
	srv := newLineServer(t)
	var ups, downs int
	s := &Sender{Config: testConfig(srv.ln.Addr().String()), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStatus: func(up bool, _ error) {
			if up {
				ups++
			} else {
				downs++
			}
		}}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Send(ctx, []Point{{"a", 1, 1}}); err != nil {
		t.Fatal(err)
	}
	// The server dropped the connection: the next batches go out on a new one.
	for !strings.Contains(strings.Join(srv.got(), "\n"), "a 1 1") {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Send(ctx, []Point{{"b", 2, 2}, {"c", 3, 3}}); err != nil {
		t.Fatal(err)
	}
	for len(srv.got()) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("received %v", srv.got())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.got(); got[0] != "a 1 1" || got[1] != "b 2 2" || got[2] != "c 3 3" {
		t.Errorf("received %v", got)
	}
	if ups < 1 {
		t.Errorf("status up reported %d times", ups)
	}
}

func TestSenderWaitsForCarbon(t *testing.T) {
	// Nothing listens: Send keeps retrying (holding its batch) until the
	// context ends, then fails without losing track of the points.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var downs int
	s := &Sender{Config: testConfig(addr), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OnStatus: func(up bool, _ error) {
		if !up {
			downs++
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Send(ctx, []Point{{"a", 1, 1}}); err == nil {
		t.Fatal("Send succeeded with no Carbon")
	}
	if downs != 1 {
		t.Errorf("status down reported %d times, want once", downs)
	}
}
