package kafka

import (
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// oldSaramaProducerConfig is the sarama producer goka processors had before
// GokaProducer (topology.Deps.SaramaConfig then): idempotent, acks=all, one
// request in flight per broker, 1 ms flush.
func oldSaramaProducerConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Compression = sarama.CompressionNone
	c.Producer.Flush.Frequency = time.Millisecond
	c.Producer.Flush.Messages = 0
	c.Producer.Flush.Bytes = 256 << 10
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 10
	return c
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGokaProducer emits b.N records of 200 bytes through goka's
// Producer interface, on the sarama producer goka used before and on
// GokaProducer, to an in-process kfake broker (its CPU is counted too).
// serial: one emit at a time, each waiting for its promise (reports the
// p50/p99 emit-to-promise latency); window: up to 256 unconfirmed emits,
// as a busy processor has (reports records/s). cpu-µs/rec is the whole
// process's CPU per record.
func BenchmarkGokaProducer(b *testing.B) {
	builders := map[string]func(addrs []string) goka.ProducerBuilder{
		"sarama": func([]string) goka.ProducerBuilder { return goka.ProducerBuilderWithConfig(oldSaramaProducerConfig()) },
		"franz": func(addrs []string) goka.ProducerBuilder {
			return GokaProducerBuilder([]kgo.Opt{kgo.SeedBrokers(addrs...)})
		},
	}
	for _, name := range []string{"sarama", "franz"} {
		for _, window := range []int{1, 256} {
			b.Run(fmt.Sprintf("%s/window=%d", name, window), func(b *testing.B) {
				c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "t"))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				p, err := builders[name](c.ListenAddrs())(c.ListenAddrs(), "bench", KafkaHasher())
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				// Warm up: metadata, producer id, connections.
				done := make(chan error, 1)
				p.Emit("t", "warm", []byte("x")).Then(func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				value := make([]byte, 200)
				lat := make([]time.Duration, 0, b.N)
				var mu sync.Mutex
				sem := make(chan struct{}, window)
				var wg sync.WaitGroup
				var failed error
				cpu0 := cpuTime()
				b.ResetTimer()
				start := time.Now()
				for i := range b.N {
					sem <- struct{}{}
					wg.Add(1)
					t0 := time.Now()
					p.Emit("t", fmt.Sprintf("key-%d", i%10000), value).Then(func(err error) {
						d := time.Since(t0)
						mu.Lock()
						lat = append(lat, d)
						if err != nil && failed == nil {
							failed = err
						}
						mu.Unlock()
						<-sem
						wg.Done()
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if failed != nil {
					b.Fatal(failed)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "recs/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/rec")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
