package routers

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
)

// entry is one key's row in a router's group table (the table replaces
// Vumi's Redis). One row type serves every use: a key is a message id
// (routing memory), an end user's address (user groups) or the
// round-robin counter key, and each use has its own fields.
type entry struct {
	// Route is the exposed name that sent the outbound message whose id
	// is the key: where its events go.
	Route string `json:"route,omitempty"`
	// RouteExpires is when Route is forgotten (Unix µs).
	RouteExpires int64 `json:"route_expires,omitempty"`
	// Group is the user group of the address that is the key.
	Group string `json:"group,omitempty"`
	// GroupExpires is when Group is forgotten (Unix µs); 0 never.
	GroupExpires int64 `json:"group_expires,omitempty"`
	// Asked records that a group assignment was requested for the key.
	Asked bool `json:"asked,omitempty"`
	// Counter is the round-robin counter (on the counter key only).
	Counter uint64 `json:"counter,omitempty"`
	// Parked holds messages waiting for Route or Group, oldest first.
	Parked []parked `json:"parked,omitempty"`
}

// parked is a message waiting in the table: an event for the memory of its
// outbound message, or an inbound message for its user's group.
type parked struct {
	Event   json.RawMessage `json:"event,omitempty"`
	Inbound json.RawMessage `json:"inbound,omitempty"`
	// From is the connector the message arrived on.
	From string `json:"from"`
	// Until is when it stops waiting and goes to failures (Unix µs).
	Until int64 `json:"until"`
}

func (e *entry) empty() bool {
	return e.Route == "" && e.Group == "" && !e.Asked && e.Counter == 0 && len(e.Parked) == 0
}

// errBadEntry marks a table row that cannot be decoded.
var errBadEntry = errors.New("undecodable table entry")

func loadEntry(c *dispatcher.Context) (*entry, error) {
	e := &entry{}
	b := c.State()
	if b == nil {
		return e, nil
	}
	if err := json.Unmarshal(b, e); err != nil {
		return &entry{}, fmt.Errorf("%w for key %q: %w", errBadEntry, c.Key(), err)
	}
	return e, nil
}

func saveEntry(c *dispatcher.Context, e *entry) error {
	if e.empty() {
		c.SetState(nil)
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode table entry: %w", err)
	}
	c.SetState(b)
	return nil
}

// Loop record operations.
const (
	opRemember = "remember" // key message_id: remember Route
	opAssign   = "assign"   // key counterKey: assign a group to User
	opAssigned = "assigned" // key from_addr: the user's Group
)

// loopRecord is what routers send themselves on the loopback topic.
type loopRecord struct {
	Op      string `json:"op"`
	Route   string `json:"route,omitempty"`
	Expires int64  `json:"expires,omitempty"`
	User    string `json:"user,omitempty"`
	Group   string `json:"group,omitempty"`
}

func loop(c *dispatcher.Context, key string, r loopRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode loop record: %w", err)
	}
	c.Loopback(key, b)
	return nil
}

func expired(at int64, now time.Time) bool { return at != 0 && now.UnixMicro() >= at }

// memory is the routing memory of outbound message ids, in the group
// table: an outbound message's id and the exposed name it came from are
// looped to the partition of the message id, where its events (keyed by
// user_message_id) arrive. An event that arrives before the memory of its
// message waits in the table (event_wait_timeout), then goes to failures.
type memory struct {
	cfg MemoryConfig
	now func() time.Time
	// grouping, when set, handles the user-group loop records.
	grouping *grouping
}

func newMemory(cfg MemoryConfig) *memory { return &memory{cfg: cfg, now: time.Now} }

// setClock replaces the memory's clock (tests drive expiry with it).
func (m *memory) setClock(now func() time.Time) { m.now = now }

// remember loops "message id -> exposed" to the message id's partition.
func (m *memory) remember(c *dispatcher.Context, messageID, exposed string) error {
	return loop(c, messageID, loopRecord{Op: opRemember, Route: exposed, Expires: m.now().Add(m.cfg.ExpireRoutingMemory.D()).UnixMicro()})
}

