package parlayx

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespaces of the ParlayX 2.x SMS web services.
const (
	NSSoapEnv             = "http://schemas.xmlsoap.org/soap/envelope/"
	NSCommon              = "http://www.csapi.org/schema/parlayx/common/v2_1"
	NSSend                = "http://www.csapi.org/schema/parlayx/sms/send/v2_2/local"
	NSNotificationManager = "http://www.csapi.org/schema/parlayx/sms/notification_manager/v2_3/local"
	NSNotification        = "http://www.csapi.org/schema/parlayx/sms/notification/v2_2/local"
	NSHead                = "http://www.huawei.com.cn/schema/common/v2_1"
)

// Element is a parsed XML element: the small tree the SOAP code walks.
type Element struct {
	Name     xml.Name
	Children []*Element
	Text     string
}

// maxDepth bounds the nesting of documents the parser accepts.
const maxDepth = 64

// ErrXML wraps every reason a document does not parse.
var ErrXML = errors.New("invalid XML")

// ParseXML parses a document into its root element.
func ParseXML(b []byte) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = charsetReader
	var stack []*Element
	var root *Element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrXML, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("%w: more than one root element", ErrXML)
			}
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: nested deeper than %d elements", ErrXML, maxDepth)
			}
			e := &Element{Name: t.Name}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, e)
			} else {
				root = e
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text outside the root element", ErrXML)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrXML)
	}
	return root, nil
}

// charsetReader reads the encodings besides UTF-8 that SOAP peers
// declare: ISO-8859-1 (Latin-1), whose bytes are the code points.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return strings.NewReader(string(r)), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

// Child returns the first child named (space, local); space "" matches
// only unqualified elements.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name.Space == space && c.Name.Local == local {
			return c
		}
	}
	return nil
}

// Find returns the first descendant named (space, local), depth first.
func (e *Element) Find(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name.Space == space && c.Name.Local == local {
			return c
		}
		if f := c.Find(space, local); f != nil {
			return f
		}
	}
	return nil
}

// ChildText is the text of a child (trimmed), and whether it is there.
func (e *Element) ChildText(space, local string) (string, bool) {
	c := e.Child(space, local)
	if c == nil {
		return "", false
	}
	return strings.TrimSpace(c.Text), true
}

// ---- building documents ----

// node is an element to write: a prefixed name and either text or
// children.
type node struct {
	name     string // "prefix:local" or "local"
	xmlns    [][2]string
	text     *string
	children []node
}

func el(name string, children ...node) node { return node{name: name, children: children} }

func txt(name, text string) node { return node{name: name, text: &text} }

func (n node) ns(prefix, uri string) node {
	n.xmlns = append(n.xmlns, [2]string{prefix, uri})
	return n
}

func (n node) write(b *bytes.Buffer) {
	b.WriteString("<" + n.name)
	for _, x := range n.xmlns {
		b.WriteString(" xmlns:" + x[0] + `="`)
		_ = xml.EscapeText(b, []byte(x[1]))
		b.WriteString(`"`)
	}
	if n.text == nil && len(n.children) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	if n.text != nil {
		_ = xml.EscapeText(b, []byte(*n.text))
	}
	for _, c := range n.children {
		c.write(b)
	}
	b.WriteString("</" + n.name + ">")
}

// envelope wraps a body (and an optional header) in a SOAP envelope.
func envelope(body node, header *node) []byte {
	env := el("soapenv:Envelope").ns("soapenv", NSSoapEnv)
	if header != nil {
		env.children = append(env.children, el("soapenv:Header", *header))
	}
	env.children = append(env.children, el("soapenv:Body", body))
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	env.write(&b)
	return b.Bytes()
}

// faultEnvelope is a SOAP fault response.
func faultEnvelope(code, msg string) []byte {
	return envelope(el("soapenv:Fault", txt("faultcode", code), txt("faultstring", msg)), nil)
}

// Unwrap returns the Body and Header (nil when absent) of a SOAP envelope.
func Unwrap(root *Element) (body, header *Element, err error) {
	if root.Name.Space != NSSoapEnv || root.Name.Local != "Envelope" {
		return nil, nil, &Fault{Code: "soapenv:Client", String: "Malformed SOAP request"}
	}
	body = root.Child(NSSoapEnv, "Body")
	if body == nil {
		return nil, nil, &Fault{Code: "soapenv:Client", String: "Malformed SOAP request"}
	}
	return body, root.Child(NSSoapEnv, "Header"), nil
}

// Fault is a SOAP fault. Detail holds the ParlayX exception detail, when
// the fault carried a ServiceException or PolicyException.
type Fault struct {
	Code   string
	String string
	Actor  string
	Detail *ExceptionDetail
}

func (f *Fault) Error() string { return f.String }

// ExceptionDetail is a ParlayX ServiceExceptionDetail or
// PolicyExceptionDetail.
type ExceptionDetail struct {
	// Kind is "ServiceException" or "PolicyException".
	Kind      string
	MessageID string
	Text      string
	Variables []string
}

// Server reports a server-class fault (faultcode ending in "Server"),
// which ParlayX clients may retry.
func (f *Fault) Server() bool { return strings.HasSuffix(f.Code, "Server") }

// ParseFault reads the SOAP fault in a Body; nil when there is none.
func ParseFault(body *Element) *Fault {
	fe := body.Child(NSSoapEnv, "Fault")
	if fe == nil {
		return nil
	}
	f := &Fault{}
	f.Code, _ = fe.ChildText("", "faultcode")
	f.String, _ = fe.ChildText("", "faultstring")
	f.Actor, _ = fe.ChildText("", "faultactor")
	if detail := fe.Child("", "detail"); detail != nil {
		for _, c := range detail.Children {
			if c.Name.Space != NSCommon || (c.Name.Local != "ServiceExceptionDetail" && c.Name.Local != "PolicyExceptionDetail") {
				continue
			}
			d := &ExceptionDetail{Kind: strings.TrimSuffix(c.Name.Local, "Detail")}
			d.MessageID, _ = c.ChildText("", "messageId")
			d.Text, _ = c.ChildText("", "text")
			for _, v := range c.Children {
				if v.Name.Space == "" && v.Name.Local == "variables" {
					d.Variables = append(d.Variables, strings.TrimSpace(v.Text))
				}
			}
			f.Detail = d
			break
		}
	}
	return f
}
