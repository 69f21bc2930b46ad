package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func sendCommand() *command {
	c := &command{
		name:    "send",
		summary: "publish Vumi JSON messages (one per line, or one object) onto a topic as Avro",
		usage:   "-topic TOPIC [-key KEY] [-m JSON | FILE | -]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var conn connFlags
		conn.register(fs)
		topic := fs.String("topic", "", "topic to publish to, e.g. telnet.inbound (required)")
		key := fs.String("key", "", "record key (default: from_addr for inbound, to_addr for outbound, user_message_id for events)")
		inline := fs.String("m", "", "the message as JSON on the command line")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *topic == "" {
			return usagef("-topic is required")
		}
		var src io.Reader
		name := "-m"
		switch {
		case *inline != "" && fs.NArg() > 0:
			return usagef("give either -m or a file, not both")
		case *inline != "":
			src = bytes.NewBufferString(*inline)
		case fs.NArg() == 0 || fs.Arg(0) == "-":
			src, name = e.stdin, "stdin"
		case fs.NArg() == 1:
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return err
			}
			defer f.Close()
			src, name = f, fs.Arg(0)
		default:
			return usagef("one input file at most, got %v", fs.Args())
		}
		msgs, err := readMessages(src, name)
		if err != nil {
			return err
		}
		cl, err := conn.client(kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			return err
		}
		defer cl.Close()
		// Check every message before sending any: a bad line sends nothing.
		type prepared struct {
			raw    rawMessage
			rec    *kgo.Record
			parsed any
			id     string
		}
		var batch []prepared
		for _, raw := range msgs {
			rec, parsed, id, err := parseForTopic(*topic, raw.body)
			if err != nil {
				return fmt.Errorf("%s:%d: %w (nothing was sent)", name, raw.line, err)
			}
			batch = append(batch, prepared{raw, rec, parsed, id})
		}
		if err := topicExists(ctx, cl, *topic); err != nil {
			return err
		}
		codecs := schemas.NewCodecs(conn.registryClient())
		for i, p := range batch {
			rec, raw, id := p.rec, p.raw, p.id
			if err := encodeRecord(ctx, codecs, rec, p.parsed); err != nil {
				return fmt.Errorf("%s:%d: %w", name, raw.line, err)
			}
			if *key != "" {
				rec.Key = []byte(*key)
			}
			if err := kafka.ProduceSync(ctx, cl, rec); err != nil {
				return fmt.Errorf("%s:%d: produce to %s: %w", name, raw.line, *topic, err)
			}
			r := rec
			fmt.Fprintf(e.stdout, "sent %s to %s partition %d offset %d (%d of %d)\n", id, r.Topic, r.Partition, r.Offset, i+1, len(msgs))
		}
		return nil
	}
	return c
}

type rawMessage struct {
	line int
	body []byte
}

// readMessages reads one JSON object, or JSON objects one per line.
func readMessages(r io.Reader, name string) ([]rawMessage, error) {
	all, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	trimmed := bytes.TrimSpace(all)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: no message to send", name)
	}
	// A single (possibly multi-line) JSON object.
	if _, err := schemas.MessageType(trimmed); err == nil {
		return []rawMessage{{line: 1, body: trimmed}}, nil
	}
	var out []rawMessage
	sc := bufio.NewScanner(bytes.NewReader(all))
	sc.Buffer(make([]byte, 0, 64*1024), 8<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		out = append(out, rawMessage{line: n, body: append([]byte(nil), line...)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// parseForTopic parses a Vumi JSON message of the kind its message_type
// (or else the topic) says: a record with the topic's default key, and the
// parsed message that encodeRecord later encodes as its value.
func parseForTopic(topic string, body []byte) (*kgo.Record, any, string, error) {
	mt, err := schemas.MessageType(body)
	if err != nil {
		return nil, nil, "", err
	}
	if mt == "" {
		switch {
		case topology.DirectionOf(topic) == topology.DirEvent:
			mt = schemas.TypeEvent
		case strings.HasSuffix(topic, topology.TopicStatus):
			mt = schemas.TypeStatus
		default:
			mt = schemas.TypeUserMessage
		}
	}
	switch mt {
	case schemas.TypeUserMessage:
		m, err := schemas.ParseUserMessage(body)
		if err != nil {
			return nil, nil, "", err
		}
		return &kgo.Record{Topic: topic, Key: topology.UserMessageKey(topic, m)}, m, m.MessageID, nil
	case schemas.TypeEvent:
		ev, err := schemas.ParseEvent(body)
		if err != nil {
			return nil, nil, "", err
		}
		return &kgo.Record{Topic: topic, Key: topology.EventKey(ev)}, ev, ev.EventID, nil
	case schemas.TypeStatus:
		st, err := schemas.ParseStatus(body)
		if err != nil {
			return nil, nil, "", err
		}
		return &kgo.Record{Topic: topic, Key: topology.StatusKey(st)}, st, st.Component, nil
	}
	return nil, nil, "", fmt.Errorf("field message_type: cannot send %q messages (want user_message, event or status_event)", mt)
}

// encodeRecord registers the topic's schema and encodes the parsed message
// as the record's value.
func encodeRecord(ctx context.Context, codecs *schemas.Codecs, rec *kgo.Record, parsed any) error {
	var err error
	switch m := parsed.(type) {
	case *schemas.UserMessage:
		rec.Value, err = encodeWith(ctx, codecs.UserMessage, rec.Topic, m)
	case *schemas.Event:
		rec.Value, err = encodeWith(ctx, codecs.Event, rec.Topic, m)
	case *schemas.Status:
		rec.Value, err = encodeWith(ctx, codecs.Status, rec.Topic, m)
	default:
		err = fmt.Errorf("internal: no message to encode")
	}
	return err
}

// topicExists fails clearly when the topic is missing, before anything
// is registered or sent.
func topicExists(ctx context.Context, cl *kgo.Client, topic string) error {
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	if td, ok := tds[topic]; !ok || td.Err != nil {
		return fmt.Errorf("topic %s does not exist (create it with 'vumi topics create %s')", topic, topic)
	}
	return nil
}

func encodeWith[T any](ctx context.Context, c *schemas.Codec[T], topic string, v *T) ([]byte, error) {
	if err := c.Register(ctx, topic); err != nil {
		return nil, err
	}
	return c.Encode(v)
}
