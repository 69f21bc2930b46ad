package httprpc

import (
	"context"
	"fmt"
	"time"
)

// Publish is the publish_timeout setting of a transport that serves its
// own HTTP endpoints (not through Server), embedded inline in its config:
// how long, in seconds, publishing what a request carries may take, so
// that the provider gets an error this soon when Kafka is unreachable;
// default 1.
type Publish struct {
	PublishTimeout float64 `yaml:"publish_timeout"`
}

// ValidatePublish fills publish_timeout's default and rejects a negative
// one.
func (c *Publish) ValidatePublish() error {
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 1
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("key publish_timeout: must be positive, got %v", c.PublishTimeout)
	}
	return nil
}

// PublishContext is ctx bounded by publish_timeout.
func (c *Publish) PublishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(c.PublishTimeout*float64(time.Second)))
}
