package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/schemas"
)

// RunOptions configure Run.
type RunOptions struct {
	// Workers to run by name; empty runs every worker of the config
	// unless NoWorkers.
	Workers []string
	// NoWorkers runs none of the config's workers (a process of workers
	// created at run time only, see OnRunning).
	NoWorkers bool
	// Attach, for an embedded config, connects to an embedded broker
	// already running on the configured ports (started by `vumi broker` or
	// `vumi run`) instead of starting one.
	Attach bool
	Logger *slog.Logger
	// Ready, if set, is called once every worker has been started, with
	// the Kafka and registry addresses in use.
	Ready func(kafka []string, registryURL string)
	// MetricsAddr, if set, is where the process serves /metrics in the
	// Prometheus format (internal/metricsserver): Go runtime, Kafka client
	// figures, consumer lag and table sizes.
	MetricsAddr string
	// OnRunning, if set, is called once the configured workers have been
	// started, with the process's runtime (its supervisor, to start and
	// stop workers while the process runs: the management API's control
	// topic follower). An error stops the deployment. It may block until
	// ctx is done.
	OnRunning func(ctx context.Context, rt *Runtime) error
	// Supervisor, if set, adjusts the process's supervisor before any
	// worker starts (tests shorten the restart backoff).
	Supervisor func(*Supervisor)
}

// Runtime is a running deployment process, as handed to
// RunOptions.OnRunning.
type Runtime struct {
	Config      *Config
	Deps        *Deps
	Supervisor  *Supervisor
	Brokers     []string
	RegistryURL string
	Logger      *slog.Logger
}

// Run runs a deployment until ctx is cancelled: the embedded broker and
// registry when the config has no brokers, topic creation, schema
// registration for every topic, then every worker under a supervisor that
// restarts a failed worker with backoff without touching the others. On
// cancellation each worker drains its in-flight work before Run returns.
func Run(ctx context.Context, cfg *Config, kinds *Registry, opts RunOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	specs, err := selectWorkers(cfg, opts.Workers)
	if err != nil {
		return err
	}
	if opts.NoWorkers {
		specs = nil
	}
	graph := BuildGraph(cfg)
	if err := graph.Validate(); err != nil {
		return fmt.Errorf("%s: invalid topology:\n%w", cfg.File, err)
	}

	brokers, regURL := cfg.Cluster.Kafka.Brokers, cfg.Cluster.SchemaRegistry.URL
	c := &cfg.Cluster
	if c.IsEmbedded() {
		// An embedded deployment may still use a registry of its own
		// (schema_registry.url); otherwise the embedded one.
		external := c.SchemaRegistry.URL != ""
		if opts.Attach {
			for _, p := range []struct {
				key  string
				port int
			}{{"kafka_port", c.Embedded.KafkaPort}, {"registry_port", c.Embedded.RegistryPort}} {
				if p.port <= 0 && (p.key == "kafka_port" || !external) {
					return fmt.Errorf("%s: cluster.embedded.%s is %d: workers started separately need the fixed port of the running 'vumi broker'", cfg.File, p.key, p.port)
				}
			}
			brokers = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Embedded.KafkaPort))}
			if !external {
				regURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Embedded.RegistryPort))
			}
		} else {
			b, err := broker.Start(ctx, broker.Config{
				DataDir: c.Embedded.DataDir, KafkaPort: c.Embedded.KafkaPort, RegistryPort: c.Embedded.RegistryPort,
				NoRegistry:        external,
				DefaultPartitions: c.Partitions, SyncWrites: c.Embedded.SyncWrites,
				RegistryUsername: c.SchemaRegistry.Username, RegistryPassword: c.SchemaRegistry.Password,
				Logger: log,
			})
			if err != nil {
				return err
			}
			defer b.Close()
			brokers = []string{b.KafkaAddr()}
			if !external {
				regURL = b.RegistryURL()
			}
			log.Info("embedded broker running", "kafka", b.KafkaAddr(), "registry", regURL, "data_dir", c.Embedded.DataDir)
		}
	}
	reg := schemas.NewRegistryClient(regURL, schemas.RegistryClientOptions{Username: c.SchemaRegistry.Username, Password: c.SchemaRegistry.Password})
	deps, err := NewDeps(c, brokers, reg, kinds, log)
	if err != nil {
		return err
	}
	if opts.MetricsAddr != "" {
		if err := serveMetrics(ctx, deps, opts.MetricsAddr, log); err != nil {
			// Metrics are not worth refusing to run for (the default port
			// may be taken on a developer's machine).
			log.Warn("not serving /metrics", "addr", opts.MetricsAddr, "error", err)
		}
	}
	if err := Prepare(ctx, deps, graph, log); err != nil {
		return err
	}
	sup := NewSupervisor(ctx, deps, log)
	if opts.Supervisor != nil {
		opts.Supervisor(sup)
	}
	statusOut, err := newStatusPublisher(deps)
	if err != nil {
		return err
	}
	defer statusOut.close()
	sup.OnEvent = statusOut.publish
	// Every worker is built before any starts: a config error stops the
	// command with nothing running.
	built := make([]Worker, len(specs))
	for i, spec := range specs {
		w, err := spec.Kind.Build(deps, spec)
		if err != nil {
			return fmt.Errorf("%s: worker %s: %w", cfg.File, spec.Name, err)
		}
		built[i] = w
	}
	for i, spec := range specs {
		if err := sup.StartBuilt(spec, built[i], "", false); err != nil {
			cancelAll(sup)
			return fmt.Errorf("%s: %w", cfg.File, err)
		}
	}
	log.Info("deployment running", "workers", len(specs), "kafka", brokers, "registry", regURL)
	if opts.Ready != nil {
		opts.Ready(brokers, regURL)
	}
	var hookErr error
	if opts.OnRunning != nil {
		hookErr = opts.OnRunning(ctx, &Runtime{Config: cfg, Deps: deps, Supervisor: sup, Brokers: brokers, RegistryURL: regURL, Logger: log})
		if hookErr != nil {
			log.Error("stopping the deployment", "error", hookErr)
			cancelAll(sup)
		}
	}
	if hookErr == nil {
		<-ctx.Done()
	}
	sup.Wait()
	log.Info("deployment stopped")
	return hookErr
}

