package sendapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// runCallbacks posts inbound messages and events to the configured URLs,
// in a consumer group, committing a record only once its callback
// succeeded or it was sent to failures after the last retry.
func (a *API) runCallbacks(ctx context.Context) error {
	var topics []string
	urls := map[string]string{}
	for _, t := range a.cfg.Transports {
		n := a.Deps.Names
		if a.cfg.InboundURL != "" {
			topics = append(topics, n.Inbound(t))
			urls[n.Inbound(t)] = a.cfg.InboundURL
		}
		if a.cfg.EventURL != "" {
			topics = append(topics, n.Event(t))
			urls[n.Event(t)] = a.cfg.EventURL
		}
	}
	if len(topics) == 0 {
		<-ctx.Done()
		return nil
	}
	from := kgo.NewOffset().AtEnd()
	if a.cfg.CallbacksFrom == "start" {
		from = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(a.Deps.KafkaOpts(a.Name+".callbacks"),
		kgo.ConsumerGroup(a.Deps.Names.Prefix+a.Name+".callbacks"),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(from),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("callbacks: kafka client: %w", err)
	}
	defer cl.Close()
	httpc := &http.Client{Timeout: a.cfg.CallbackTimeout}
	dec := schemas.NewAnyDecoder(a.Deps.Registry)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			a.Log.Warn("callback fetch error", "topic", t, "partition", p, "error", err)
		})
		for _, r := range fetches.Records() {
			a.callback(ctx, httpc, dec, urls[r.Topic], r)
			if ctx.Err() != nil {
				return nil
			}
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("callback offsets not committed; callbacks may be repeated", "error", err)
		}
	}
}

// callback posts one record, retrying with backoff.
func (a *API) callback(ctx context.Context, httpc *http.Client, dec *schemas.AnyDecoder, target string, r *kgo.Record) {
	transport := r.Topic[len(a.Deps.Names.Prefix):]
	for _, suffix := range []string{topology.SuffixInbound, topology.SuffixEvent} {
		if len(transport) > len(suffix) && transport[len(transport)-len(suffix):] == suffix {
			transport = transport[:len(transport)-len(suffix)]
		}
	}
	body, err := dec.DecodeJSON(ctx, r.Value)
	if err != nil {
		a.failCallback(ctx, transport, r, nil, worker.Permanent(fmt.Errorf("undecodable record: %w", err)))
		return
	}
	backoff := a.cfg.CallbackBackoff
	var last error
	for attempt := 0; attempt <= a.cfg.CallbackMaxRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
		last = a.post(ctx, httpc, target, body)
		if last == nil {
			a.Count("callbacks", 1)
			return
		}
		a.Log.Warn("callback failed", "url", target, "attempt", attempt+1, "error", last)
	}
	a.failCallback(ctx, transport, r, body, worker.Temporary(fmt.Errorf("callback to %s failed %d times, last: %w", target, a.cfg.CallbackMaxRetries+1, last)))
}

func (a *API) post(ctx context.Context, httpc *http.Client, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if a.cfg.CallbackUsername != "" {
		req.SetBasicAuth(a.cfg.CallbackUsername, a.cfg.CallbackPassword)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (a *API) failCallback(ctx context.Context, transport string, r *kgo.Record, body []byte, cause error) {
	var decoded interface{ MarshalJSON() ([]byte, error) }
	if body != nil {
		decoded = rawJSON(body)
	}
	if err := a.SendFailure(ctx, transport, a.FailureFor(r, decoded, "", cause)); err != nil {
		a.Log.Error("callback failure not published", "error", err)
	}
}