// routeEvent publishes e to the exposed name that sent its message, or
// parks it until that is known.
func (m *memory) routeEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	if c.Key() != e.UserMessageID {
		return worker.Permanent(fmt.Errorf("event %s is keyed %q, not by its user_message_id %q, so its routing memory is on another partition", e.EventID, c.Key(), e.UserMessageID))
	}
	ent, err := loadEntry(c)
	if err != nil {
		c.Log().Warn("replacing an undecodable table entry", "error", err)
	}
	now := m.now()
	if ent.Route != "" && !expired(ent.RouteExpires, now) {
		return c.PublishEvent(ent.Route, e)
	}
	js, err := e.MarshalJSON()
	if err != nil {
		return worker.Permanent(err)
	}
	ent.Parked = append(ent.Parked, parked{Event: js, From: transport, Until: now.Add(m.cfg.EventWaitTimeout.D()).UnixMicro()})
	c.Log().Debug("event waits for the routing memory of its message", "user_message_id", e.UserMessageID, "event_id", e.EventID)
	return saveEntry(c, ent)
}

// DispatchLoopback implements dispatcher.Looper.
func (m *memory) DispatchLoopback(c *dispatcher.Context, payload []byte) error {
	var r loopRecord
	if err := json.Unmarshal(payload, &r); err != nil {
		return worker.Permanent(fmt.Errorf("undecodable loop record: %w", err))
	}
	switch r.Op {
	case opRemember:
		return m.onRemember(c, &r)
	case opAssign, opAssigned:
		if m.grouping != nil {
			if r.Op == opAssign {
				return m.grouping.onAssign(c, &r)
			}
			return m.grouping.onAssigned(c, &r)
		}
	}
	return worker.Permanent(fmt.Errorf("unknown loop record operation %q", r.Op))
}

func (m *memory) onRemember(c *dispatcher.Context, r *loopRecord) error {
	ent, err := loadEntry(c)
	if err != nil {
		c.Log().Warn("replacing an undecodable table entry", "error", err)
	}
	ent.Route, ent.RouteExpires = r.Route, r.Expires
	kept := ent.Parked[:0]
	for _, p := range ent.Parked {
		if p.Event == nil {
			kept = append(kept, p)
			continue
		}
		var e schemas.Event
		if err := e.UnmarshalJSON(p.Event); err != nil {
			c.Fail(p.From, nil, schemas.TypeEvent, worker.Permanent(fmt.Errorf("parked event: %w", err)))
			continue
		}
		if err := c.PublishEvent(ent.Route, &e); err != nil {
			c.Fail(p.From, &e, schemas.TypeEvent, err)
		}
	}
	ent.Parked = kept
	return saveEntry(c, ent)
}

// SweepInterval implements dispatcher.Sweeper.
func (m *memory) SweepInterval() time.Duration { return m.cfg.SweepInterval.D() }

// Sweep implements dispatcher.Sweeper: it forgets expired routes and
// groups, and sends messages that waited too long to failures.
func (m *memory) Sweep(c *dispatcher.Context, now time.Time) error {
	ent, err := loadEntry(c)
	if err != nil {
		c.Log().Warn("deleting an undecodable table entry", "error", err)
		c.SetState(nil)
		return nil
	}
	changed := false
	if ent.Route != "" && expired(ent.RouteExpires, now) {
		ent.Route, ent.RouteExpires, changed = "", 0, true
	}
	if ent.Group != "" && expired(ent.GroupExpires, now) {
		ent.Group, ent.GroupExpires, changed = "", 0, true
	}
	kept := ent.Parked[:0]
	for _, p := range ent.Parked {
		if !expired(p.Until, now) {
			kept = append(kept, p)
			continue
		}
		changed = true
		m.giveUp(c, p)
	}
	ent.Parked = kept
	if ent.Asked && len(ent.Parked) == 0 && ent.Group == "" {
		ent.Asked, changed = false, true
	}
	if !changed {
		return nil
	}
	return saveEntry(c, ent)
}

func (m *memory) giveUp(c *dispatcher.Context, p parked) {
	wait := m.cfg.EventWaitTimeout.D()
	if p.Event != nil {
		var e schemas.Event
		if err := e.UnmarshalJSON(p.Event); err != nil {
			c.Fail(p.From, nil, schemas.TypeEvent, worker.Permanent(fmt.Errorf("parked event: %w", err)))
			return
		}
		c.Fail(p.From, &e, schemas.TypeEvent, worker.Permanent(fmt.Errorf(
			"no routing memory of message %s within %v: it was not sent through this dispatcher or its memory expired", e.UserMessageID, wait)))
		return
	}
	var in schemas.UserMessage
	if err := in.UnmarshalJSON(p.Inbound); err != nil {
		c.Fail(p.From, nil, schemas.TypeUserMessage, worker.Permanent(fmt.Errorf("parked message: %w", err)))
		return
	}
	c.Fail(p.From, &in, schemas.TypeUserMessage, worker.Temporary(fmt.Errorf("no user group assigned to %s within %v", c.Key(), wait)))
}