// cancelAll stops every worker of sup.
func cancelAll(sup *Supervisor) {
	for _, st := range sup.States() {
		sup.Stop(st.Name)
	}
}

// Prepare creates the graph's topics and registers the schema of every
// topic with a known kind, so that workers never call the registry on
// their hot path.
func Prepare(ctx context.Context, deps *Deps, graph *Graph, log *slog.Logger) error {
	cl, err := kgo.NewClient(deps.KafkaOpts("admin")...)
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var warnings []string
	err = retry(ctx, 30*time.Second, func() error {
		var err error
		warnings, err = graph.CreateTopics(ctx, adm)
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	byKind := map[string][]string{}
	for _, name := range graph.TopicNames() {
		t := graph.Topics[name]
		byKind[t.Kind] = append(byKind[t.Kind], name)
	}
	c := deps.Codecs
	registrations := map[string]func(context.Context, ...string) error{
		"user_message":     c.UserMessage.Register,
		"event":            c.Event.Register,
		"status":           c.Status.Register,
		"failure":          c.Failure.Register,
		"metric_datapoint": c.MetricDatapoint.Register,
		"metric_aggregate": c.MetricAggregate.Register,
		"heartbeat":        c.Heartbeat.Register,
	}
	// In a fixed order, so that a fresh registry gives the same ids.
	for _, kind := range sortedKeys(registrations) {
		register := registrations[kind]
		topics := byKind[kind]
		if len(topics) == 0 {
			continue
		}
		// The registry may be down (or not yet up): wait for it rather
		// than exit, saying so, so that a worker started before its
		// registry starts when the registry does.
		waited := false
		err := retry(ctx, 0, func() error {
			err := register(ctx, topics...)
			if err != nil && !waited {
				waited = true
				log.Warn("schema registry unreachable; waiting for it before starting the workers", "error", err)
			}
			return err
		})
		if err != nil {
			return err
		}
		if waited {
			log.Info("schema registry reachable; schemas registered", "kind", kind)
		}
	}
	return nil
}

// retry calls fn until it succeeds or the time is up (the broker or
// registry may still be starting); within 0 retries until ctx ends.
func retry(ctx context.Context, within time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || (within > 0 && time.Now().After(deadline)) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func selectWorkers(cfg *Config, names []string) ([]*WorkerSpec, error) {
	if len(names) == 0 {
		return cfg.Workers, nil
	}
	var out []*WorkerSpec
	var errs []error
	for _, n := range names {
		w, ok := cfg.Worker(n)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no worker named %q (workers: %v)", cfg.File, n, cfg.WorkerNames()))
			continue
		}
		out = append(out, w)
	}
	return out, errors.Join(errs...)
}
