package mtnnigeria

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MTN Nigeria's XML over TCP: every packet is a 32-byte header — the
// session id in 16 bytes and the packet's total length (header included)
// as decimal digits in 16 bytes, both padded with NUL bytes — followed by
// an XML body <PacketType><field>value</field>...</PacketType> in
// ISO-8859-1.

const (
	sessionIDSize = 16
	lengthSize    = 16
	headerSize    = sessionIDSize + lengthSize
	// maxPacket bounds a packet's declared length; a longer one means the
	// stream cannot be trusted.
	maxPacket = 64 * 1024
)

// Errors about what the server sent.
var (
	// ErrFrame: the header cannot be read, so the stream's framing is lost
	// and the connection must be dropped.
	ErrFrame = errors.New("malformed packet header")
	// ErrBody: the packet was framed correctly but its body is not the
	// XML expected; the connection can go on.
	ErrBody = errors.New("malformed packet body")
)

// header decodes a packet header: the session id and the total length.
func parseHeader(h []byte) (string, int, error) {
	if len(h) != headerSize {
		return "", 0, fmt.Errorf("%w: %d bytes, want %d", ErrFrame, len(h), headerSize)
	}
	sid := strings.ReplaceAll(string(h[:sessionIDSize]), "\x00", "")
	ls := strings.TrimSpace(strings.ReplaceAll(string(h[sessionIDSize:]), "\x00", ""))
	n, err := strconv.Atoi(ls)
	if err != nil {
		return "", 0, fmt.Errorf("%w: length field %q is not a number", ErrFrame, ls)
	}
	if n < headerSize || n > maxPacket {
		return "", 0, fmt.Errorf("%w: length %d is not between %d and %d", ErrFrame, n, headerSize, maxPacket)
	}
	return sid, n, nil
}

// Packet is one decoded packet.
type Packet struct {
	SessionID string
	Type      string
	Params    map[string]string
}

// parseBody decodes an XML body into its root element's name and its
// child elements' texts (trimmed; nested elements are ignored, as Vumi's
// reader did).
func parseBody(body []byte) (string, map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(latin1(body)))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil } // already UTF-8
	d.Strict = true
	var root string
	params := map[string]string{}
	depth := 0
	var field string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("%w: %v", ErrBody, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if root != "" {
					return "", nil, fmt.Errorf("%w: more than one root element", ErrBody)
				}
				root = t.Name.Local
			case 2:
				field = t.Name.Local
				text.Reset()
			}
		case xml.EndElement:
			if depth == 2 {
				params[field] = strings.TrimSpace(text.String())
			}
			depth--
		case xml.CharData:
			if depth == 2 {
				text.Write(t)
			} else if depth != 1 && len(bytes.TrimSpace(t)) > 0 {
				return "", nil, fmt.Errorf("%w: text outside the root element", ErrBody)
			}
		}
	}
	if root == "" {
		return "", nil, fmt.Errorf("%w: no root element", ErrBody)
	}
	return root, params, nil
}

// ParsePacket decodes a whole packet (header and body).
func ParsePacket(b []byte) (*Packet, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrFrame, len(b))
	}
	sid, n, err := parseHeader(b[:headerSize])
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: length %d, packet has %d bytes", ErrFrame, n, len(b))
	}
	typ, params, err := parseBody(b[headerSize:])
	if err != nil {
		return nil, err
	}
	return &Packet{SessionID: sid, Type: typ, Params: params}, nil
}

// param is one field of a packet to send, in order.
type param struct{ name, value string }

// encodePacket builds a packet: header and ISO-8859-1 XML body, with
// characters ISO-8859-1 cannot hold written as character references.
func encodePacket(sessionID, typ string, params []param) []byte {
	var body bytes.Buffer
	body.WriteString("<" + typ + ">")
	for _, p := range params {
		body.WriteString("<" + p.name + ">")
		writeEscaped(&body, p.value)
		body.WriteString("</" + p.name + ">")
	}
	body.WriteString("</" + typ + ">")
	out := make([]byte, headerSize, headerSize+body.Len())
	copy(out, padNUL(sessionID, sessionIDSize))
	copy(out[sessionIDSize:], padNUL(strconv.Itoa(headerSize+body.Len()), lengthSize))
	return append(out, body.Bytes()...)
}

func padNUL(s string, n int) []byte {
	b := make([]byte, n)
	copy(b, s)
	return b
}

func writeEscaped(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r > 0xFF:
			fmt.Fprintf(b, "&#%d;", r)
		default:
			b.WriteByte(byte(r))
		}
	}
}

// latin1 decodes ISO-8859-1 bytes into UTF-8.
func latin1(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x80 {
			out = append(out, c)
		} else {
			out = append(out, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return out
}

// frameReader splits a stream into packets.
type frameReader struct{ buf []byte }

func (r *frameReader) feed(p []byte) { r.buf = append(r.buf, p...) }

// next returns the next whole packet's bytes, or ok=false when more data
// is needed. An error means the framing is lost.
func (r *frameReader) next() (pkt []byte, ok bool, err error) {
	if len(r.buf) < headerSize {
		return nil, false, nil
	}
	_, n, err := parseHeader(r.buf[:headerSize])
	if err != nil {
		return nil, false, err
	}
	if len(r.buf) < n {
		return nil, false, nil
	}
	pkt = append([]byte(nil), r.buf[:n]...)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 {
		r.buf = nil
	}
	return pkt, true, nil
}
