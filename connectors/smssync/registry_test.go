package smssync_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/smssync"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/schemas/schematest"
)

// TestQueueWaitsForRegistry: a queued message written with a schema
// version this transport has never seen, while the schema registry is
// down, is not dropped: the queue waits for the registry (the phones'
// polls are answered meanwhile), and the message is handed over once the
// registry is back.
func TestQueueWaitsForRegistry(t *testing.T) {
	e := transporttest.Start(t, kinds(), "phone", singleYAML)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := smssync.QueueTopic("phone")
	// Another release registers a newer version of the message schema.
	reg := schemas.NewRegistryClient(e.Broker.RegistryURL(), schemas.RegistryClientOptions{})
	evolved, err := schematest.Evolved(schemas.UserMessageKind.Text, 1)
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(ctx, topic+"-value", evolved)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Codecs.UserMessage.Register(ctx, topic); err != nil {
		t.Fatal(err)
	}
	m := schemas.NewUserMessage()
	m.ToAddr, m.Content, m.TransportName = schemas.String("+27761234567"), schemas.String("written by a newer release"), schemas.String("phone")
	v, err := e.Codecs.UserMessage.Encode(m)
	if err != nil {
		t.Fatal(err)
	}

	e.SetRegistryDown(true)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Broker.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The account of a single SMSSync is its secret.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("s3cret/" + m.MessageID), Value: schematest.AsEvolved(v, id, 1)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// While the registry is down: polls are answered, nothing is handed over.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if got := poll(t, e); len(got) != 0 {
			t.Fatalf("poll with the registry down returned %v", got)
		}
	}
	e.SetRegistryDown(false)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := poll(t, e)
		if len(got) == 1 && got[0]["message"] == "written by a newer release" && got[0]["to"] == "+27761234567" {
			return
		}
		if len(got) > 0 || time.Now().After(deadline) {
			t.Fatalf("poll after the registry came back returned %v, want the queued message", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
