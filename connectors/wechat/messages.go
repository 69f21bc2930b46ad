package wechat

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// ErrParse is wrapped by every error about a request body WeChat sent.
var ErrParse = errors.New("invalid WeChat message")

// Incoming is a message or event WeChat posts (the fields the transport
// uses).
type Incoming struct {
	MsgType      string
	ToUserName   string
	FromUserName string
	CreateTime   string
	Content      string
	MsgID        string
	Event        string
	EventKey     string
}

var mandatory = map[string][]string{
	"text":  {"ToUserName", "FromUserName", "CreateTime", "Content"},
	"event": {"ToUserName", "FromUserName", "CreateTime", "Event"},
}

// ParseIncoming is Vumi's WeChatXMLParser: an <xml> document with one
// MsgType (text or event) and its fields as child elements, texts trimmed.
func ParseIncoming(body []byte) (*Incoming, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") {
			return r, nil
		}
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	fields := map[string][]string{}
	depth := 0
	var cur string
	var text strings.Builder
	sawRoot := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrParse, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				if sawRoot {
					return nil, fmt.Errorf("%w: more than one root element", ErrParse)
				}
				sawRoot = true
			}
			if depth == 2 {
				cur = t.Name.Local
				text.Reset()
			}
		case xml.CharData:
			if depth == 2 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 2 {
				fields[cur] = append(fields[cur], strings.TrimSpace(text.String()))
			}
			depth--
		}
	}
	if !sawRoot {
		return nil, fmt.Errorf("%w: no XML document", ErrParse)
	}
	types := fields["MsgType"]
	switch {
	case len(types) == 0:
		return nil, fmt.Errorf("%w: No MsgType found.", ErrParse)
	case len(types) > 1:
		return nil, fmt.Errorf("%w: More than 1 MsgType found.", ErrParse)
	}
	typ := types[0]
	need, ok := mandatory[typ]
	if !ok {
		return nil, fmt.Errorf("%w: Unsupported MsgType: %s", ErrParse, typ)
	}
	one := func(name string) (string, error) {
		vs := fields[name]
		if len(vs) != 1 {
			return "", fmt.Errorf("%w: %s must appear once, found %d", ErrParse, name, len(vs))
		}
		return vs[0], nil
	}
	in := &Incoming{MsgType: typ}
	for _, name := range need {
		v, err := one(name)
		if err != nil {
			return nil, err
		}
		switch name {
		case "ToUserName":
			in.ToUserName = v
		case "FromUserName":
			in.FromUserName = v
		case "CreateTime":
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("%w: CreateTime %q is not a number", ErrParse, v)
			}
			in.CreateTime = v
		case "Content":
			in.Content = v
		case "Event":
			in.Event = v
		}
	}
	if len(fields["MsgId"]) > 0 {
		in.MsgID = fields["MsgId"][0]
	}
	if len(fields["EventKey"]) > 0 {
		in.EventKey = fields["EventKey"][0]
	}
	return in, nil
}

// Outgoing is a text or news message for a user.
type Outgoing struct {
	ToUserName, FromUserName, CreateTime string
	Content                              string // text
	News                                 []NewsItem
}

// NewsItem is one article of a news message.
type NewsItem struct {
	Title       string `json:"title"`
	URL         string `json:"url"`
	Description string `json:"description"`
}

// urlish is Vumi's NewsMessage.URLISH: content with something URL-ish in
// it becomes a news message.
var urlish = regexp.MustCompile(`^(?P<before>.*)(?P<url>http[s]?://(?:[a-zA-Z]|[0-9]|[$-_@.&+]|[!*\(\),]|(?:%[0-9a-fA-F][0-9a-fA-F]))+)(?P<after>.*?)`)

// BuildOutgoing is Vumi's infer_message_type: a news message when the
// content has a URL (title: the text before it, url: it, description: the
// whole content), a text message otherwise.
func BuildOutgoing(to, from, createTime string, content *string) *Outgoing {
	o := &Outgoing{ToUserName: to, FromUserName: from, CreateTime: createTime}
	if content != nil {
		if m := urlish.FindStringSubmatch(*content); m != nil {
			o.News = []NewsItem{{Title: m[1], URL: m[2], Description: *content}}
			return o
		}
		o.Content = *content
	}
	return o
}

func appendEl(b *bytes.Buffer, tag, value string) {
	b.WriteString("<" + tag + ">")
	for _, r := range value {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("</" + tag + ">")
}

// XML is the message as a callback reply.
func (o *Outgoing) XML() []byte {
	var b bytes.Buffer
	b.WriteString("<xml>")
	appendEl(&b, "ToUserName", o.ToUserName)
	appendEl(&b, "FromUserName", o.FromUserName)
	appendEl(&b, "CreateTime", o.CreateTime)
	if o.News == nil {
		appendEl(&b, "MsgType", "text")
		appendEl(&b, "Content", o.Content)
	} else {
		appendEl(&b, "MsgType", "news")
		appendEl(&b, "ArticleCount", strconv.Itoa(len(o.News)))
		b.WriteString("<Articles>")
		for _, it := range o.News {
			b.WriteString("<item>")
			appendEl(&b, "Title", it.Title)
			appendEl(&b, "Description", it.Description)
			appendEl(&b, "Url", it.URL)
			b.WriteString("</item>")
		}
		b.WriteString("</Articles>")
	}
	b.WriteString("</xml>")
	return b.Bytes()
}

// JSON is the message for the customer service (push) API.
func (o *Outgoing) JSON() []byte {
	var v map[string]any
	if o.News == nil {
		v = map[string]any{"touser": o.ToUserName, "msgtype": "text", "text": map[string]any{"content": o.Content}}
	} else {
		v = map[string]any{"touser": o.ToUserName, "msgtype": "news", "news": map[string]any{"articles": o.News}}
	}
	b, _ := json.Marshal(v)
	return b
}
