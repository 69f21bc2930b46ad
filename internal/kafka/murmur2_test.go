package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHashersAgree: franz-go's default partitioner, Partition and the goka
// hasher (used the way sarama uses it) put every key on the same partition.
func TestHashersAgree(t *testing.T) {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	h := KafkaHasher()()
	for i := range 2000 {
		key := []byte(fmt.Sprintf("+2776%07d-%d", i*7919, i))
		if i%10 == 0 {
			key = key[:i%7] // short keys exercise the tail cases
		}
		for _, n := range []int32{1, 2, 3, 4, 7, 10, 16, 100} {
			want := int32(tp.Partition(&kgo.Record{Key: key}, int(n)))
			if got := Partition(key, n); got != want {
				t.Fatalf("Partition(%q, %d) = %d, franz-go says %d", key, n, got, want)
			}
			h.Reset()
			_, _ = h.Write(key)
			p := int32(h.Sum32()) % n // sarama's hash partitioner
			if p < 0 {
				p = -p
			}
			if p != want {
				t.Fatalf("goka hasher puts %q on %d of %d, franz-go on %d", key, p, n, want)
			}
		}
	}
}

// TestMurmur2KnownValues pins values from Kafka's own test suite
// (UtilsTest.testMurmur2).
func TestMurmur2KnownValues(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	}
	for in, want := range cases {
		if got := int32(Murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}
