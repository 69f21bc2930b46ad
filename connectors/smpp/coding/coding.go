// Package coding turns SMPP short message bytes into text and back for each
// data_coding value (GSM 03.38 with its extension table, ASCII, Latin-1,
// JIS, Cyrillic, Latin/Hebrew, UCS2), splits long messages into parts, and
// reads and writes the user data headers of concatenated messages.
package coding

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// DataCoding values of SMPP 3.4 section 5.2.19.
const (
	SMSCDefault   byte = 0x00
	IA5ASCII      byte = 0x01
	Octet         byte = 0x02
	Latin1        byte = 0x03
	Octet2        byte = 0x04
	JIS           byte = 0x05
	Cyrillic      byte = 0x06
	LatinHebrew   byte = 0x07
	UCS2          byte = 0x08
	Pictogram     byte = 0x09
	ISO2022JPMusc byte = 0x0A
)

// Codec converts between text and bytes.
type Codec interface {
	Name() string
	Encode(s string) ([]byte, error)
	Decode(b []byte) (string, error)
}

// ErrUnencodable is text the chosen data_coding cannot represent.
var ErrUnencodable = errors.New("character not representable")

// Names of data_coding values in config (vumi2's DataCodingDefault names),
// accepted case-insensitively along with the number.
var dataCodingNames = map[string]byte{
	"SMSC_DEFAULT_ALPHABET":    SMSCDefault,
	"IA5_ASCII":                IA5ASCII,
	"OCTET_UNSPECIFIED":        Octet,
	"LATIN_1":                  Latin1,
	"OCTET_UNSPECIFIED_COMMON": Octet2,
	"JIS":                      JIS,
	"CYRILLIC":                 Cyrillic,
	"ISO_8859_8":               LatinHebrew,
	"UCS2":                     UCS2,
	"PICTOGRAM":                Pictogram,
	"ISO_2022_JP":              ISO2022JPMusc,
}

// ParseDataCoding reads a data_coding given by name (SMSC_DEFAULT_ALPHABET,
// IA5_ASCII, LATIN_1, JIS, CYRILLIC, ISO_8859_8, UCS2, ...) or number.
func ParseDataCoding(s string) (byte, error) {
	if v, ok := dataCodingNames[strings.ToUpper(strings.TrimSpace(s))]; ok {
		return v, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 8)
	if err != nil {
		names := make([]string, 0, len(dataCodingNames))
		for k := range dataCodingNames {
			names = append(names, k)
		}
		sort.Strings(names)
		return 0, fmt.Errorf("%q is not a data coding (want a number 0-255 or one of %s)", s, strings.Join(names, ", "))
	}
	return byte(n), nil
}

// Default returns the codec of a data_coding value, as Vumi maps them
// (vumi2's DataCodingCodecs, Vumi 0.x's data_coding_map): nil for the
// octet-unspecified and reserved values.
func Default(dc byte) Codec {
	switch dc {
	case SMSCDefault:
		return GSM{}
	case IA5ASCII:
		return ascii{}
	case Latin1:
		return textCodec{"latin1", charmap.ISO8859_1}
	case JIS, ISO2022JPMusc:
		return textCodec{"iso2022_jp", japanese.ISO2022JP}
	case Cyrillic:
		return textCodec{"iso8859_5", charmap.ISO8859_5}
	case LatinHebrew:
		return textCodec{"iso8859_8", charmap.ISO8859_8}
	case UCS2:
		return ucs2{}
	case Pictogram:
		return textCodec{"shift_jis", japanese.ShiftJIS}
	}
	return nil
}

// ByName returns a codec by its Python codec name (as data_coding_overrides
// give them): gsm0338, ascii, latin1 / iso-8859-1, utf-8, utf-16be / ucs2,
// iso8859_5, iso8859_8, iso2022_jp, shift_jis, cp1252.
func ByName(name string) (Codec, error) {
	n := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(name))
	switch n {
	case "gsm0338", "gsm", "gsm7":
		return GSM{}, nil
	case "ascii", "usascii", "ia5":
		return ascii{}, nil
	case "latin1", "latin", "iso88591", "l1":
		return textCodec{"latin1", charmap.ISO8859_1}, nil
	case "utf8":
		return utf8Codec{}, nil
	case "utf16be", "ucs2", "utf16":
		return ucs2{}, nil
	case "iso88595", "cyrillic":
		return textCodec{"iso8859_5", charmap.ISO8859_5}, nil
	case "iso88598", "hebrew":
		return textCodec{"iso8859_8", charmap.ISO8859_8}, nil
	case "iso2022jp":
		return textCodec{"iso2022_jp", japanese.ISO2022JP}, nil
	case "shiftjis", "sjis":
		return textCodec{"shift_jis", japanese.ShiftJIS}, nil
	case "cp1252", "windows1252":
		return textCodec{"cp1252", charmap.Windows1252}, nil
	}
	return nil, fmt.Errorf("unknown character encoding %q", name)
}

