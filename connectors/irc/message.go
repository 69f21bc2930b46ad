package irc

import (
	"strings"
	"unicode/utf8"
)

// Line is one parsed IRC protocol line (RFC 1459/2812):
// [":" prefix SPACE] command [params] [" :" trailing].
type Line struct {
	Prefix  string
	Command string
	Params  []string
}

// ParseLine parses a line without its CR LF. It never fails: a line with
// no command gives a Line with an empty Command.
func ParseLine(s string) Line {
	s = strings.TrimRight(s, "\r\n")
	var l Line
	if strings.HasPrefix(s, ":") {
		var rest string
		l.Prefix, rest, _ = strings.Cut(s[1:], " ")
		s = rest
	}
	s = strings.TrimLeft(s, " ")
	for s != "" {
		if strings.HasPrefix(s, ":") && l.Command != "" {
			l.Params = append(l.Params, s[1:])
			break
		}
		word, rest, _ := strings.Cut(s, " ")
		if l.Command == "" {
			l.Command = strings.ToUpper(word)
		} else if word != "" {
			l.Params = append(l.Params, word)
		}
		s = strings.TrimLeft(rest, " ")
	}
	return l
}

// Param returns the i-th parameter, or "".
func (l Line) Param(i int) string {
	if i < len(l.Params) {
		return l.Params[i]
	}
	return ""
}

// Nick is the nickname part of a prefix "nick!user@host".
func (l Line) Nick() string {
	n, _, _ := strings.Cut(l.Prefix, "!")
	return n
}

// Message is a message to or from an IRC user (Vumi's IrcMessage).
type Message struct {
	// Sender and Recipient are canonical: nickname or channel, lowercase.
	Sender    string
	Recipient string
	// Command is PRIVMSG, NOTICE or ACTION (a CTCP ACTION in a PRIVMSG).
	Command string
	Content string
	// Nickname is the transport's nickname when the message arrived.
	Nickname string
}

// Canonicalize turns an IRC address ("nick!user@host" or a channel) into a
// lowercase nickname or channel, as Vumi's canonicalize_recipient.
func Canonicalize(addr string) string {
	n, _, _ := strings.Cut(addr, "!")
	return strings.ToLower(n)
}

// IsChannel reports whether a target names a channel.
func IsChannel(target string) bool {
	return target != "" && strings.ContainsRune("#&$+!", rune(target[0]))
}

// Channel returns the recipient when it is a channel, else "".
func (m *Message) Channel() string {
	if IsChannel(m.Recipient) {
		return m.Recipient
	}
	return ""
}

// AddressedTo reports whether the message is for nickname: a private
// message to it, or a channel message starting with "nickname:" or
// "nickname," (Vumi's addressed_to).
func (m *Message) AddressedTo(nickname string) bool {
	nickname = Canonicalize(nickname)
	if m.Channel() == "" {
		return m.Recipient == nickname
	}
	first, _ := splitFirstWord(m.Content)
	return Canonicalize(strings.TrimRight(first, ":,")) == nickname
}

// splitFirstWord splits on the first run of whitespace, as Python's
// str.split(None, 1).
func splitFirstWord(s string) (string, string) {
	s = strings.TrimLeft(s, " \t\r\n\v\f")
	i := strings.IndexAny(s, " \t\r\n\v\f")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t\r\n\v\f")
}

// messageFromLine turns a PRIVMSG or NOTICE line into a Message; ok is
// false for other lines and for CTCP requests other than ACTION.
func messageFromLine(l Line, nickname string) (Message, bool) {
	if (l.Command != "PRIVMSG" && l.Command != "NOTICE") || len(l.Params) < 2 || l.Prefix == "" {
		return Message{}, false
	}
	cmd, text := l.Command, l.Params[1]
	if strings.HasPrefix(text, "\x01") {
		inner := strings.TrimSuffix(strings.TrimPrefix(text, "\x01"), "\x01")
		verb, arg, _ := strings.Cut(inner, " ")
		if l.Command != "PRIVMSG" || !strings.EqualFold(verb, "ACTION") {
			return Message{}, false
		}
		cmd, text = "ACTION", arg
	}
	return Message{
		Sender:    Canonicalize(l.Prefix),
		Recipient: Canonicalize(l.Params[0]),
		Command:   cmd,
		Content:   toValidUTF8(text),
		Nickname:  nickname,
	}, true
}

// toValidUTF8 decodes text that is not UTF-8 as Latin-1, the usual
// fallback of IRC clients.
func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// maxPayload is how many bytes of text one PRIVMSG carries: the 512-byte
// line limit less the command, the target and the prefix the server adds
// when relaying (nick!user@host, up to ~100 bytes).
const maxPayload = 400

// outboundLines turns a message into protocol lines: one per line of
// content, long lines split at rune boundaries, CTCP ACTION wrapped.
func outboundLines(command, target, content string) []string {
	var out []string
	verb := "PRIVMSG"
	if command == "NOTICE" {
		verb = "NOTICE"
	}
	content = strings.ReplaceAll(content, "\r\n", "\n")
	content = strings.ReplaceAll(content, "\r", "\n")
	limit := maxPayload - len(target)
	if limit < 50 {
		limit = 50
	}
	for _, para := range strings.Split(content, "\n") {
		para = strings.ReplaceAll(para, "\x00", "")
		for _, chunk := range splitBytes(para, limit) {
			if command == "ACTION" {
				chunk = "\x01ACTION " + chunk + "\x01"
			}
			out = append(out, verb+" "+target+" :"+chunk)
		}
	}
	return out
}

// splitBytes splits s into pieces of at most n bytes without cutting a
// UTF-8 sequence; "" gives one empty piece.
func splitBytes(s string, n int) []string {
	if len(s) <= n {
		return []string{s}
	}
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		if i == 0 {
			i = n
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// alterCollidedNick is the nickname tried after a collision: Vumi's
// alterCollidedNick appends '^'.
func alterCollidedNick(nick string) string { return nick + "^" }
