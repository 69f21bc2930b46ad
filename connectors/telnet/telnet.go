// Package telnet is Vumi's Telnet server transport: every connected client
// is an end user (addressed by its host:port), each line it types is an
// inbound message, connecting and disconnecting open and close a session.
// The addressed variant asks each client for its to_addr and from_addr.
package telnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is Vumi's TelnetServerConfig.
type Config struct {
	transport.Config `yaml:",inline"`
	// TwistedEndpoint is where the server listens, e.g. "tcp:9010" or
	// "tcp:port=9010:interface=127.0.0.1". Required (or telnet_port).
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Endpoint is accepted as a shorter name for twisted_endpoint.
	Endpoint string `yaml:"endpoint"`
	// TelnetHost and TelnetPort are Vumi's deprecated alternative to
	// twisted_endpoint.
	TelnetHost string `yaml:"telnet_host"`
	TelnetPort int    `yaml:"telnet_port"`
	// ToAddr of inbound messages; default the server's host:port.
	ToAddr string `yaml:"to_addr"`
	// TransportType of inbound messages; default "telnet".
	TransportType string `yaml:"transport_type"`
	// MaxLineBytes bounds one input line; default 4096.
	MaxLineBytes int `yaml:"max_line_bytes"`

	listen string
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	given := 0
	for _, s := range []string{c.TwistedEndpoint, c.Endpoint} {
		if s != "" {
			given++
		}
	}
	if c.TelnetPort != 0 {
		given++
	}
	if given == 0 {
		return errors.New("key twisted_endpoint: is required (or the deprecated telnet_host and telnet_port)")
	}
	if given > 1 {
		return errors.New("key twisted_endpoint: give only one of twisted_endpoint, endpoint and telnet_port")
	}
	desc := c.TwistedEndpoint + c.Endpoint
	if c.TelnetPort != 0 {
		desc = fmt.Sprintf("tcp:port=%d", c.TelnetPort)
		if c.TelnetHost != "" {
			desc += ":interface=" + c.TelnetHost
		}
	} else if c.TelnetHost != "" {
		return errors.New("key telnet_host: needs telnet_port")
	}
	addr, err := endpoint.Server(desc)
	if err != nil {
		key := "twisted_endpoint"
		if c.Endpoint != "" {
			key = "endpoint"
		}
		return fmt.Errorf("key %s: %w", key, err)
	}
	c.listen = addr
	if c.TransportType == "" {
		c.TransportType = schemas.TransportTelnet
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = 4096
	}
	if c.MaxLineBytes < 16 {
		return fmt.Errorf("key max_line_bytes: must be at least 16, got %d", c.MaxLineBytes)
	}
	return nil
}

// Kinds returns the telnet transport kinds.
func Kinds() []*topology.Kind {
	return []*topology.Kind{
		{
			Name: "telnet", Aliases: []string{"vumi.transports.telnet.TelnetServerTransport", "vumi.transports.TelnetServerTransport"},
			Role: topology.RoleTransport, Summary: "Telnet server: each connected client is an end user",
			NewConfig: func() topology.WorkerConfig { return &Config{} },
			Build:     build(false),
		},
		{
			Name: "telnet_addressed", Aliases: []string{"vumi.transports.telnet.AddressedTelnetServerTransport"},
			Role: topology.RoleTransport, Summary: "Telnet server that asks each client for to_addr and from_addr",
			NewConfig: func() topology.WorkerConfig { return &Config{} },
			Build:     build(true),
		},
	}
}

func build(addressed bool) func(*topology.Deps, *topology.WorkerSpec) (topology.Worker, error) {
	return func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
		return &Server{deps: deps, spec: spec, cfg: spec.Config.(*Config), addressed: addressed}, nil
	}
}

// Server is the telnet transport worker.
type Server struct {
	deps      *topology.Deps
	spec      *topology.WorkerSpec
	cfg       *Config
	addressed bool

	// set while running
	t       *transport.Transport
	ln      net.Listener
	toAddr  string
	mu      sync.Mutex
	clients map[string]*client
	ready   chan struct{}
}

// Addr returns the listening address once the server runs.
func (s *Server) Addr() net.Addr {
	<-s.ready
	return s.ln.Addr()
}

type client struct {
	conn     net.Conn
	from, to string
	wmu      sync.Mutex
}

func (c *client) write(text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(c.conn, text)
	return err
}

