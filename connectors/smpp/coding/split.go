package coding

import (
	"encoding/binary"
	"fmt"
)

// Sizes of one message and of one part of a concatenated message, in
// octets (3GPP TS 23.040 9.2.3.24.1, and vumi2's split sizes): 160 septets
// fit one message of the default alphabet or ASCII, 153 one part behind a
// 6-octet UDH; 140 and 134 octets for 8-bit and 16-bit codings.
func Sizes(dc byte) (single, part int) {
	if dc == SMSCDefault || dc == IA5ASCII {
		return 160, 153
	}
	return 140, 134
}

// Split encodes text with c and splits it into parts of at most size
// octets each, never cutting a character (a GSM escape sequence, a UTF-16
// surrogate pair or a multi-byte sequence stays whole in one part). The
// parts decode on their own.
func Split(c Codec, text string, size int) ([][]byte, error) {
	if size < 4 {
		return nil, fmt.Errorf("part size %d too small", size)
	}
	whole, err := c.Encode(text)
	if err != nil {
		return nil, err
	}
	if len(whole) <= size {
		return [][]byte{whole}, nil
	}
	runes := []rune(text)
	var parts [][]byte
	for start := 0; start < len(runes); {
		// Grow the part one character at a time while it fits; stateless
		// codings could add lengths, but ISO-2022-JP needs re-encoding.
		end := start
		var seg []byte
		for end < len(runes) {
			b, err := c.Encode(string(runes[start : end+1]))
			if err != nil {
				return nil, err
			}
			if len(b) > size {
				break
			}
			seg, end = b, end+1
		}
		if end == start {
			return nil, fmt.Errorf("character %q does not fit in a %d-octet part", runes[start], size)
		}
		parts = append(parts, seg)
		start = end
	}
	return parts, nil
}

// Concat identifies one part of a concatenated message.
type Concat struct {
	Ref   uint16
	Total int
	Seq   int
	// Ref16 is true for the 16-bit reference IE (0x08).
	Ref16 bool
}

// UDH information element identifiers for concatenated messages.
const (
	IEConcat8  = 0x00
	IEConcat16 = 0x08
)

// AppendUDH appends a user data header with one concatenation IE (8-bit
// reference unless c.Ref16) and returns it.
func AppendUDH(b []byte, c Concat) []byte {
	if c.Ref16 {
		b = append(b, 6, IEConcat16, 4)
		b = binary.BigEndian.AppendUint16(b, c.Ref)
		return append(b, byte(c.Total), byte(c.Seq))
	}
	return append(b, 5, IEConcat8, 3, byte(c.Ref), byte(c.Total), byte(c.Seq))
}

// ParseUDH reads the user data header at the start of ud (present when
// esm_class has UDHI set). It returns the concatenation IE if there is
// one, and the user data after the header. Malformed headers give an error.
func ParseUDH(ud []byte) (c *Concat, rest []byte, err error) {
	if len(ud) < 1 {
		return nil, nil, fmt.Errorf("udh: empty user data")
	}
	n := int(ud[0])
	if len(ud) < 1+n {
		return nil, nil, fmt.Errorf("udh: length %d exceeds the %d-octet user data", n, len(ud)-1)
	}
	h, rest := ud[1:1+n], ud[1+n:]
	for len(h) > 0 {
		if len(h) < 2 || len(h) < 2+int(h[1]) {
			return nil, nil, fmt.Errorf("udh: truncated information element")
		}
		iei, l, v := h[0], int(h[1]), h[2:2+int(h[1])]
		switch {
		case iei == IEConcat8 && l == 3:
			c = &Concat{Ref: uint16(v[0]), Total: int(v[1]), Seq: int(v[2])}
		case iei == IEConcat16 && l == 4:
			c = &Concat{Ref: binary.BigEndian.Uint16(v), Total: int(v[2]), Seq: int(v[3]), Ref16: true}
		}
		h = h[2+l:]
	}
	if c != nil && (c.Total < 1 || c.Seq < 1 || c.Seq > c.Total) {
		return nil, nil, fmt.Errorf("udh: part %d of %d", c.Seq, c.Total)
	}
	return c, rest, nil
}
