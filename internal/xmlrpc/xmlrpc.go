// Package xmlrpc reads and writes the little of XML-RPC that Vumi's
// XML-RPC USSD transports (TrueAfrican, MTN Rwanda) use: method calls
// whose one parameter is a struct of scalars, responses holding a struct
// of strings, and faults.
package xmlrpc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// An XML-RPC method call whose one parameter is a struct (TrueAfrican's
// USSD.INIT, USSD.CONT and USSD.END).
type methodCall struct {
	XMLName    xml.Name `xml:"methodCall"`
	MethodName string   `xml:"methodName"`
	Params     []struct {
		Value value `xml:"value"`
	} `xml:"params>param"`
}

type value struct {
	String  *string   `xml:"string"`
	Int     *string   `xml:"int"`
	I4      *string   `xml:"i4"`
	Boolean *string   `xml:"boolean"`
	Double  *string   `xml:"double"`
	Nil     *struct{} `xml:"nil"`
	Struct  *struct {
		Members []struct {
			Name  string `xml:"name"`
			Value value  `xml:"value"`
		} `xml:"member"`
	} `xml:"struct"`
	Text string `xml:",chardata"`
}

// scalar returns a scalar value as text (nil for <nil/>); ok is false for
// structs and arrays.
func (v value) scalar() (s *string, ok bool) {
	switch {
	case v.Struct != nil:
		return nil, false
	case v.Nil != nil:
		return nil, true
	case v.String != nil:
		return v.String, true
	case v.Int != nil:
		return v.Int, true
	case v.I4 != nil:
		return v.I4, true
	case v.Boolean != nil:
		return v.Boolean, true
	case v.Double != nil:
		return v.Double, true
	}
	t := v.Text
	return &t, true
}

// Fault codes (Twisted's).
const (
	FaultNotFound = 8001
	FaultFailure  = 8002
)

// errNotStructCall is returned for a call whose parameters are not one
// struct.
var errNotStructCall = errors.New("the call's one parameter must be a struct")

// ParseCall reads a method call with one struct parameter: its method
// name and the struct's scalar members (nil for <nil/>).
func ParseCall(r io.Reader) (string, map[string]*string, error) {
	var c methodCall
	dec := xml.NewDecoder(r)
	if err := dec.Decode(&c); err != nil {
		return "", nil, fmt.Errorf("invalid XML-RPC call: %w", err)
	}
	if len(c.Params) != 1 || c.Params[0].Value.Struct == nil {
		return c.MethodName, nil, errNotStructCall
	}
	members := map[string]*string{}
	for _, m := range c.Params[0].Value.Struct.Members {
		s, ok := m.Value.scalar()
		if !ok {
			return c.MethodName, nil, fmt.Errorf("member %q: not a scalar value", m.Name)
		}
		members[m.Name] = s
	}
	return c.MethodName, members, nil
}

// Response is an XML-RPC method response holding one struct of strings.
func Response(members map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n")
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString("<member>\n<name>")
		_ = xml.EscapeText(&b, []byte(k))
		b.WriteString("</name>\n<value><string>")
		_ = xml.EscapeText(&b, []byte(members[k]))
		b.WriteString("</string></value>\n</member>\n")
	}
	b.WriteString("</struct></value>\n</param>\n</params>\n</methodResponse>\n")
	return b.Bytes()
}

// Fault is an XML-RPC fault response.
func Fault(code int, msg string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n"+
		"<member>\n<name>faultCode</name>\n<value><int>%d</int></value>\n</member>\n"+
		"<member>\n<name>faultString</name>\n<value><string>", code)
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n")
	return b.Bytes()
}

// MissingMembers names the required members absent (or nil) in m.
func MissingMembers(m map[string]*string, required ...string) string {
	var missing []string
	for _, k := range required {
		if m[k] == nil {
			missing = append(missing, k)
		}
	}
	return strings.Join(missing, ", ")
}
