// Package devnull is Vumi's DevNullTransport: it fakes delivery to a
// network, acking (or nacking) outbound messages, reporting delivery, and
// optionally replying, at configured rates. Useful for load tests.
package devnull

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the DevNullTransport's config.
type Config struct {
	transport.Config `yaml:",inline"`
	// TransportType to emulate; default sms.
	TransportType string `yaml:"transport_type"`
	// AckRate is the share of messages acked; the rest are nacked.
	// Required, 0.0 to 1.0.
	AckRate *float64 `yaml:"ack_rate"`
	// FailureRate is the share of acked messages whose delivery report
	// says failed. Required, 0.0 to 1.0.
	FailureRate *float64 `yaml:"failure_rate"`
	// ReplyRate is the share of acked messages that get a reply.
	// Required, 0.0 to 1.0.
	ReplyRate *float64 `yaml:"reply_rate"`
	// ReplyCopy is the reply's content; default: echo the message.
	ReplyCopy string `yaml:"reply_copy"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	for _, r := range []struct {
		key string
		v   *float64
	}{{"ack_rate", c.AckRate}, {"failure_rate", c.FailureRate}, {"reply_rate", c.ReplyRate}} {
		if r.v == nil {
			return fmt.Errorf("key %s: is required (a number from 0.0 to 1.0)", r.key)
		}
		if *r.v < 0 || *r.v > 1 {
			return fmt.Errorf("key %s: %v is not between 0.0 and 1.0", r.key, *r.v)
		}
	}
	if c.TransportType == "" {
		c.TransportType = schemas.TransportSMS
	}
	return nil
}

// Kind is the devnull transport kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name: "devnull", Aliases: []string{"vumi.transports.devnull.DevNullTransport"},
		Role: topology.RoleTransport, Summary: "fakes delivery: acks, delivery reports and replies at configured rates",
		NewConfig: func() topology.WorkerConfig { return &Config{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			return &Transport{deps: deps, spec: spec, cfg: spec.Config.(*Config), rand: rand.Float64}, nil
		},
	}
}

// Transport is the devnull transport worker.
type Transport struct {
	deps *topology.Deps
	spec *topology.WorkerSpec
	cfg  *Config
	rand func() float64
	t    *transport.Transport
}

// Run consumes outbound messages until ctx is cancelled.
func (d *Transport) Run(ctx context.Context) error {
	t, err := transport.New(d.deps, d.spec, &d.cfg.Config)
	if err != nil {
		return err
	}
	defer t.Close()
	d.t = t
	return t.Run(ctx, transport.HandlerFunc(d.HandleOutbound))
}

// HandleOutbound fakes the delivery of one message.
func (d *Transport) HandleOutbound(ctx context.Context, m *schemas.UserMessage) error {
	if d.rand() > *d.cfg.AckRate {
		return d.t.PublishNack(ctx, m.MessageID, "Not accepted by network")
	}
	status := schemas.DeliveryDelivered
	if d.rand() < *d.cfg.FailureRate {
		status = schemas.DeliveryFailed
	}
	d.t.Log.Debug(fmt.Sprintf("MT %s: %s -> %s: %s", status, m.From(), m.To(), m.Text()))
	if err := d.t.PublishAck(ctx, m.MessageID, schemas.GenerateID()); err != nil {
		return err
	}
	if err := d.t.PublishDeliveryReport(ctx, m.MessageID, status, nil); err != nil {
		return err
	}
	if d.rand() < *d.cfg.ReplyRate {
		reply := d.cfg.ReplyCopy
		if reply == "" {
			reply = m.Text()
		}
		none := (*schemas.SessionEvent)(nil)
		in := &schemas.UserMessage{
			MessageID:     schemas.GenerateID(),
			Content:       schemas.String(reply),
			ToAddr:        m.FromAddr,
			FromAddr:      m.ToAddr,
			Provider:      schemas.String("devnull"),
			SessionEvent:  none,
			TransportType: schemas.String(d.cfg.TransportType),
		}
		return d.t.PublishMessage(ctx, in)
	}
	return nil
}
