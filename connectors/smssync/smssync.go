// Package smssync is Vumi's Ushahidi SMSSync transport: an Android phone
// running SMSSync posts the SMSes it receives, and polls for the SMSes it
// should send. SingleSmsSync serves one phone; MultiSmsSync serves many at
// <web_path>/<account_id>/.
//
// Outbound messages wait for their phone's next poll in a per-account
// queue kept in the compacted topic <transport>.smssync-queue (one record
// per queued message, deleted with a tombstone once handed to the phone);
// every instance reads the whole topic, so a phone may poll any instance.
package smssync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/httprpc"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the SMSSync transports' config.
type Config struct {
	httprpc.Config `yaml:",inline"`
	// ReplyDelay is how long, in seconds, a received SMS's request waits
	// for replies to hand back with it; default 0.5.
	ReplyDelay float64 `yaml:"reply_delay"`
	// SingleSmsSync: the phone's secret (default none), the account the
	// outbound queue is kept under (default the secret) and the country
	// code for normalising numbers (default none).
	SMSSyncSecret string `yaml:"smssync_secret"`
	AccountID     string `yaml:"account_id"`
	CountryCode   string `yaml:"country_code"`
	// MultiSmsSync: country code per account id.
	CountryCodes map[string]string `yaml:"country_codes"`

	multi bool
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if err := c.ValidateRPC(); err != nil {
		return err
	}
	if c.ReplyDelay == 0 {
		c.ReplyDelay = 0.5
	}
	if c.ReplyDelay < 0 {
		return fmt.Errorf("key reply_delay: must not be negative, got %v", c.ReplyDelay)
	}
	c.CountryCode = strings.TrimPrefix(c.CountryCode, "+")
	if c.AccountID == "" {
		c.AccountID = c.SMSSyncSecret
	}
	for acct, cc := range c.CountryCodes {
		c.CountryCodes[acct] = strings.TrimPrefix(cc, "+")
	}
	return nil
}

// QueueTopic is the compacted topic holding queued outbound messages.
func QueueTopic(transportName string) string { return transportName + ".smssync-queue" }

// IO implements topology.WorkerConfig.
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	q := topology.Stream{Topic: QueueTopic(c.TransportName), Kind: "user_message", Compacted: true}
	io.Consumes = append(io.Consumes, q)
	io.Produces = append(io.Produces, q)
	return io
}

// Kinds returns SingleSmsSync and MultiSmsSync.
func Kinds() []*topology.Kind {
	build := func(multi bool) func(*topology.Deps, *topology.WorkerSpec) (topology.Worker, error) {
		return func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			cfg.multi = multi
			return topology.WorkerFunc(func(ctx context.Context) error {
				h := &handler{cfg: cfg, queued: map[string][]*schemas.UserMessage{}}
				s, err := httprpc.New(deps, spec, &cfg.Config, h, httprpc.Options{ContentType: "application/json; charset=utf-8"})
				if err != nil {
					return err
				}
				h.s = s
				if err := h.startQueue(ctx); err != nil {
					s.Close()
					return err
				}
				defer h.q.Close()
				return s.Run(ctx)
			}), nil
		}
	}
	return []*topology.Kind{
		{Name: "smssync", Aliases: []string{"vumi.transports.smssync.SingleSmsSync", "vumi.transports.smssync.smssync.SingleSmsSync"},
			Role: topology.RoleTransport, Summary: "Ushahidi SMSSync for one phone",
			NewConfig: func() topology.WorkerConfig { return &Config{} }, Build: build(false)},
		{Name: "smssync_multi", Aliases: []string{"vumi.transports.smssync.MultiSmsSync", "vumi.transports.smssync.smssync.MultiSmsSync"},
			Role: topology.RoleTransport, Summary: "Ushahidi SMSSync for many phones at <web_path>/<account_id>/",
			NewConfig: func() topology.WorkerConfig { return &Config{} }, Build: build(true)},
	}
}

// account is what a request or message says about its phone.
type account struct {
	id, secret, countryCode string
}

type handler struct {
	cfg *Config
	s   *httprpc.Server
	q   *kgo.Client

	mu     sync.Mutex
	queued map[string][]*schemas.UserMessage // account -> queued outbound, oldest first
}

