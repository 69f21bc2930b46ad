package opera

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- XML-RPC (the client side of Opera's EAPIGateway) ----

// Binary is an XML-RPC <base64> value.
type Binary []byte

// DateTime is an XML-RPC <dateTime.iso8601> value, sent as UTC without a
// zone ("20060102T15:04:05"), as Python's xmlrpclib did.
type DateTime time.Time

// TimeFormat is XML-RPC's dateTime.iso8601 layout (also Opera's receipts').
const TimeFormat = "20060102T15:04:05"

// EncodeCall encodes an XML-RPC methodCall whose one parameter is a struct
// of string, int, Binary and DateTime members (in name order).
func EncodeCall(method string, params map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>")
	_ = xml.EscapeText(&b, []byte(method))
	b.WriteString("</methodName><params><param><value><struct>")
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString("<member><name>")
		_ = xml.EscapeText(&b, []byte(k))
		b.WriteString("</name><value>")
		switch v := params[k].(type) {
		case string:
			b.WriteString("<string>")
			_ = xml.EscapeText(&b, []byte(v))
			b.WriteString("</string>")
		case int:
			b.WriteString("<int>" + strconv.Itoa(v) + "</int>")
		case Binary:
			b.WriteString("<base64>" + base64.StdEncoding.EncodeToString(v) + "</base64>")
		case DateTime:
			b.WriteString("<dateTime.iso8601>" + time.Time(v).UTC().Format(TimeFormat) + "</dateTime.iso8601>")
		default:
			return nil, fmt.Errorf("xml-rpc: member %s: unsupported type %T", k, v)
		}
		b.WriteString("</value></member>")
	}
	b.WriteString("</struct></value></param></params></methodCall>\n")
	return b.Bytes(), nil
}

// Fault is an XML-RPC fault response.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return fmt.Sprintf("XML-RPC fault %d: %s", f.Code, f.String) }

// rpcValue is any XML-RPC value; scalars are kept as text.
type rpcValue struct {
	Inner []byte `xml:",innerxml"`
	Text  string `xml:",chardata"`
	Elems []struct {
		XMLName xml.Name
		Inner   []byte `xml:",innerxml"`
	} `xml:",any"`
}

type rpcMember struct {
	Name  string   `xml:"name"`
	Value rpcValue `xml:"value"`
}

type rpcStruct struct {
	Members []rpcMember `xml:"member"`
}

// scalar returns a value's text, its type (string for untyped), or ok
// false for structs and arrays.
func (v rpcValue) scalar() (text, typ string, ok bool, err error) {
	if len(v.Elems) == 0 {
		return v.Text, "string", true, nil
	}
	if len(v.Elems) > 1 {
		return "", "", false, errors.New("value holds more than one element")
	}
	e := v.Elems[0]
	switch e.XMLName.Local {
	case "struct", "array":
		return "", e.XMLName.Local, false, nil
	}
	var s string
	if err := xml.Unmarshal(append(append([]byte("<x>"), e.Inner...), "</x>"...), &s); err != nil {
		return "", "", false, fmt.Errorf("value <%s>: %w", e.XMLName.Local, err)
	}
	return s, e.XMLName.Local, true, nil
}

// members decodes a struct value into its scalar members as text.
func (v rpcValue) members() (map[string]string, error) {
	if len(v.Elems) != 1 || v.Elems[0].XMLName.Local != "struct" {
		return nil, errors.New("value is not a struct")
	}
	var st rpcStruct
	if err := xml.Unmarshal(append(append([]byte("<struct>"), v.Elems[0].Inner...), "</struct>"...), &st); err != nil {
		return nil, fmt.Errorf("struct: %w", err)
	}
	out := map[string]string{}
	for _, m := range st.Members {
		text, _, ok, err := m.Value.scalar()
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", m.Name, err)
		}
		if ok {
			out[m.Name] = text
		}
	}
	return out, nil
}

// ErrResponse wraps every reason a response could not be decoded.
var ErrResponse = errors.New("invalid XML-RPC response")

