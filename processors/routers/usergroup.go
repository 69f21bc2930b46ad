package routers

import (
	"context"
	"errors"
	"fmt"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/dispatcher"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// UserGroupingConfig configures Vumi's UserGroupingRouter.
type UserGroupingConfig struct {
	dispatcher.Config `yaml:",inline"`
	// GroupMappings maps a group name to the exposed name of its
	// application. Required.
	GroupMappings map[string]string `yaml:"group_mappings"`
	// DispatcherName was Vumi's Redis key prefix; the assignments live in
	// the worker's group table, so it is accepted and only logged.
	DispatcherName string `yaml:"dispatcher_name"`
	// RedisManager is accepted for Vumi compatibility and ignored.
	RedisManager map[string]any `yaml:"redis_manager"`
	// RouteMappings, as SimpleDispatchRouter: the exposed names a
	// transport's events go to. For a transport not listed, an event goes
	// to the exposed name that sent its message (routing memory).
	RouteMappings map[string]NameList `yaml:"route_mappings"`
	// TransportMappings re-maps an outbound message's transport_name.
	TransportMappings map[string]string `yaml:"transport_mappings"`
	// ExpireGroups forgets a user's group this long after it was assigned
	// (seconds); default 0 keeps it forever, as Vumi does.
	ExpireGroups Seconds `yaml:"expire_groups"`
	MemoryConfig `yaml:",inline"`
}

func (c *UserGroupingConfig) base() *dispatcher.Config { return &c.Config }

// IO implements topology.WorkerConfig: the base's topics and the loop.
func (c *UserGroupingConfig) IO(name string) topology.IO {
	return dispatcher.WithLoopback(c.Config.IO(name), name)
}

// Validate implements topology.WorkerConfig.
func (c *UserGroupingConfig) Validate() error {
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if len(c.GroupMappings) == 0 {
		return errors.New("key group_mappings: is required (group name -> exposed name)")
	}
	for _, g := range sortedKeys(c.GroupMappings) {
		if err := checkExposed(&c.Config, "group_mappings."+g, c.GroupMappings[g]); err != nil {
			return err
		}
	}
	if err := validateRouteMappings(&c.Config, c.RouteMappings, false, true); err != nil {
		return err
	}
	if err := validateTransportMappings(&c.Config, c.TransportMappings); err != nil {
		return err
	}
	if c.ExpireGroups < 0 {
		return fmt.Errorf("key expire_groups: must be positive, got %v", c.ExpireGroups.D())
	}
	return c.MemoryConfig.validate()
}

// UserGroupingKind is Vumi's UserGroupingRouter: each new from_addr is
// assigned round-robin to one of group_mappings' groups (in sorted group
// order) and keeps it; its inbound messages go to the group's exposed
// name. Outbound messages as SimpleDispatchRouter.
//
// The assignment lives in the group table under the user's address. The
// round-robin counter is a single key of that table, so one partition
// owner at a time counts for the whole deployment: a new user's first
// message parks in the table, an "assign" record is looped to the counter
// key, whose handler increments the counter and loops the chosen group
// back to the user's key, where the parked messages are released in order.
// Two instances can never give out the same counter value, and a user's
// messages keep their order. The price: a new user's first message takes
// two extra loopback hops, and all new-user assignments are counted on one
// partition (existing users never touch it).
func UserGroupingKind() *topology.Kind {
	return routerKind("user_grouping_router", vumiClasses("UserGroupingRouter"),
		"group_mappings: round-robin group per from_addr, kept in the group table",
		func() *UserGroupingConfig { return &UserGroupingConfig{} },
		newUserGrouping)
}

func newUserGrouping(c *UserGroupingConfig) (dispatcher.Router, error) {
	if len(c.GroupMappings) == 0 {
		return nil, errors.New("key group_mappings: is required (group name -> exposed name)")
	}
	r := &userGrouping{cfg: c, memory: newMemory(c.MemoryConfig)}
	r.grouping = &grouping{cfg: c, mem: r.memory, groups: sortedKeys(c.GroupMappings)}
	return r, nil
}

// counterKey is the table key of the round-robin counter. An address never
// starts with a NUL byte.
const counterKey = "\x00user-grouping-round-robin"

type userGrouping struct {
	cfg *UserGroupingConfig
	*memory
}

// Setup implements dispatcher.Setupper.
func (r *userGrouping) Setup(_ context.Context, d *dispatcher.Dispatcher) error {
	if r.cfg.DispatcherName != "" {
		d.Log.Info("dispatcher_name is not needed: user groups live in the worker's group table", "dispatcher_name", r.cfg.DispatcherName)
	}
	return nil
}

func (r *userGrouping) DispatchInboundMessage(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	return r.grouping.route(c, m, transport)
}

func (r *userGrouping) DispatchInboundEvent(c *dispatcher.Context, e *schemas.Event, transport string) error {
	name := transport
	if e.TransportName != nil {
		name = *e.TransportName
	}
	if names, ok := r.cfg.RouteMappings[name]; ok {
		for _, n := range names {
			if err := c.PublishEvent(n, cloneEvent(e)); err != nil {
				return err
			}
		}
		return nil
	}
	return r.routeEvent(c, e, transport)
}

func (r *userGrouping) DispatchOutboundMessage(c *dispatcher.Context, m *schemas.UserMessage, exposed string) error {
	if err := outboundByTransportName(c, &r.cfg.Config, r.cfg.TransportMappings, m); err != nil {
		return err
	}
	return r.remember(c, m.MessageID, exposed)
}

// grouping assigns users to groups.
type grouping struct {
	cfg    *UserGroupingConfig
	mem    *memory
	groups []string // sorted group names
}

func (g *grouping) valid(group string) bool {
	_, ok := g.cfg.GroupMappings[group]
	return ok
}

func (g *grouping) route(c *dispatcher.Context, m *schemas.UserMessage, transport string) error {
	ent, err := loadEntry(c)
	if err != nil {
		c.Log().Warn("replacing an undecodable table entry", "error", err)
	}
	now := g.mem.now()
	if ent.Group != "" && g.valid(ent.Group) && !expired(ent.GroupExpires, now) && len(ent.Parked) == 0 {
		return c.PublishInbound(g.cfg.GroupMappings[ent.Group], m)
	}
	js, err := m.MarshalJSON()
	if err != nil {
		return worker.Permanent(err)
	}
	ent.Group, ent.GroupExpires = "", 0
	ent.Parked = append(ent.Parked, parked{Inbound: js, From: transport, Until: now.Add(g.mem.cfg.EventWaitTimeout.D()).UnixMicro()})
	if !ent.Asked {
		ent.Asked = true
		if err := loop(c, counterKey, loopRecord{Op: opAssign, User: c.Key()}); err != nil {
			return err
		}
	}
	return saveEntry(c, ent)
}

// onAssign runs on the counter key: the next group, round-robin.
func (g *grouping) onAssign(c *dispatcher.Context, r *loopRecord) error {
	if c.Key() != counterKey {
		return worker.Permanent(fmt.Errorf("assign record on key %q, not the counter key", c.Key()))
	}
	ent, err := loadEntry(c)
	if err != nil {
		return err // never overwrite the counter with a guess
	}
	ent.Counter++
	group := g.groups[(ent.Counter-1)%uint64(len(g.groups))]
	if err := saveEntry(c, ent); err != nil {
		return err
	}
	return loop(c, r.User, loopRecord{Op: opAssigned, Group: group})
}

// onAssigned runs on the user's key: keep the first valid group, release
// the parked messages in order.
func (g *grouping) onAssigned(c *dispatcher.Context, r *loopRecord) error {
	ent, err := loadEntry(c)
	if err != nil {
		c.Log().Warn("replacing an undecodable table entry", "error", err)
	}
	now := g.mem.now()
	if ent.Group == "" || !g.valid(ent.Group) || expired(ent.GroupExpires, now) {
		if !g.valid(r.Group) {
			return worker.Permanent(fmt.Errorf("assigned group %q is not in group_mappings", r.Group))
		}
		ent.Group, ent.GroupExpires = r.Group, 0
		if d := g.cfg.ExpireGroups.D(); d > 0 {
			ent.GroupExpires = now.Add(d).UnixMicro()
		}
		c.Log().Debug("user assigned to a group", "user", c.Key(), "group", r.Group)
	}
	ent.Asked = false
	exposed := g.cfg.GroupMappings[ent.Group]
	kept := ent.Parked[:0]
	for _, p := range ent.Parked {
		if p.Inbound == nil {
			kept = append(kept, p)
			continue
		}
		var m schemas.UserMessage
		if err := m.UnmarshalJSON(p.Inbound); err != nil {
			c.Fail(p.From, nil, schemas.TypeUserMessage, worker.Permanent(fmt.Errorf("parked message: %w", err)))
			continue
		}
		if err := c.PublishInbound(exposed, &m); err != nil {
			c.Fail(p.From, &m, schemas.TypeUserMessage, err)
		}
	}
	ent.Parked = kept
	return saveEntry(c, ent)
}
