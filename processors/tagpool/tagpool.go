// Package tagpool is Vumi's tag pool manager (vumi.components.tagpool) as
// a deterministic state machine: commands (declare, acquire, release,
// set metadata, purge) are applied one at a time, in the order of their
// pool's partition of a command topic, so every replica that applies the
// same commands holds the same pools. Reads need no command.
package tagpool

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Tag is a (pool, name) pair; JSON ["pool", "name"] as in Vumi.
type Tag struct{ Pool, Name string }

// MarshalJSON encodes the tag as a two-element list.
func (t Tag) MarshalJSON() ([]byte, error) { return json.Marshal([2]string{t.Pool, t.Name}) }

// UnmarshalJSON decodes a two-element list.
func (t *Tag) UnmarshalJSON(b []byte) error {
	var l []string
	if err := json.Unmarshal(b, &l); err != nil || len(l) != 2 {
		return errors.New(`a tag is a list of two strings: ["pool", "name"]`)
	}
	t.Pool, t.Name = l[0], l[1]
	return nil
}

// Reason is why and by whom a tag was acquired (Vumi's reason dict, with
// owner and timestamp set by the pool).
type Reason map[string]any

// Pool is one tag pool.
type Pool struct {
	Name string `json:"name"`
	// Free tags in acquisition order.
	Free []string `json:"free"`
	// InUse tags with the reason they were acquired.
	InUse    map[string]Reason `json:"inuse"`
	Metadata map[string]any    `json:"metadata"`
}

// Ops.
const (
	OpDeclare         = "declare_tags"
	OpAcquire         = "acquire_tag"
	OpAcquireSpecific = "acquire_specific_tag"
	OpRelease         = "release_tag"
	OpSetMetadata     = "set_metadata"
	OpPurge           = "purge_pool"
)

// Command changes one pool. ID identifies the request so the caller can
// find its result; Time is set by the caller so that every replica stamps
// the same acquisition time.
type Command struct {
	ID       string         `json:"id"`
	Op       string         `json:"op"`
	Pool     string         `json:"pool"`
	Tags     []string       `json:"tags,omitempty"`
	Tag      string         `json:"tag,omitempty"`
	Owner    *string        `json:"owner,omitempty"`
	Reason   map[string]any `json:"reason,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
	Time     time.Time      `json:"time"`
}

// Validate checks a command before it is published.
func (c *Command) Validate() error {
	if c.Pool == "" {
		return errors.New("pool is required")
	}
	switch c.Op {
	case OpDeclare, OpAcquire, OpSetMetadata, OpPurge:
	case OpAcquireSpecific, OpRelease:
		if c.Tag == "" {
			return fmt.Errorf("%s needs a tag", c.Op)
		}
	default:
		return fmt.Errorf("unknown op %q", c.Op)
	}
	return nil
}

// Result is the outcome of a command.
type Result struct {
	// Tag is the tag acquired, nil when none was free (or for other ops).
	Tag *Tag `json:"tag"`
	// Error is set when the command was refused (e.g. purging a pool with
	// tags in use).
	Error string `json:"error,omitempty"`
}

// ErrInUse is the error of purging a pool whose tags are in use.
var ErrInUse = errors.New("tags of the pool are still in use")

// Apply applies c to p (nil when the pool does not exist) and returns the
// new pool (nil when deleted) and the result.
func Apply(p *Pool, c *Command) (*Pool, Result) {
	if err := c.Validate(); err != nil {
		return p, Result{Error: err.Error()}
	}
	if p == nil {
		if c.Op == OpPurge {
			return nil, Result{}
		}
		if c.Op != OpDeclare && c.Op != OpSetMetadata {
			return nil, Result{}
		}
		p = &Pool{Name: c.Pool, InUse: map[string]Reason{}}
	}
	switch c.Op {
	case OpDeclare:
		known := map[string]bool{}
		for _, t := range p.Free {
			known[t] = true
		}
		for t := range p.InUse {
			known[t] = true
		}
		tags := append([]string(nil), c.Tags...)
		sort.Strings(tags)
		for _, t := range slices.Compact(tags) {
			if !known[t] {
				p.Free = append(p.Free, t)
			}
		}
	case OpAcquire:
		if len(p.Free) == 0 {
			return p, Result{}
		}
		t := p.Free[0]
		p.Free = p.Free[1:]
		p.InUse[t] = reason(c)
		return p, Result{Tag: &Tag{p.Name, t}}
	case OpAcquireSpecific:
		i := slices.Index(p.Free, c.Tag)
		if i < 0 {
			return p, Result{}
		}
		p.Free = slices.Delete(p.Free, i, i+1)
		p.InUse[c.Tag] = reason(c)
		return p, Result{Tag: &Tag{p.Name, c.Tag}}
	case OpRelease:
		if _, ok := p.InUse[c.Tag]; ok {
			delete(p.InUse, c.Tag)
			p.Free = append(p.Free, c.Tag)
		}
	case OpSetMetadata:
		p.Metadata = c.Metadata
	case OpPurge:
		if n := len(p.InUse); n > 0 {
			return p, Result{Error: fmt.Sprintf("%d tags of pool %s still in use: %v", n, p.Name, ErrInUse)}
		}
		return nil, Result{}
	}
	return p, Result{}
}

func reason(c *Command) Reason {
	r := Reason{}
	for k, v := range c.Reason {
		r[k] = v
	}
	r["timestamp"] = float64(c.Time.UnixMicro()) / 1e6
	if c.Owner != nil {
		r["owner"] = *c.Owner
	} else {
		r["owner"] = nil
	}
	return r
}

// FreeTags returns the pool's free tags.
func (p *Pool) FreeTags() []Tag { return tags(p.Name, p.Free) }

// InUseTags returns the pool's tags in use, sorted.
func (p *Pool) InUseTags() []Tag {
	names := make([]string, 0, len(p.InUse))
	for t := range p.InUse {
		names = append(names, t)
	}
	sort.Strings(names)
	return tags(p.Name, names)
}

// AcquiredBy returns the owner and reason of a tag in use (nil, nil when
// free or unknown), as Vumi's acquired_by.
func (p *Pool) AcquiredBy(tag string) (owner any, reason Reason) {
	r, ok := p.InUse[tag]
	if !ok {
		return nil, nil
	}
	return r["owner"], r
}

// OwnedBy returns the pool's tags acquired by owner (nil: unowned).
func (p *Pool) OwnedBy(owner *string) []Tag {
	var out []Tag
	for _, t := range p.InUseTags() {
		o, isStr := p.InUse[t.Name]["owner"].(string)
		if (owner == nil && !isStr) || (owner != nil && isStr && o == *owner) {
			out = append(out, t)
		}
	}
	return out
}

func tags(pool string, names []string) []Tag {
	out := make([]Tag, len(names))
	for i, n := range names {
		out[i] = Tag{pool, n}
	}
	return out
}
