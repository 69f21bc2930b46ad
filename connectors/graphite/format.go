package graphite

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Point is one value for Carbon: a metric path, a Unix timestamp in
// seconds, and the value.
type Point struct {
	Path      string
	Timestamp int64
	Value     float64
}

// Path returns Carbon's path for an aggregate's name: prefix + name, as
// Vumi named them ("<prefix><metric>.<aggregator>"), with the characters
// the line protocol cannot carry (whitespace, control characters) replaced
// by '_'.
func Path(prefix, name string) string {
	p := prefix + name
	if strings.IndexFunc(p, badPathRune) < 0 {
		return p
	}
	return strings.Map(func(r rune) rune {
		if badPathRune(r) {
			return '_'
		}
		return r
	}, p)
}

func badPathRune(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }

// AppendPlaintext appends p in Carbon's plaintext protocol:
// "<path> <value> <timestamp>\n".
func AppendPlaintext(dst []byte, p Point) []byte {
	dst = append(dst, p.Path...)
	dst = append(dst, ' ')
	dst = strconv.AppendFloat(dst, p.Value, 'f', -1, 64)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, p.Timestamp, 10)
	return append(dst, '\n')
}

// Pickle opcodes (protocol 2), the subset Carbon's safe unpickler needs.
const (
	opProto      = 0x80
	opEmptyList  = ']'
	opMark       = '('
	opAppends    = 'e'
	opBinUnicode = 'X'
	opBinInt     = 'J'
	opLong1      = 0x8a
	opBinFloat   = 'G'
	opTuple2     = 0x86
	opStop       = '.'
)

// AppendPickle appends points as one message of Carbon's pickle protocol:
// a 4-byte big-endian length, then a protocol-2 pickle of
// [(path, (timestamp, value)), ...].
func AppendPickle(dst []byte, points []Point) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, opProto, 2, opEmptyList)
	if len(points) > 0 {
		dst = append(dst, opMark)
		for _, p := range points {
			dst = append(dst, opBinUnicode)
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Path)))
			dst = append(dst, p.Path...)
			if p.Timestamp >= math.MinInt32 && p.Timestamp <= math.MaxInt32 {
				dst = append(dst, opBinInt)
				dst = binary.LittleEndian.AppendUint32(dst, uint32(int32(p.Timestamp)))
			} else {
				dst = append(dst, opLong1, 8)
				dst = binary.LittleEndian.AppendUint64(dst, uint64(p.Timestamp))
			}
			dst = append(dst, opBinFloat)
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(p.Value))
			dst = append(dst, opTuple2, opTuple2)
		}
		dst = append(dst, opAppends)
	}
	dst = append(dst, opStop)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
