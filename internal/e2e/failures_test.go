package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

// TestHandlerErrorsGoToFailures: an application error, a panic and an
// undecodable record each land on <transport_name>.failures with the right
// failure code and reason, and the application keeps serving.
func TestHandlerErrorsGoToFailures(t *testing.T) {
	c := startCluster(t)
	run(t, c, `
  - name: failing_app
    kind: failing
    transport_name: sms
`)
	fail, boom, ok := inbound("+27000000001", "fail"), inbound("+27000000002", "panic"), inbound("+27000000003", "hello")
	c.produceInbound(t, fail, boom)
	// A record that is not Avro at all.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "sms.inbound", Key: []byte("junk"), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	c.produceInbound(t, ok)

	failures := c.Collect(t, c.Consumer(t, "sms.failures"), 60*time.Second, func(got []any) bool { return len(got) >= 3 })
	byKey := map[string]*schemas.Failure{}
	for _, v := range failures {
		f := v.(*schemas.Failure)
		byKey[string(f.Key)] = f
		if f.Worker == nil || *f.Worker != "failing_app" || f.SourceTopic == nil || *f.SourceTopic != "sms.inbound" || f.SourceOffset == nil {
			t.Errorf("failure without its source: %s", mustJSON(t, f))
		}
	}
	check := func(key string, code *schemas.FailureCode, reason string, withMessage bool) {
		t.Helper()
		f, found := byKey[key]
		if !found {
			t.Errorf("no failure for key %s; have %v", key, keys(byKey))
			return
		}
		if fmt.Sprint(derefCode(f.FailureCode)) != fmt.Sprint(derefCode(code)) || !strings.Contains(f.Reason, reason) {
			t.Errorf("failure for %s: code %v reason %q, want %v and %q", key, derefCode(f.FailureCode), f.Reason, derefCode(code), reason)
		}
		if withMessage && (f.Message == nil || !strings.Contains(*f.Message, `"from_addr": "`+key+`"`)) {
			t.Errorf("failure for %s does not carry the message: %v", key, f.Message)
		}
		if !withMessage && string(f.Raw) != "not avro" {
			t.Errorf("failure for %s does not carry the raw record: %q", key, f.Raw)
		}
	}
	permanent := schemas.FailurePermanent
	check("+27000000001", &permanent, "cannot handle fail", true)
	check("+27000000002", nil, "panic: application bug", true)
	check("junk", &permanent, "does not start with the Confluent magic byte", false)

	// The application is still alive: the good message got its reply.
	out := c.Collect(t, c.Consumer(t, "sms.outbound"), 60*time.Second, func(got []any) bool { return len(got) >= 1 })
	if r := out[0].(*schemas.UserMessage); r.Text() != "hello" || r.To() != "+27000000003" {
		t.Errorf("reply = %s", mustJSON(t, r))
	}
}

func derefCode(c *schemas.FailureCode) string {
	if c == nil {
		return "unspecified"
	}
	return string(*c)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAppRestartLosesNothing stops the application mid-stream and starts
// it again: every inbound message still gets its reply.
func TestAppRestartLosesNothing(t *testing.T) {
	c := startCluster(t)
	const n = 300
	workers := `
  - name: echo
    kind: echo
    transport_name: sms
`
	msgs := make([]*schemas.UserMessage, n)
	for i := range msgs {
		msgs[i] = inbound(fmt.Sprintf("+2776%07d", i%50), fmt.Sprintf("msg %d", i))
	}
	c.produceInbound(t, msgs[:n/3]...)
	d := run(t, c, workers)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		c.produceInbound(t, msgs[n/3:2*n/3]...)
	}()
	// Wait until some replies are out, then stop the app mid-stream.
	out := c.Consumer(t, "sms.outbound")
	first := c.Collect(t, out, 60*time.Second, func(got []any) bool { return len(got) >= n/4 })
	d.stop()
	<-produced
	c.produceInbound(t, msgs[2*n/3:]...)
	run(t, c, workers)

	replied := map[string]bool{}
	for _, v := range first {
		replied[*v.(*schemas.UserMessage).InReplyTo] = true
	}
	c.Collect(t, out, 90*time.Second, func(got []any) bool {
		for _, v := range got {
			replied[*v.(*schemas.UserMessage).InReplyTo] = true
		}
		for _, m := range msgs {
			if !replied[m.MessageID] {
				return false
			}
		}
		return true
	})
	for _, m := range msgs {
		if !replied[m.MessageID] {
			t.Errorf("no reply to %s (%s)", m.MessageID, m.Text())
		}
	}
}
