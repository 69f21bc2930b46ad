package worker

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// goka v1.1.15 stops a generation's partition processors in Cleanup while
// they are still listed for VisitAll, and a partition's Stop closes its
// visit channel: a VisitAll that starts on such a partition sends on the
// closed channel and panics the process ("send on closed channel" in
// PartitionProcessor.VisitValues), or fails on the closed table. And a
// visit cut short (its context cancelled, or the partition stopping) can
// still count keys after goka has read its total, a data race. Both happen
// whenever a periodic visit (metric windows, router sweeps, failure
// retries) meets a rebalance or a shutdown.
//
// visitGuard keeps visits and the end of a generation apart. NewProcessor
// wraps the consumer group handler: goka's partition processors run on a
// context the guard ends only once the visits under way have finished
// (sarama does not hand the partitions to another member until Cleanup
// returns, so nothing else processes them meanwhile), visits start only
// between a generation's Setup and its end, and a visit that has not
// finished visitGrace after the generation ended is cancelled.
type visitGuard struct {
	used atomic.Bool // the processor consumes through the guarded group (not goka's tester)

	mu  sync.RWMutex // held for reading by visits, for writing to end a generation
	cur *generation  // the generation visits may run in: set up and not ended
}

// visitGrace bounds how long the end of a generation waits for a visit.
const visitGrace = 10 * time.Second

type generation struct {
	runCtx    context.Context // goka's partition processors run on it
	runCancel context.CancelFunc
	visitCtx  context.Context // visits run on it; cancelled visitGrace after the end
	visitStop context.CancelFunc
	endOnce   sync.Once
}

func newVisitGuard() *visitGuard { return &visitGuard{} }

func newGeneration() *generation {
	g := &generation{}
	g.runCtx, g.runCancel = context.WithCancel(context.Background())
	g.visitCtx, g.visitStop = context.WithCancel(context.Background())
	return g
}

// activate lets visits run in g, whose Setup has finished, unless g has
// already ended (the session can end during Setup).
func (v *visitGuard) activate(g *generation) {
	v.mu.Lock()
	if g.visitCtx.Err() == nil {
		v.cur = g
	}
	v.mu.Unlock()
}

// end ends g: no visit starts any more (a visit that asks meanwhile waits
// for the lock, then finds no generation), the ones under way finish (or
// are cancelled after visitGrace), then goka's partition processors stop.
func (v *visitGuard) end(g *generation) {
	g.endOnce.Do(func() {
		t := time.AfterFunc(visitGrace, g.visitStop)
		v.mu.Lock() // no visit runs once it is held
		if v.cur == g {
			v.cur = nil
		}
		g.visitStop() // marks g ended for activate
		v.mu.Unlock()
		t.Stop()
		g.runCancel()
	})
}

func (v *visitGuard) visit(ctx context.Context, p *goka.Processor, name string, meta any) (int64, error) {
	if !v.used.Load() {
		// Not consuming through the guarded group: before Run (nothing to
		// visit yet) or with goka's tester, which has no generations.
		return p.VisitAllWithStats(ctx, name, meta)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	g := v.cur
	if g == nil {
		return 0, goka.ErrVisitAborted
	}
	// The caller's context is not passed on: a visit cut short races
	// goka's count, and the generation's end bounds the visit instead.
	n, err := p.VisitAllWithStats(g.visitCtx, name, meta)
	if err != nil && g.visitCtx.Err() != nil {
		err = goka.ErrVisitAborted
	}
	return n, err
}

// guards maps processors built by NewProcessor to their visit guard. The
// keys are weak so that a processor that is dropped is not kept alive.
var (
	guardsMu sync.Mutex
	guards   = map[weak.Pointer[goka.Processor]]*visitGuard{}
)

func registerGuard(p *goka.Processor, g *visitGuard) {
	key := weak.Make(p)
	guardsMu.Lock()
	guards[key] = g
	guardsMu.Unlock()
	runtime.AddCleanup(p, func(k weak.Pointer[goka.Processor]) {
		guardsMu.Lock()
		delete(guards, k)
		guardsMu.Unlock()
	}, key)
}

// VisitAll runs goka's VisitAllWithStats on p, safely against rebalances
// and shutdown when p was built by Base.NewProcessor (see visitGuard).
// Between generations it returns goka.ErrVisitAborted; a visit under way
// when its generation ends is finished first (and aborted with
// goka.ErrVisitAborted if that takes over visitGrace). ctx is looked at
// only before the visit starts. Processors built otherwise, or with goka's
// tester in unit tests, are visited directly.
func VisitAll(ctx context.Context, p *goka.Processor, name string, meta any) (int64, error) {
	guardsMu.Lock()
	g := guards[weak.Make(p)]
	guardsMu.Unlock()
	if g == nil {
		return p.VisitAllWithStats(ctx, name, meta)
	}
	return g.visit(ctx, p, name, meta)
}

// guardedGroupBuilder wraps goka's consumer group so that the guard learns
// where each generation begins and ends.
func guardedGroupBuilder(inner goka.ConsumerGroupBuilder, g *visitGuard) goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cg, err := inner(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		g.used.Store(true)
		return guardedGroup{ConsumerGroup: cg, g: g}, nil
	}
}

type guardedGroup struct {
	sarama.ConsumerGroup
	g *visitGuard
}

func (c guardedGroup) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	return c.ConsumerGroup.Consume(ctx, topics, &guardedHandler{ConsumerGroupHandler: h, g: c.g})
}

type guardedHandler struct {
	sarama.ConsumerGroupHandler
	g   *visitGuard
	gen *generation // the session's, between Setup and Cleanup
}

// runSession is the session goka's Setup sees: its context, on which the
// partition processors run, ends when the guard ends the generation.
type runSession struct {
	sarama.ConsumerGroupSession
	ctx context.Context
}

func (s runSession) Context() context.Context { return s.ctx }

func (h *guardedHandler) Setup(s sarama.ConsumerGroupSession) error {
	g := newGeneration()
	h.gen = g
	go func() {
		select {
		case <-s.Context().Done():
		case <-g.runCtx.Done():
		}
		h.g.end(g)
	}()
	if err := h.ConsumerGroupHandler.Setup(runSession{ConsumerGroupSession: s, ctx: g.runCtx}); err != nil {
		return err // sarama calls Cleanup
	}
	h.g.activate(g)
	return nil
}

func (h *guardedHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	if h.gen != nil {
		h.g.end(h.gen)
	}
	return h.ConsumerGroupHandler.Cleanup(s)
}
