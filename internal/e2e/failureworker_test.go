package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// flakyKind is a transport that fails by content: "temporary N" fails
// temporarily N times then succeeds; "permanent" fails permanently;
// "always" fails temporarily for ever.
type flakyConfig struct {
	transport.Config `yaml:",inline"`
}

func (c *flakyConfig) Validate() error { return c.ValidateBase() }

var flakyAttempts sync.Map // message id -> *int

func flakyKind() *topology.Kind {
	return &topology.Kind{
		Name: "flaky", Role: topology.RoleTransport, Summary: "fails on purpose",
		NewConfig: func() topology.WorkerConfig { return &flakyConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*flakyConfig)
			return topology.WorkerFunc(func(ctx context.Context) error {
				t, err := transport.New(deps, spec, &cfg.Config)
				if err != nil {
					return err
				}
				defer t.Close()
				return t.Run(ctx, transport.HandlerFunc(func(ctx context.Context, m *schemas.UserMessage) error {
					v, _ := flakyAttempts.LoadOrStore(m.MessageID, new(int))
					n := v.(*int)
					*n++
					switch {
					case m.Text() == "permanent":
						return worker.Permanent(errors.New("rejected for good"))
					case m.Text() == "always":
						return worker.Temporary(errors.New("still down"))
					case strings.HasPrefix(m.Text(), "temporary") && *n <= 2:
						return worker.Temporary(errors.New("try later"))
					}
					return t.PublishAck(ctx, m.MessageID, "sent-"+m.MessageID)
				}))
			}), nil
		},
	}
}

// TestFailureWorker: temporary failures are retried with backoff until they
// succeed; permanent ones and exhausted retries are parked as dead letters.
func TestFailureWorker(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: flaky
    kind: flaky
    transport_name: dn
  - name: failures
    kind: vumi.transports.failures.FailureWorker
    transport_name: dn
    retry_initial_delay: 0.2
    retry_delay_factor: 2
    retry_max_delay: 1
    retry_granularity: 0
    retry_delivery_period: 0.1
    max_retries: 3
`)
	temp, perm, always := schemas.NewUserMessage(), schemas.NewUserMessage(), schemas.NewUserMessage()
	temp.ToAddr, temp.Content = schemas.String("+27820000001"), schemas.String("temporary 2")
	perm.ToAddr, perm.Content = schemas.String("+27820000002"), schemas.String("permanent")
	always.ToAddr, always.Content = schemas.String("+27820000003"), schemas.String("always")
	c.produceOutbound(t, "dn.outbound", temp, perm, always)

	// The temporary one is acked after two retries.
	ev := c.Collect(t, c.Consumer(t, "dn.event"), 60*time.Second, func(got []any) bool {
		for _, v := range got {
			if e := v.(*schemas.Event); e.UserMessageID == temp.MessageID && e.EventType == schemas.EventAck {
				return true
			}
		}
		return false
	})
	if len(ev) == 0 {
		t.Fatal("no ack")
	}
	// The permanent one and the one that never works end as dead letters.
	dead := c.Collect(t, c.Consumer(t, "dn.dead-letters"), 60*time.Second, func(got []any) bool { return len(got) >= 2 })
	reasons := map[string]string{}
	for _, v := range dead {
		f := v.(*schemas.Failure)
		for _, m := range []*schemas.UserMessage{perm, always} {
			if f.Message != nil && strings.Contains(*f.Message, m.MessageID) {
				reasons[m.Text()] = f.Reason
			}
		}
	}
	if !strings.Contains(reasons["permanent"], "rejected for good") {
		t.Errorf("permanent dead letter reason %q", reasons["permanent"])
	}
	if !strings.Contains(reasons["always"], "gave up after 3 retries") {
		t.Errorf("exhausted dead letter reason %q", reasons["always"])
	}
	if v, ok := flakyAttempts.Load(always.MessageID); !ok || *v.(*int) != 4 {
		t.Errorf("the failing message was tried %v times, want 4 (1 + 3 retries)", v)
	}
}
