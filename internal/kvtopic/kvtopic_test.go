package kvtopic_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kvtopic"
)

func TestStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	adm, _ := kgo.NewClient(opts...)
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "state"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a, err := kvtopic.Open(ctx, "state", opts, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, k := range []string{"k1", "k2", "k3"} {
		if err := a.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Put(ctx, "k1", []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if v, ok := a.Get("k1"); !ok || string(v) != "newer" {
		t.Errorf("k1 = %q %v (a local write must not be undone by following the topic)", v, ok)
	}
	// A second instance loads what the first wrote.
	b, err := kvtopic.Open(ctx, "state", opts, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for k, want := range map[string]string{"k1": "newer", "k3": "v-k3"} {
		if v, ok := b.Get(k); !ok || string(v) != want {
			t.Errorf("loaded %s = %q %v, want %q", k, v, ok, want)
		}
	}
	if _, ok := b.Get("k2"); ok || b.Len() != 2 {
		t.Errorf("deleted key loaded; len %d", b.Len())
	}
	// And follows the first's later writes.
	if err := a.Put(ctx, "k4", []byte("late")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if v, ok := b.Get("k4"); ok && string(v) == "late" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second instance did not see a later write")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
