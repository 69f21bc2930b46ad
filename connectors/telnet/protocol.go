package telnet

import "io"

// Telnet command bytes (RFC 854).
const (
	cmdSE   = 240
	cmdSB   = 250
	cmdWILL = 251
	cmdWONT = 252
	cmdDO   = 253
	cmdDONT = 254
	cmdIAC  = 255
)

// telnetReader strips Telnet commands from a client's input and refuses
// every option the client offers or asks for (answering DO with WONT and
// WILL with DONT), as Twisted's TelnetTransport does by default, so that a
// real telnet client's negotiation never reaches the application as text.
type telnetReader struct {
	r     io.Reader
	reply interface{ write(string) error }
	state int
	verb  byte // the WILL/WONT/DO/DONT awaiting its option byte
	buf   [512]byte
}

const (
	stData = iota
	stIAC
	stOption // after WILL/WONT/DO/DONT, the option byte
	stSB     // inside subnegotiation
	stSBIAC  // IAC inside subnegotiation
)

func newTelnetReader(r io.Reader, reply interface{ write(string) error }) *telnetReader {
	return &telnetReader{r: r, reply: reply}
}

func (t *telnetReader) Read(p []byte) (int, error) {
	for {
		n, err := t.r.Read(t.buf[:min(len(t.buf), len(p))])
		out := 0
		for _, b := range t.buf[:n] {
			switch t.state {
			case stData:
				if b == cmdIAC {
					t.state = stIAC
				} else {
					p[out] = b
					out++
				}
			case stIAC:
				switch b {
				case cmdIAC: // escaped 255
					p[out] = b
					out++
					t.state = stData
				case cmdWILL, cmdWONT, cmdDO, cmdDONT:
					t.verb = b
					t.state = stOption
				case cmdSB:
					t.state = stSB
				default: // NOP, GA, AYT, ... carry no data
					t.state = stData
				}
			case stOption:
				switch t.verb {
				case cmdDO:
					_ = t.reply.write(string([]byte{cmdIAC, cmdWONT, b}))
				case cmdWILL:
					_ = t.reply.write(string([]byte{cmdIAC, cmdDONT, b}))
				}
				t.state = stData
			case stSB:
				if b == cmdIAC {
					t.state = stSBIAC
				}
			case stSBIAC:
				if b == cmdSE {
					t.state = stData
				} else {
					t.state = stSB
				}
			}
		}
		if out > 0 || err != nil {
			return out, err
		}
	}
}
