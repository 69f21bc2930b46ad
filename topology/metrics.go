package topology

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/metricsserver"
)

// serveMetrics serves the process's /metrics at addr, adds the Kafka client
// hooks to every client the workers make, and watches consumer lag and
// table sizes every 15 s, until ctx is done.
func serveMetrics(ctx context.Context, deps *Deps, addr string, log *slog.Logger) error {
	if _, err := metricsserver.Serve(ctx, addr, log); err != nil {
		return err
	}
	deps.KafkaHooks = append(deps.KafkaHooks, metricsserver.NewKafkaHooks(nil))
	cl, err := kgo.NewClient(deps.KafkaOpts("metrics")...)
	if err != nil {
		return fmt.Errorf("metrics: kafka client: %w", err)
	}
	go func() {
		defer cl.Close()
		metricsserver.WatchKafka(ctx, cl, 15*time.Second, log)
	}()
	return nil
}
