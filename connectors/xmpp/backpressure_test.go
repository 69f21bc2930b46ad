package xmpp

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/chattest"
	"github.com/vumi-kafka/vumi/schemas"
)

// TestBackpressure floods the XMPP transport through a real prosody while
// Kafka refuses every write, for longer than one publish attempt and than
// many ping intervals: the transport stops reading (what prosody forwarded
// waits unread in its socket), keeps its connection (a ping it cannot read
// the answer of does not count against the server), and once Kafka takes
// writes again publishes every message once, in order per sender.
func TestBackpressure(t *testing.T) {
	p := newProsody(t)
	p.register("bot", "b0t secret")
	const senders = 4
	for i := range senders {
		p.register(fmt.Sprintf("sender%d", i), "pass")
	}
	p.start()
	env := chattest.Start(t, testKinds(), "xmpp", fmt.Sprintf(`
  - name: xmpp_transport
    kind: vumi.transports.xmpp.XMPPTransport
    transport_name: xmpp
    publish_status: true
    host: 127.0.0.1
    port: %d
    username: bot@localhost
    password: "b0t secret"
    ping_interval: 1
    tls_ca_file: %s
    heartbeat_interval: -1s
`, p.port, p.caFile))
	env.WaitStatus(func(s *schemas.Status) bool { return s.Type == "connected" && s.Status == schemas.StatusOK }, 30*time.Second)

	users := make([]*xmppUser, senders)
	conns := make([]net.Conn, senders)
	for i := range users {
		users[i] = p.login(fmt.Sprintf("sender%d", i), "pass")
		conns[i] = users[i].c.raw
	}
	chattest.CheckBackpressure(t, env, chattest.Flood{
		ServerPort: p.port,
		Except:     conns,
		Senders:    senders,
		PerSender:  30,
		Send: func(s int, text string) {
			users[s].send("<message to='bot@localhost' type='chat'><body>" + esc(text) + "</body></message>")
		},
		// Longer than one publish attempt (30 s): the transport retries.
		Hold: 35 * time.Second,
	})
}
