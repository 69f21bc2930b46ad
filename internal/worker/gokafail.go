package worker

import (
	"fmt"
	"runtime/debug"

	"github.com/lovoo/goka"

	"github.com/vumi-kafka/vumi/processors/middleware"
)

// Safely runs fn, turning a panic in application or router code into an
// error so that one bad message cannot stop a processor.
func Safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

// FailInProcessor publishes, from a goka callback, a failure about the
// record being processed to <connector>.failures: the decoded message's
// Vumi JSON when there is one, else the raw value. The failure goes through
// the middleware's publish handlers first; it is emitted by the processor,
// so the input offset is committed only once the failure is stored.
func (b *Base) FailInProcessor(g goka.Context, connector string, decoded interface{ MarshalJSON() ([]byte, error) }, msgType string, raw []byte, cause error) {
	f := b.FailureFor(nil, decoded, msgType, cause)
	topic, p, o := string(g.Topic()), g.Partition(), g.Offset()
	f.SourceTopic, f.SourcePartition, f.SourceOffset = &topic, &p, &o
	f.Key = []byte(g.Key())
	if f.Message == nil {
		f.Raw = raw
	}
	b.Count("failures", 1)
	out, err := b.Stack.Failure(g.Context(), f, middleware.Context{Phase: middleware.Publish, Connector: connector, Worker: b.Name})
	if err != nil {
		b.Log.Error("failure middleware failed; publishing the failure unchanged", "error", err)
		out = f
	}
	if out == nil {
		return
	}
	b.Log.Warn("message failed", "topic", topic, "partition", p, "offset", o, "reason", out.Reason)
	g.Emit(goka.Stream(b.Deps.Names.Failures(connector)), g.Key(), out)
}
