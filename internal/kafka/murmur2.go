// Package kafka holds what every Kafka client of the project shares: the
// Kafka-compatible key hasher that franz-go, goka and Java clients agree
// on, and client settings built from the cluster config.
package kafka

import "hash"

// Murmur2 is Kafka's default key hash (murmur2, seed 0x9747b28c), the one
// franz-go's default partitioner and the Java client use.
func Murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partition returns the partition Kafka's default partitioner picks for key
// among n partitions.
func Partition(key []byte, n int32) int32 { return int32(Murmur2(key)&0x7fffffff) % n }

// KafkaHasher returns hash.Hash32 builders for goka (and sarama) whose
// Sum32 is murmur2 with the high bit masked, so that sarama's
// "int32(sum) % n" picks the same partition as Kafka's default partitioner
// and franz-go. Without it goka uses FNV-1a and a user's records would land
// on different partitions depending on which client wrote them.
func KafkaHasher() func() hash.Hash32 {
	return func() hash.Hash32 { return &murmurHash{} }
}

type murmurHash struct{ buf []byte }

func (h *murmurHash) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *murmurHash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *murmurHash) Reset()         { h.buf = h.buf[:0] }
func (h *murmurHash) Size() int      { return 4 }
func (h *murmurHash) BlockSize() int { return 4 }
func (h *murmurHash) Sum32() uint32  { return Murmur2(h.buf) & 0x7fffffff }