type textCodec struct {
	name string
	enc  encoding.Encoding
}

func (c textCodec) Name() string { return c.name }
func (c textCodec) Encode(s string) ([]byte, error) {
	b, err := c.enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, ErrUnencodable)
	}
	return b, nil
}
func (c textCodec) Decode(b []byte) (string, error) {
	out, err := c.enc.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.name, err)
	}
	return string(out), nil
}

type ascii struct{}

func (ascii) Name() string { return "ascii" }
func (ascii) Encode(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, fmt.Errorf("ascii: %w", ErrUnencodable)
		}
	}
	return []byte(s), nil
}
func (ascii) Decode(b []byte) (string, error) {
	for _, c := range b {
		if c >= 0x80 {
			return "", fmt.Errorf("ascii: byte 0x%02x is not ASCII", c)
		}
	}
	return string(b), nil
}

type utf8Codec struct{}

func (utf8Codec) Name() string                    { return "utf-8" }
func (utf8Codec) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (utf8Codec) Decode(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errors.New("utf-8: invalid byte sequence")
	}
	return string(b), nil
}

// ucs2 is UCS2 on the wire, big-endian; characters outside the BMP are
// written as UTF-16 surrogate pairs, which handsets display.
type ucs2 struct{}

func (ucs2) Name() string { return "utf-16be" }
func (ucs2) Encode(s string) ([]byte, error) {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, v := range u {
		b[2*i], b[2*i+1] = byte(v>>8), byte(v)
	}
	return b, nil
}
func (ucs2) Decode(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("utf-16be: odd length %d", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u)), nil
}

// GSM is the GSM 03.38 default alphabet, one septet per octet (unpacked,
// as SMPP carries it), with the extension table behind the escape 0x1B.
type GSM struct{}

const gsmEscape = 0x1B

var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', 0x1B, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

var gsmExt = map[byte]rune{
	0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\',
	0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
}

var (
	gsmEncBasic = map[rune]byte{}
	gsmEncExt   = map[rune]byte{}
)

func init() {
	for i, r := range gsmBasic {
		if i != gsmEscape {
			gsmEncBasic[r] = byte(i)
		}
	}
	for b, r := range gsmExt {
		gsmEncExt[r] = b
	}
}

// Name implements Codec.
func (GSM) Name() string { return "gsm0338" }

// Encode implements Codec.
func (GSM) Encode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, ok := gsmEncBasic[r]; ok {
			out = append(out, b)
		} else if b, ok := gsmEncExt[r]; ok {
			out = append(out, gsmEscape, b)
		} else {
			return nil, fmt.Errorf("gsm0338: %q: %w", r, ErrUnencodable)
		}
	}
	return out, nil
}

// Decode implements Codec. An escape before an unknown extension code
// gives a space then the basic character, as 03.38 asks of receivers.
func (GSM) Decode(b []byte) (string, error) {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i] & 0x7F
		if c == gsmEscape && i+1 < len(b) {
			i++
			if r, ok := gsmExt[b[i]&0x7F]; ok {
				sb.WriteRune(r)
			} else {
				sb.WriteByte(' ')
				sb.WriteRune(gsmBasic[b[i]&0x7F])
			}
			continue
		}
		if c == gsmEscape {
			sb.WriteByte(' ')
			continue
		}
		sb.WriteRune(gsmBasic[c])
	}
	return sb.String(), nil
}

// Table maps data_coding values to codecs: Vumi's defaults plus overrides.
type Table map[byte]Codec

// NewTable returns the default table with overrides applied
// (data_coding_overrides: data coding → Python codec name).
func NewTable(overrides map[int]string) (Table, error) {
	t := Table{}
	for dc := 0; dc < 16; dc++ {
		if c := Default(byte(dc)); c != nil {
			t[byte(dc)] = c
		}
	}
	for dc, name := range overrides {
		if dc < 0 || dc > 255 {
			return nil, fmt.Errorf("data coding %d is not 0-255", dc)
		}
		c, err := ByName(name)
		if err != nil {
			return nil, fmt.Errorf("data coding %d: %w", dc, err)
		}
		t[byte(dc)] = c
	}
	return t, nil
}

// Decode decodes b sent with data_coding dc. Data codings without a codec
// (octet unspecified) are decoded as Latin-1 so no byte is lost.
func (t Table) Decode(dc byte, b []byte) (string, error) {
	c, ok := t[dc]
	if !ok {
		c = textCodec{"latin1", charmap.ISO8859_1}
	}
	return c.Decode(b)
}
