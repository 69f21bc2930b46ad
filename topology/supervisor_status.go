package topology

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

// statusPublisher reports supervisor events on vumi.status, component
// "supervisor", keyed by the worker.
type statusPublisher struct {
	deps *Deps
	cl   *kgo.Client
}

func newStatusPublisher(deps *Deps) (*statusPublisher, error) {
	cl, err := kgo.NewClient(append(deps.KafkaOpts("supervisor"), kgo.ProducerLinger(0))...)
	if err != nil {
		return nil, fmt.Errorf("supervisor: kafka client: %w", err)
	}
	return &statusPublisher{deps: deps, cl: cl}, nil
}

// SupervisorStatus is the status event of a supervisor event.
func SupervisorStatus(ev SupervisorEvent) *schemas.Status {
	st := &schemas.Status{
		Component: "supervisor",
		Timestamp: schemas.Now(),
		Worker:    schemas.String(ev.Worker),
		Details:   schemas.Metadata{"restarts": ev.Restarts, "dynamic": ev.Dynamic},
	}
	switch ev.Type {
	case EventFailed:
		st.Status, st.Type = schemas.StatusDown, "worker_failed"
		st.Message = fmt.Sprintf("worker %s failed: %v; restarting in %s", ev.Worker, ev.Err, ev.Backoff)
		st.Reasons = []string{ev.Err.Error()}
		st.Details["backoff_seconds"] = ev.Backoff.Seconds()
	case EventRestarted:
		st.Status, st.Type = schemas.StatusOK, "worker_restarted"
		st.Message = fmt.Sprintf("worker %s restarted (restart %d)", ev.Worker, ev.Restarts)
	case EventStarted:
		st.Status, st.Type = schemas.StatusOK, "worker_started"
		st.Message = "worker " + ev.Worker + " started"
	case EventStopped:
		st.Status, st.Type = schemas.StatusOK, "worker_stopped"
		st.Message = "worker " + ev.Worker + " stopped"
	default:
		st.Status, st.Type, st.Message = schemas.StatusOK, ev.Type, ev.Worker+": "+ev.Type
	}
	return st
}

// publish sends the event's status without waiting for the broker (a
// failing worker must not be held up by a slow broker); errors are logged.
func (p *statusPublisher) publish(ev SupervisorEvent) {
	if !ev.Dynamic && (ev.Type == EventStarted || ev.Type == EventStopped) {
		// The config file's workers start and stop with the process:
		// only their failures and restarts are news.
		return
	}
	st := SupervisorStatus(ev)
	val, err := p.deps.Codecs.Status.Encode(st)
	if err != nil {
		p.deps.Logger.Warn("supervisor status not encoded", "worker", ev.Worker, "error", err)
		return
	}
	p.cl.Produce(context.Background(), &kgo.Record{Topic: p.deps.Names.Status(), Key: StatusKey(st), Value: val}, func(_ *kgo.Record, err error) {
		if err != nil {
			p.deps.Logger.Warn("supervisor status not published", "worker", ev.Worker, "error", err)
		}
	})
}

func (p *statusPublisher) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.cl.Flush(ctx)
	p.cl.Close()
}
