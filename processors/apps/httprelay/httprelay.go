// Package httprelay is Vumi's HTTPRelayApplication: every inbound user
// message is posted as Vumi JSON to url, every ack and delivery report to
// event_url, and a 200 response carrying "X-Vumi-HTTPRelay-Reply: true"
// becomes a reply with the response body as content.
//
// The HTTP calls are made in a franz-go consumer group, not in a goka
// callback: a slow or failing web application, with its retries and
// backoff, must not stall a goka partition or its rebalances. Offsets are
// committed only once a record's request succeeded or its failure was
// published, so delivery is at least once. docs/http-relay.md has more.
package httprelay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/apps/internal/relayhttp"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// ReplyHeader is the response header that asks for a reply.
const ReplyHeader = "X-Vumi-HTTPRelay-Reply"

// Config is HTTPRelayApplication's config.
type Config struct {
	app.Config `yaml:",inline"`
	// URL receives every inbound user message. Required.
	URL string `yaml:"url"`
	// EventURL receives acks and delivery reports; default url.
	EventURL string `yaml:"event_url"`
	// HTTPMethod of both requests; default POST.
	HTTPMethod string `yaml:"http_method"`
	// AuthMethod is the HTTP authentication used when username is set;
	// only "basic" (the default), as in Vumi.
	AuthMethod string `yaml:"auth_method"`
	// Username and Password for HTTP authentication; none when empty.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Timeout of one request; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries after the first attempt on a temporary failure
	// (connection error, timeout, 5xx, 429); default 3. What still fails
	// goes to <transport_name>.failures.
	MaxRetries int `yaml:"max_retries"`
	// RetryBackoff before the first retry, doubling up to 1 minute;
	// default 500ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	if c.EventURL == "" {
		c.EventURL = c.URL
	}
	if c.HTTPMethod == "" {
		c.HTTPMethod = http.MethodPost
	}
	c.HTTPMethod = strings.ToUpper(c.HTTPMethod)
	if c.AuthMethod == "" {
		c.AuthMethod = "basic"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.URL == "" {
		errs = append(errs, errors.New("key url: is required"))
	}
	for key, u := range map[string]string{"url": c.URL, "event_url": c.EventURL} {
		if u == "" {
			continue
		}
		if !relayhttp.ValidURL(u) {
			errs = append(errs, fmt.Errorf("key %s: %q is not an http(s) URL", key, u))
		}
	}
	switch c.HTTPMethod {
	case http.MethodPost, http.MethodPut, http.MethodGet, http.MethodPatch, http.MethodDelete:
	default:
		errs = append(errs, fmt.Errorf("key http_method: %q is not one of POST, PUT, PATCH, GET, DELETE", c.HTTPMethod))
	}
	if c.AuthMethod != "basic" {
		errs = append(errs, fmt.Errorf("key auth_method: HTTP Authentication method %q not supported (want basic)", c.AuthMethod))
	}
	if c.Timeout < 0 || c.MaxRetries < 0 || c.RetryBackoff < 0 {
		errs = append(errs, errors.New("key timeout: timeout, max_retries and retry_backoff must not be negative"))
	}
	return errors.Join(errs...)
}

// IO implements topology.WorkerConfig: no table, the relay keeps no state.
func (c *Config) IO(string) topology.IO {
	n := c.TransportName
	return topology.IO{
		Consumes: []topology.Stream{{Topic: n + topology.SuffixInbound, Kind: "user_message"}, {Topic: n + topology.SuffixEvent, Kind: "event"}},
		Produces: []topology.Stream{{Topic: n + topology.SuffixOutbound, Kind: "user_message"}, {Topic: n + topology.SuffixFailures, Kind: "failure"}},
	}
}

// Kind is the HTTP relay worker kind.
func Kind() *topology.Kind {
	return &topology.Kind{
		Name:    "http_relay",
		Aliases: []string{"vumi.application.http_relay.HTTPRelayApplication", "vumi.application.HTTPRelayApplication"},
		Role:    topology.RoleApplication,
		Summary: "posts messages and events to a web application as Vumi JSON and relays its replies",
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				return (&Relay{Base: b, cfg: cfg, http: &http.Client{Timeout: cfg.Timeout}}).Run(ctx)
			}), nil
		},
	}
}

// Relay is a running HTTP relay.
type Relay struct {
	*worker.Base
	cfg  *Config
	http *http.Client
}

