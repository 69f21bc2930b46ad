package truteq

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The SSMI protocol (TruTeq's "SSMI" v1.7.5 as txssmi speaks it): lines of
// comma-separated fields ending in a carriage return, each starting with
// the header "SSMI" and a numeric command id. The last field of a command
// takes the rest of the line, commas included. Text is ISO-8859-1.

const (
	ssmiHeader = "SSMI"
	delimiter  = '\r'
	// maxLine is the longest line accepted (Twisted's LineReceiver
	// MAX_LENGTH); a longer one is discarded up to its delimiter.
	maxLine = 16384
)

// Requests (client to server).
const (
	reqLogin       = "1"
	reqLinkCheck   = "3"
	reqLogout      = "99"
	reqSendUSSD    = "110"
	reqSendExtUSSD = "120"
)

// Responses (server to client).
const (
	respSeq      = "100"
	respAck      = "101"
	respNack     = "102"
	respMO       = "103"
	respDR       = "104"
	respFreeForm = "105"
	respBinMO    = "106"
	respPremMO   = "107"
	respPremBMO  = "108"
	respUSSD     = "110"
	respExtUSSD  = "111"
	respLogout   = "199"
	respIMSI     = "600"
)

// USSD session types.
const (
	ussdNew      = "1"
	ussdResponse = "2"
	ussdEnd      = "3"
	ussdTimeout  = "4"
	ussdRedirect = "5"
	ussdInitiate = "6"
)

// ACK types.
const (
	ackLoginOK   = "1"
	ackLinkCheck = "2"
)

type command struct {
	name   string
	fields []string
}

var responses = map[string]command{
	respSeq:      {"SEQ", []string{"msisdn", "sequence"}},
	respAck:      {"ACK", []string{"ack_type"}},
	respNack:     {"NACK", []string{"nack_type"}},
	respMO:       {"MO", []string{"msisdn", "sequence", "message"}},
	respDR:       {"DR", []string{"msisdn", "sequence", "ret_code"}},
	respFreeForm: {"FREE_FORM", []string{"text"}},
	respBinMO:    {"BINARY_MO", []string{"msisdn", "sequence", "pid", "coding", "hex_msg"}},
	respPremMO:   {"PREMIUM_MO", []string{"msisdn", "sequence", "destination", "message"}},
	respPremBMO:  {"PREMIUM_BINARY_MO", []string{"msisdn", "sequence", "pid", "coding", "destination", "hex_msg"}},
	respUSSD:     {"USSD_MESSAGE", []string{"msisdn", "type", "phase", "message"}},
	respExtUSSD:  {"EXTENDED_USSD_MESSAGE", []string{"msisdn", "type", "phase", "genfields", "message"}},
	respLogout:   {"LOGOUT", []string{"ip"}},
	respIMSI:     {"IMSI_LOOKUP_REPLY", []string{"sequence", "msisdn", "imsi", "spid"}},
}

// ErrMalformed is wrapped by every error about a line that is not an SSMI
// command the transport understands.
var ErrMalformed = errors.New("malformed SSMI command")

// Frame is one SSMI command from the server.
type Frame struct {
	ID     string
	Name   string
	values map[string]string
}

// Get returns a field's value ("" when the command has no such field).
func (f *Frame) Get(field string) string { return f.values[field] }

// ParseResponse parses one line (without its delimiter) sent by an SSMI
// server. Text is decoded from ISO-8859-1.
func ParseResponse(line []byte) (*Frame, error) {
	s := latin1(line)
	header, rest, _ := strings.Cut(s, ",")
	if header != ssmiHeader {
		return nil, fmt.Errorf("%w: header %q, want %q", ErrMalformed, clip(header), ssmiHeader)
	}
	id, values, _ := strings.Cut(rest, ",")
	cmd, ok := responses[id]
	if !ok {
		return nil, fmt.Errorf("%w: unknown command id %q", ErrMalformed, clip(id))
	}
	parts := strings.SplitN(values, ",", len(cmd.fields))
	if len(parts) < len(cmd.fields) {
		return nil, fmt.Errorf("%w: too few fields for %s (expected %d, got %d)", ErrMalformed, cmd.name, len(cmd.fields), len(parts))
	}
	f := &Frame{ID: id, Name: cmd.name, values: make(map[string]string, len(cmd.fields))}
	for i, name := range cmd.fields {
		f.values[name] = parts[i]
	}
	return f, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// latin1 decodes ISO-8859-1 bytes.
func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// toLatin1 encodes s as ISO-8859-1, failing on a character it cannot hold.
func toLatin1(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i, r := range s {
		if r > 0xFF { // also invalid UTF-8, which reads as U+FFFD
			return nil, fmt.Errorf("character %q at byte %d cannot be sent in ISO-8859-1", r, i)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// encodeRequest builds one request line: SSMI,<id>,<fields...>\r. Fields
// are ISO-8859-1 bytes already.
func encodeRequest(id string, fields ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(ssmiHeader)
	b.WriteByte(',')
	b.WriteString(id)
	for _, f := range fields {
		b.WriteByte(',')
		b.Write(f)
	}
	b.WriteByte(delimiter)
	return b.Bytes()
}

// lineBreaks are the separators Python's str.splitlines splits on.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\v", "\n", "\f", "\n", "\x1c", "\n", "\x1d", "\n", "\x1e", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

// ussdText prepares outbound content as Vumi's transport does: "\r" ends
// an SSMI line, so every line break becomes "\n" ('\n'.join of
// splitlines, which drops one trailing break).
func ussdText(s string) string {
	s = lineBreaks.Replace(s)
	return strings.TrimSuffix(s, "\n")
}

// lineReader splits a stream into SSMI lines, discarding (and reporting)
// lines longer than maxLine instead of dropping the connection.
type lineReader struct {
	buf     []byte
	discard bool
}

// next returns the next complete line in the buffered data, or ok=false
// when more data is needed. tooLong reports a discarded over-long line.
func (r *lineReader) next() (line []byte, tooLong, ok bool) {
	for {
		i := bytes.IndexByte(r.buf, delimiter)
		if i < 0 {
			if len(r.buf) > maxLine {
				r.buf = r.buf[:0]
				if !r.discard {
					r.discard = true
					return nil, true, true
				}
			}
			return nil, false, false
		}
		line = r.buf[:i:i]
		r.buf = r.buf[i+1:]
		if r.discard {
			r.discard = false
			continue
		}
		// Tolerate a peer that ends lines with \r\n.
		line = bytes.TrimPrefix(line, []byte{'\n'})
		if len(line) > maxLine {
			return nil, true, true
		}
		return line, false, true
	}
}

// feed adds data read from the connection.
func (r *lineReader) feed(p []byte) {
	if len(r.buf) == 0 {
		r.buf = append(r.buf[:0:0], p...)
		return
	}
	r.buf = append(r.buf, p...)
}