// Run listens and serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	s.ready = make(chan struct{})
	t, err := transport.New(s.deps, s.spec, &s.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	s.t = t
	ln, err := net.Listen("tcp", s.cfg.listen)
	if err != nil {
		_ = t.Status(ctx, "telnet", schemas.StatusDown, "listen_failed", err.Error(), nil)
		return fmt.Errorf("telnet: listen on %s: %w", s.cfg.listen, err)
	}
	s.ln = ln
	s.clients = map[string]*client{}
	s.toAddr = s.cfg.ToAddr
	if s.toAddr == "" {
		s.toAddr = ln.Addr().String()
	}
	close(s.ready)
	t.Log.Info("telnet server listening", "addr", ln.Addr().String())
	_ = t.Status(ctx, "telnet", schemas.StatusOK, "listening", "Listening on "+ln.Addr().String(), nil)

	var conns sync.WaitGroup
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			conn, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					t.Log.Error("accept failed", "error", err)
				}
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				s.serve(ctx, conn)
			}()
		}
	}()
	runErr := t.Run(ctx, transport.HandlerFunc(s.handleOutbound))
	_ = ln.Close()
	<-acceptDone
	// Disconnect everyone; each connection publishes its session close.
	s.mu.Lock()
	for _, c := range s.clients {
		_ = c.conn.Close()
	}
	s.mu.Unlock()
	conns.Wait()
	return runErr
}

// serve handles one client connection.
func (s *Server) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	pub := context.WithoutCancel(ctx)
	c := &client{conn: conn, from: conn.RemoteAddr().String(), to: s.toAddr}
	r := newTelnetReader(conn, c)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), s.cfg.MaxLineBytes)
	if s.addressed {
		if !s.askAddresses(c, sc) {
			return
		}
	}
	s.mu.Lock()
	s.clients[c.from] = c
	s.mu.Unlock()
	s.t.Log.Info("client connected", "from_addr", c.from)
	if err := s.publish(pub, c, nil, schemas.SessionNew); err != nil {
		s.t.Log.Error("cannot publish session start", "from_addr", c.from, "error", err)
	}
	defer func() {
		s.mu.Lock()
		// Only our own entry: another client may have taken the address
		// over since (the addressed variant lets users pick it).
		if s.clients[c.from] == c {
			delete(s.clients, c.from)
		}
		s.mu.Unlock()
		if err := s.publish(pub, c, nil, schemas.SessionClose); err != nil {
			s.t.Log.Error("cannot publish session close", "from_addr", c.from, "error", err)
		}
		s.t.Log.Info("client disconnected", "from_addr", c.from)
	}()
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r\n")
		if strings.EqualFold(line, "/quit") {
			return
		}
		if err := s.publish(pub, c, &line, schemas.SessionResume); err != nil {
			s.t.Log.Error("cannot publish message", "from_addr", c.from, "error", err)
			_ = c.write("[error: message not delivered, please try again]\n")
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		_ = c.write(fmt.Sprintf("[error: line longer than %d bytes, closing]\n", s.cfg.MaxLineBytes))
	}
}

// askAddresses is the addressed variant's dialogue.
func (s *Server) askAddresses(c *client, sc *bufio.Scanner) bool {
	ask := func(prompt string) (string, bool) {
		if c.write(prompt) != nil {
			return "", false
		}
		for sc.Scan() {
			if v := strings.TrimSpace(sc.Text()); v != "" {
				return v, true
			}
		}
		return "", false
	}
	to, ok := ask("Please provide \"to_addr\":\n")
	if !ok {
		return false
	}
	from, ok := ask("Please provide \"from_addr\":\n")
	if !ok {
		return false
	}
	c.to, c.from = to, from
	return c.write(fmt.Sprintf("[Sending all messages to: %s and from: %s]\n", to, from)) == nil
}

func (s *Server) publish(ctx context.Context, c *client, content *string, ev schemas.SessionEvent) error {
	m := schemas.NewUserMessage()
	m.FromAddr = schemas.String(c.from)
	m.ToAddr = schemas.String(c.to)
	m.Content = content
	m.SessionEvent = &ev
	m.TransportName = schemas.String(s.cfg.TransportName)
	m.TransportType = schemas.String(s.cfg.TransportType)
	return s.t.PublishMessage(ctx, m)
}

// handleOutbound writes a message to its client, or to every client with
// an UNKNOWN ADDR prefix (and a nack) when its address is not connected,
// as Vumi does. session_event close disconnects the client.
func (s *Server) handleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	text := strings.Join(splitLines(strings.TrimRight(m.Text(), "\r\n")), "\n")
	s.mu.Lock()
	target, ok := s.clients[m.To()]
	var targets []*client
	if ok {
		targets = []*client{target}
	} else {
		for _, c := range s.clients {
			targets = append(targets, c)
		}
		text = fmt.Sprintf("UNKNOWN ADDR [%s]: %s", m.To(), text)
	}
	s.mu.Unlock()
	var writeErr error
	for _, c := range targets {
		if err := c.write(text + "\n"); err != nil {
			s.t.Log.Warn("write to client failed", "to_addr", c.from, "error", err)
			writeErr = err
		}
		if m.Session() == schemas.SessionClose {
			_ = c.conn.Close()
		}
	}
	if !ok {
		return s.t.PublishNack(ctx, m.MessageID, "Unknown address.")
	}
	if writeErr != nil {
		return s.t.PublishNack(ctx, m.MessageID, "Could not write to the client: "+writeErr.Error())
	}
	return s.t.PublishAck(ctx, m.MessageID, m.MessageID)
}

func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}
