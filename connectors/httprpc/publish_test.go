package httprpc

import (
	"context"
	"testing"
	"time"
)

func TestPublish(t *testing.T) {
	var c Publish
	if err := c.ValidatePublish(); err != nil || c.PublishTimeout != 1 {
		t.Fatalf("default: %v, %v", c.PublishTimeout, err)
	}
	c.PublishTimeout = 2.5
	before := time.Now()
	ctx, cancel := c.PublishContext(context.Background())
	after := time.Now()
	defer cancel()
	d, ok := ctx.Deadline()
	if want := 2500 * time.Millisecond; !ok || d.Sub(before) < want || d.Sub(after) > want {
		t.Errorf("deadline %v after the call, want 2.5s", d.Sub(before))
	}
	c.PublishTimeout = -1
	if err := c.ValidatePublish(); err == nil || err.Error() != "key publish_timeout: must be positive, got -1" {
		t.Fatalf("negative: %v", err)
	}
}