// Run consumes until ctx is cancelled.
func (r *Relay) Run(ctx context.Context) error {
	n := r.Deps.Names
	inbound, event := n.Inbound(r.cfg.TransportName), n.Event(r.cfg.TransportName)
	cl, err := kgo.NewClient(append(r.Deps.KafkaOpts(r.Name+".consumer"),
		kgo.ConsumerGroup(n.Prefix+r.Name),
		kgo.ConsumeTopics(inbound, event),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("http relay %s: kafka client: %w", r.Name, err)
	}
	defer cl.Close()
	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	go r.RunHeartbeat(hbCtx)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			r.Log.Warn("fetch error", "topic", t, "partition", p, "error", err)
		})
		// Partitions are independent: each is relayed in order on its own
		// goroutine, so one slow user does not hold up the others.
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, rec := range p.Records {
					if ctx.Err() != nil {
						return
					}
					if rec.Topic == inbound {
						r.relayMessage(ctx, rec)
					} else {
						r.relayEvent(ctx, rec)
					}
				}
			}()
		})
		wg.Wait()
		if ctx.Err() != nil {
			return nil // uncommitted records are relayed again after a restart
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("offsets not committed; some requests may be repeated", "error", err)
		}
	}
}

func (r *Relay) client() *relayhttp.Client {
	return &relayhttp.Client{HTTP: r.http, Method: r.cfg.HTTPMethod, Username: r.cfg.Username, Password: r.cfg.Password,
		MaxRetries: r.cfg.MaxRetries, Backoff: r.cfg.RetryBackoff, Log: r.Log, Retried: func() { r.Count("http.retries", 1) }}
}

func (r *Relay) mw(p middleware.Phase) middleware.Context {
	return middleware.Context{Phase: p, Connector: r.cfg.TransportName, Worker: r.Name}
}

func (r *Relay) relayMessage(ctx context.Context, rec *kgo.Record) {
	var m schemas.UserMessage
	if err := r.Deps.Codecs.UserMessage.DecodeContext(r.RegistryWait(ctx), rec.Value, &m); err != nil {
		if schemas.IsRegistryUnavailable(err) {
			return // stopping while the registry is down: left uncommitted
		}
		r.fail(ctx, rec, nil, schemas.TypeUserMessage, worker.Permanent(fmt.Errorf("undecodable record: %w", err)))
		return
	}
	r.Count("inbound", 1)
	in, err := r.Stack.Inbound(ctx, &m, r.mw(middleware.Consume))
	if err != nil || in == nil {
		if err != nil {
			r.fail(ctx, rec, &m, schemas.TypeUserMessage, err)
		}
		return
	}
	body, err := in.MarshalJSON()
	if err != nil {
		r.fail(ctx, rec, in, schemas.TypeUserMessage, worker.Permanent(err))
		return
	}
	resp, err := r.client().Do(ctx, r.cfg.URL, body)
	if err != nil {
		if ctx.Err() == nil {
			r.fail(ctx, rec, in, schemas.TypeUserMessage, err)
		}
		return
	}
	if resp.Status != http.StatusOK || !strings.EqualFold(strings.TrimSpace(resp.Header.Get(ReplyHeader)), "true") {
		return
	}
	content := strings.TrimSpace(string(resp.Body))
	if content == "" {
		return
	}
	out, err := r.Stack.Outbound(ctx, in.Reply(content, true), r.mw(middleware.Publish))
	if err == nil && out != nil {
		err = worker.Produce(ctx, r.Base, r.Deps.Codecs.UserMessage, r.Deps.Names.Outbound(r.cfg.TransportName), topology.OutboundKey(out), out)
	}
	if err != nil {
		r.fail(ctx, rec, in, schemas.TypeUserMessage, fmt.Errorf("reply: %w", err))
		return
	}
	r.Count("replies", 1)
}

// relayEvent posts acks and delivery reports; nacks are not relayed, as
// in Vumi.
func (r *Relay) relayEvent(ctx context.Context, rec *kgo.Record) {
	var e schemas.Event
	if err := r.Deps.Codecs.Event.DecodeContext(r.RegistryWait(ctx), rec.Value, &e); err != nil {
		if schemas.IsRegistryUnavailable(err) {
			return // stopping while the registry is down: left uncommitted
		}
		r.fail(ctx, rec, nil, schemas.TypeEvent, worker.Permanent(fmt.Errorf("undecodable record: %w", err)))
		return
	}
	r.Count("event."+e.Status(), 1)
	in, err := r.Stack.Event(ctx, &e, r.mw(middleware.Consume))
	if err != nil || in == nil {
		if err != nil {
			r.fail(ctx, rec, &e, schemas.TypeEvent, err)
		}
		return
	}
	if in.EventType != schemas.EventAck && in.EventType != schemas.EventDeliveryReport {
		return
	}
	body, err := in.MarshalJSON()
	if err != nil {
		r.fail(ctx, rec, in, schemas.TypeEvent, worker.Permanent(err))
		return
	}
	if _, err := r.client().Do(ctx, r.cfg.EventURL, body); err != nil && ctx.Err() == nil {
		r.fail(ctx, rec, in, schemas.TypeEvent, err)
	}
}

func (r *Relay) fail(ctx context.Context, rec *kgo.Record, decoded interface{ MarshalJSON() ([]byte, error) }, msgType string, cause error) {
	if err := r.SendFailure(ctx, r.cfg.TransportName, r.FailureFor(rec, decoded, msgType, cause)); err != nil {
		r.Log.Error("failure not published", "error", err)
	}
}
