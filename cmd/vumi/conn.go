package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/schemas"
)

// connFlags are the flags of commands that talk to Kafka and the registry.
type connFlags struct {
	brokers      string
	registry     string
	registryUser string
	registryPass string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", envOr("VUMI_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka seed brokers ($VUMI_BROKERS)")
	fs.StringVar(&c.registry, "registry", envOr("VUMI_REGISTRY_URL", "http://127.0.0.1:8081"), "schema registry URL ($VUMI_REGISTRY_URL)")
	fs.StringVar(&c.registryUser, "registry-username", envOr("VUMI_REGISTRY_USERNAME", ""), "schema registry basic-auth user ($VUMI_REGISTRY_USERNAME)")
	fs.StringVar(&c.registryPass, "registry-password", envOr("VUMI_REGISTRY_PASSWORD", ""), "schema registry basic-auth password ($VUMI_REGISTRY_PASSWORD)")
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

func (c *connFlags) client(opts ...kgo.Opt) (*kgo.Client, error) {
	seeds, err := c.seeds()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", c.brokers, err)
	}
	return cl, nil
}

func (c *connFlags) registryClient() *schemas.RegistryClient {
	return schemas.NewRegistryClient(c.registry, schemas.RegistryClientOptions{Username: c.registryUser, Password: c.registryPass})
}