// DecodeResponse decodes a methodResponse whose result is a struct: its
// scalar members as text. A fault is returned as *Fault.
func DecodeResponse(body []byte) (map[string]string, error) {
	var resp struct {
		XMLName xml.Name `xml:"methodResponse"`
		Params  []struct {
			Value rpcValue `xml:"value"`
		} `xml:"params>param"`
		Fault *struct {
			Value rpcValue `xml:"value"`
		} `xml:"fault"`
	}
	if err := xml.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResponse, err)
	}
	if resp.Fault != nil {
		m, err := resp.Fault.Value.members()
		if err != nil {
			return nil, fmt.Errorf("%w: fault: %v", ErrResponse, err)
		}
		code, err := strconv.Atoi(strings.TrimSpace(m["faultCode"]))
		if err != nil {
			return nil, fmt.Errorf("%w: fault code %q is not an integer", ErrResponse, m["faultCode"])
		}
		return nil, &Fault{Code: code, String: m["faultString"]}
	}
	if len(resp.Params) != 1 {
		return nil, fmt.Errorf("%w: %d params, want 1", ErrResponse, len(resp.Params))
	}
	m, err := resp.Params[0].Value.members()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResponse, err)
	}
	return m, nil
}

// ---- What Opera posts to the transport ----

// BadRequestError is why a post from Opera is rejected (400, with the
// message as the body, as Vumi's BadRequestError).
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

func badRequest(format string, a ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, a...)}
}

// XMLBody returns the XML of a post from Opera: the body itself when it
// is XML, else the XmlMsg field of a form-encoded body.
func XMLBody(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if bytes.HasPrefix(trimmed, []byte("<")) {
		return trimmed, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("body is neither XML nor a form: %v", err)
	}
	if _, ok := form["XmlMsg"]; !ok {
		return nil, badRequest("XmlMsg missing.")
	}
	return []byte(form.Get("XmlMsg")), nil
}

// Receipt is one of Opera's delivery receipts.
type Receipt struct {
	MsgID     string `xml:"msgid"`
	Reference string `xml:"reference"`
	MSISDN    string `xml:"msisdn"`
	Status    string `xml:"status"`
	Timestamp string `xml:"timestamp"`
	Billed    string `xml:"billed"`
}

// ParseReceipts parses a <receipts> document.
func ParseReceipts(doc []byte) ([]Receipt, error) {
	var r struct {
		XMLName  xml.Name  `xml:"receipts"`
		Receipts []Receipt `xml:"receipt"`
	}
	if err := xml.Unmarshal(doc, &r); err != nil {
		return nil, badRequest("receipts: %v", err)
	}
	for i, rc := range r.Receipts {
		if strings.TrimSpace(rc.Reference) == "" {
			return nil, badRequest("receipt %d: no reference", i+1)
		}
	}
	return r.Receipts, nil
}

// DeliveryStatus maps a receipt status to Vumi's: D, d and R are
// delivered; Q, P, B, a and u pending; anything else failed.
func DeliveryStatus(s string) string {
	switch s {
	case "D", "d", "R":
		return "delivered"
	case "Q", "P", "B", "a", "u":
		return "pending"
	}
	return "failed"
}

// RequiredFields are the bspostevent fields an inbound message needs.
var RequiredFields = []string{"Local", "Remote", "Text", "MessageID", "MobileNetwork"}

// ParsePostEvent parses a <bspostevent> document of <field name="...">
// elements into its fields, and checks the required ones are there.
func ParsePostEvent(doc []byte) (map[string]string, error) {
	var ev struct {
		XMLName xml.Name `xml:"bspostevent"`
		Fields  []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:",chardata"`
		} `xml:"field"`
	}
	if err := xml.Unmarshal(doc, &ev); err != nil {
		return nil, badRequest("bspostevent: %v", err)
	}
	fields := map[string]string{}
	for _, f := range ev.Fields {
		fields[f.Name] = f.Value
	}
	for _, k := range RequiredFields {
		if _, ok := fields[k]; !ok {
			return nil, badRequest("Missing field: %s", k)
		}
	}
	return fields, nil
}
