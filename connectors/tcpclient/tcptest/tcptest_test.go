package tcptest

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A line protocol: each line is recorded and answered with "ok <line>";
// "login" logs the peer in.
func TestServerRecordsAndWaits(t *testing.T) {
	srv := New[string](t, "line server", func(s *Server[string], p *Peer) {
		r := bufio.NewReader(p.C)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			s.Record(line)
			if line == "login" {
				p.LoggedIn.Store(true)
			}
			p.Write([]byte("ok " + line + "\n"))
		}
	})
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("login\nhello\n")); err != nil {
		t.Fatal(err)
	}
	if p := srv.LoggedInPeer(0); p.Idx != 0 || srv.ConnCount() != 1 {
		t.Errorf("peer %d, %d connections", p.Idx, srv.ConnCount())
	}
	if got := srv.Find("hello", func(l string) bool { return strings.HasPrefix(l, "hel") }); got != "hello" {
		t.Errorf("Find: %q", got)
	}
	if got := srv.Filter(func(l string) bool { return l != "" }); strings.Join(got, ",") != "login,hello" {
		t.Errorf("Filter: %q", got)
	}
	r := bufio.NewReader(c)
	for _, want := range []string{"ok login\n", "ok hello\n"} {
		if got, err := r.ReadString('\n'); err != nil || got != want {
			t.Fatalf("answer %q %v, want %q", got, err, want)
		}
	}
	c.Close()
	srv.Wait("closed connection", func() bool { return srv.Conns[0].Closed.Load() })
}
