package irc_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/schemas"
)

// TestBackpressure floods the IRC transport through a real ngircd while
// Kafka refuses every write: the transport stops reading (what ngircd
// forwarded waits unread in its socket), keeps its connection, and once
// Kafka takes writes again publishes every message once, in order per
// sender.
func TestBackpressure(t *testing.T) {
	port := chattest.FreePort(t)
	startNgircd(t, port)
	env := chattest.Start(t, testKinds(), "irc", fmt.Sprintf(`
  - name: irc_transport
    kind: vumi.transports.irc.IrcTransport
    transport_name: irc
    publish_status: true
    twisted_endpoint: tcp:host=127.0.0.1:port=%d
    nickname: floodbot
    heartbeat_interval: -1s
`, port))
	env.WaitStatus(func(s *schemas.Status) bool { return s.Status == schemas.StatusOK && s.Type == "connected" }, 30*time.Second)

	const senders = 6
	users := make([]*ircUser, senders)
	conns := make([]net.Conn, senders)
	for i := range users {
		users[i] = connectUser(t, port, fmt.Sprintf("sender%d", i))
		conns[i] = users[i].conn
	}
	chattest.CheckBackpressure(t, env, chattest.Flood{
		ServerPort: port,
		Except:     conns,
		Senders:    senders,
		PerSender:  25,
		Send:       func(s int, text string) { users[s].send("PRIVMSG floodbot :" + text) },
		// Longer than one publish attempt (30 s): the transport retries.
		Hold: 35 * time.Second,
	})
}