// startQueue reads the whole queue topic and keeps following it.
func (h *handler) startQueue(ctx context.Context) error {
	topic := h.s.Deps.Names.Prefix + QueueTopic(h.cfg.TransportName)
	cl, err := kgo.NewClient(append(h.s.Deps.KafkaOpts(h.s.Name+".queue"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		return err
	}
	h.q = cl
	// Load everything up to the current end before serving polls.
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("smssync queue %s: %w", topic, err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	loadCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for len(remaining) > 0 {
		fs := cl.PollFetches(loadCtx)
		if loadCtx.Err() != nil {
			return fmt.Errorf("smssync queue %s: loading timed out", topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			h.apply(ctx, r)
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	go func() {
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { h.apply(ctx, r) })
		}
	}()
	return nil
}

// apply adds a queued message or removes a delivered one.
func (h *handler) apply(ctx context.Context, r *kgo.Record) {
	key := string(r.Key)
	slash := strings.LastIndex(key, "/")
	if slash < 0 {
		return
	}
	acct, id := key[:slash], key[slash+1:]
	var queued *schemas.UserMessage
	if r.Value != nil {
		// Decoded before the queue is locked: while the schema registry
		// is unreachable this waits for it (the phones' polls go on).
		var m schemas.UserMessage
		if err := h.s.Deps.Codecs.UserMessage.DecodeContext(h.s.RegistryWait(ctx), r.Value, &m); err != nil {
			h.s.Log.Error("undecodable queued message", "key", string(r.Key), "error", err)
			return
		}
		queued = &m
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.queued[acct]
	for i, m := range list {
		if m.MessageID == id {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if queued != nil {
		list = append(list, queued)
	}
	if len(list) == 0 {
		delete(h.queued, acct)
	} else {
		h.queued[acct] = list
	}
}

func (h *handler) accountFor(r *http.Request) (account, bool) {
	if !h.cfg.multi {
		return account{id: h.cfg.AccountID, secret: h.cfg.SMSSyncSecret, countryCode: h.cfg.CountryCode}, true
	}
	rest := strings.Trim(strings.TrimPrefix(strings.Trim(r.URL.Path, "/"), strings.Trim(h.cfg.WebPath, "/")), "/")
	if rest == "" {
		return account{}, false
	}
	id := rest[strings.LastIndex(rest, "/")+1:]
	return account{id: id, countryCode: h.cfg.CountryCodes[id]}, true
}

func (h *handler) accountOf(m *schemas.UserMessage) (account, bool) {
	if !h.cfg.multi {
		return account{id: h.cfg.AccountID, secret: h.cfg.SMSSyncSecret, countryCode: h.cfg.CountryCode}, true
	}
	id, _ := m.TransportMetadata["account_id"].(string)
	if id == "" {
		return account{}, false
	}
	return account{id: id, countryCode: h.cfg.CountryCodes[id]}, true
}

// response is SMSSync's reply format.
func respond(r *httprpc.Request, s *httprpc.Server, payload map[string]any) {
	b, _ := json.Marshal(map[string]any{"payload": payload})
	r.Finish(s, b, http.StatusOK)
}

// HandleRequest implements httprpc.Handler: task=send is a poll for
// outbound messages; anything else delivers an SMS the phone received.
func (h *handler) HandleRequest(ctx context.Context, s *httprpc.Server, r *httprpc.Request) {
	args := r.Args()
	acct, ok := h.accountFor(r.HTTP)
	if !ok {
		s.Log.Warn("bad account", "path", r.HTTP.URL.Path)
		respond(r, s, map[string]any{"success": "false"})
		return
	}
	if args.Get("task") == "send" {
		h.respondWithPending(ctx, r, acct, map[string]any{"task": "send", "secret": acct.secret})
		return
	}
	for _, k := range []string{"secret", "sent_timestamp", "sent_to", "from", "message"} {
		if _, present := args[k]; !present {
			s.Log.Warn("bad request: missing parameter", "parameter", k)
			respond(r, s, map[string]any{"success": "false"})
			return
		}
	}
	if acct.secret != "" && args.Get("secret") != acct.secret {
		s.Log.Warn("bad secret", "account", acct.id)
		respond(r, s, map[string]any{"success": "false"})
		return
	}
	m := &schemas.UserMessage{
		TransportType: schemas.String(schemas.TransportSMS),
		ToAddr:        schemas.String(NormalizeMSISDN(args.Get("sent_to"), acct.countryCode)),
		FromAddr:      schemas.String(NormalizeMSISDN(args.Get("from"), acct.countryCode)),
		Content:       schemas.String(args.Get("message")),
		Timestamp:     parseTimestamp(args.Get("sent_timestamp")),
	}
	if h.cfg.multi {
		m.TransportMetadata = schemas.Metadata{"account_id": acct.id}
	}
	if err := s.Publish(ctx, r, m); err != nil {
		s.Log.Error("inbound message not published", "error", err)
		respond(r, s, map[string]any{"success": "false"})
		return
	}
	// Wait reply_delay for replies, then answer with whatever is queued.
	go func() {
		select {
		case <-time.After(time.Duration(h.cfg.ReplyDelay * float64(time.Second))):
		case <-r.HTTP.Context().Done():
			return
		}
		h.respondWithPending(context.WithoutCancel(ctx), r, acct, map[string]any{"success": "true"})
	}()
}

// respondWithPending answers with the account's queued messages, removes
// them from the queue and acks them.
func (h *handler) respondWithPending(ctx context.Context, r *httprpc.Request, acct account, payload map[string]any) {
	h.mu.Lock()
	pending := h.queued[acct.id]
	delete(h.queued, acct.id)
	h.mu.Unlock()
	msgs := make([]map[string]string, 0, len(pending))
	for _, m := range pending {
		msgs = append(msgs, map[string]string{"to": m.To(), "message": m.Text()})
	}
	payload["messages"] = msgs
	respond(r, h.s, payload)
	topic := h.s.Deps.Names.Prefix + QueueTopic(h.cfg.TransportName)
	for _, m := range pending {
		if err := kafka.ProduceSync(ctx, h.q, &kgo.Record{Topic: topic, Key: []byte(acct.id + "/" + m.MessageID)}); err != nil {
			h.s.Log.Error("queued message not removed; the phone may get it twice", "message_id", m.MessageID, "error", err)
		}
		if err := h.s.PublishAck(ctx, m.MessageID, m.MessageID); err != nil {
			h.s.Log.Error("ack not published", "message_id", m.MessageID, "error", err)
		}
	}
}

// HandleReply implements httprpc.ReplyHandler: outbound messages wait in
// their account's queue for the phone's next poll.
func (h *handler) HandleReply(ctx context.Context, s *httprpc.Server, m *schemas.UserMessage) error {
	acct, ok := h.accountOf(m)
	if !ok {
		const reason = "SmsSyncTransport couldn't determine secret for outbound message."
		if err := s.PublishNack(ctx, m.MessageID, reason); err != nil {
			return err
		}
		return worker.Permanent(errors.New(reason))
	}
	v, err := s.Deps.Codecs.UserMessage.Encode(m)
	if err != nil {
		return worker.Permanent(err)
	}
	topic := s.Deps.Names.Prefix + QueueTopic(h.cfg.TransportName)
	if err := kafka.ProduceSync(ctx, h.q, &kgo.Record{Topic: topic, Key: []byte(acct.id + "/" + m.MessageID), Value: v}); err != nil {
		return worker.Temporary(fmt.Errorf("queue outbound message: %w", err))
	}
	// Make it visible to this instance's next poll at once (unless the
	// queue consumer was quicker).
	h.mu.Lock()
	present := false
	for _, q := range h.queued[acct.id] {
		present = present || q.MessageID == m.MessageID
	}
	if !present {
		h.queued[acct.id] = append(h.queued[acct.id], m)
	}
	h.mu.Unlock()
	return nil
}

// NormalizeMSISDN is Vumi's normalize_msisdn: short codes (5 characters or
// fewer) are kept; otherwise digits and '+' only, 00 becomes +, a leading
// 0 becomes +<country code>, and a number starting with the country code
// gains a +.
func NormalizeMSISDN(raw, countryCode string) string {
	if len(raw) <= 5 {
		return raw
	}
	var b strings.Builder
	for _, c := range raw {
		if (c >= '0' && c <= '9') || c == '+' {
			b.WriteRune(c)
		}
	}
	n := b.String()
	switch {
	case strings.HasPrefix(n, "00"):
		return "+" + n[2:]
	case strings.HasPrefix(n, "0"):
		return "+" + countryCode + n[1:]
	case strings.HasPrefix(n, "+"):
		return n
	case strings.HasPrefix(n, countryCode):
		return "+" + n
	}
	return n
}

// parseTimestamp reads SMSSync's sent_timestamp: "MM-DD-YY HH:MM" or Unix
// milliseconds; anything else is now.
func parseTimestamp(s string) time.Time {
	if t, err := time.ParseInLocation("01-02-06 15:04", s, time.UTC); err == nil {
		return t
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC().Truncate(time.Microsecond)
	}
	return schemas.Now()
}
