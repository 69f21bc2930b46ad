package topology

import (
	"crypto/sha256"
	"crypto/sha512"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// sarama needs a SCRAM client from the application; this one wraps
// github.com/xdg-go/scram (the implementation sarama's own examples use).

var (
	sha256Gen scram.HashGeneratorFcn = sha256.New
	sha512Gen scram.HashGeneratorFcn = sha512.New
)

type scramClient struct {
	gen  scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func newSCRAMClient(gen scram.HashGeneratorFcn) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramClient{gen: gen} }
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.gen.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }
