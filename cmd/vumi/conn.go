package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// connFlags are the flags of commands that talk to Kafka and the registry:
// either -brokers and -registry, or -c FILE to use a deployment config's
// cluster section (its brokers, TLS, SASL and registry).
type connFlags struct {
	brokers      string
	registry     string
	registryUser string
	registryPass string
	config       string

	deps *topology.Deps   // from -c
	cfg  *topology.Config // from -c
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", envOr("VUMI_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka seed brokers ($VUMI_BROKERS)")
	fs.StringVar(&c.registry, "registry", envOr("VUMI_REGISTRY_URL", "http://127.0.0.1:8081"), "schema registry URL ($VUMI_REGISTRY_URL)")
	fs.StringVar(&c.registryUser, "registry-username", envOr("VUMI_REGISTRY_USERNAME", ""), "schema registry basic-auth user ($VUMI_REGISTRY_USERNAME)")
	fs.StringVar(&c.registryPass, "registry-password", envOr("VUMI_REGISTRY_PASSWORD", ""), "schema registry basic-auth password ($VUMI_REGISTRY_PASSWORD)")
	fs.StringVar(&c.config, "c", "", "use this deployment config's cluster section (brokers, TLS, SASL, registry) instead of -brokers and -registry")
}

// fromConfig loads -c once.
func (c *connFlags) fromConfig() (*topology.Deps, error) {
	if c.config == "" || c.deps != nil {
		return c.deps, nil
	}
	cfg, err := topology.LoadFile(c.config, kinds())
	if err != nil {
		return nil, err
	}
	c.cfg = cfg
	cl := &cfg.Cluster
	brokers, regURL := cl.Kafka.Brokers, cl.SchemaRegistry.URL
	if cl.IsEmbedded() {
		brokers = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(cl.Embedded.KafkaPort))}
		if regURL == "" {
			regURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cl.Embedded.RegistryPort))
		}
	}
	reg := schemas.NewRegistryClient(regURL, schemas.RegistryClientOptions{Username: cl.SchemaRegistry.Username, Password: cl.SchemaRegistry.Password})
	c.deps, err = topology.NewDeps(cl, brokers, reg, kinds(), slog.New(slog.DiscardHandler))
	return c.deps, err
}

func (c *connFlags) seeds() ([]string, error) {
	var out []string
	for _, b := range strings.Split(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, usagef("-brokers is empty")
	}
	return out, nil
}

// baseOpts are the client options of the cluster: -c's seeds, TLS and
// SASL, or -brokers.
func (c *connFlags) baseOpts() ([]kgo.Opt, error) {
	deps, err := c.fromConfig()
	if err != nil {
		return nil, err
	}
	if deps != nil {
		return deps.KafkaOpts("cli"), nil
	}
	seeds, err := c.seeds()
	if err != nil {
		return nil, err
	}
	return []kgo.Opt{kgo.SeedBrokers(seeds...)}, nil
}

func (c *connFlags) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := c.baseOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

func (c *connFlags) registryClient() schemas.Registry {
	if deps, err := c.fromConfig(); err == nil && deps != nil {
		return deps.Registry
	}
	return schemas.NewRegistryClient(c.registry, schemas.RegistryClientOptions{Username: c.registryUser, Password: c.registryPass})
}
