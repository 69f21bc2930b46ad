package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

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
		codecs := schemas.NewCodecs(conn.registryClient())
		for i, raw := range msgs {
			rec, id, err := encodeForTopic(ctx, codecs, *topic, raw.body)
			if err != nil {
				return fmt.Errorf("%s:%d: %w", name, raw.line, err)
			}
			if *key != "" {
				rec.Key = []byte(*key)
			}
			res := cl.ProduceSync(ctx, rec)
			if err := res.FirstErr(); err != nil {
				return fmt.Errorf("%s:%d: produce to %s: %w", name, raw.line, *topic, err)
			}
			r := res[0].Record
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

// encodeForTopic parses a Vumi JSON message of the kind its message_type
// (or else the topic) says, and encodes it with the topic's default key.
func encodeForTopic(ctx context.Context, codecs *schemas.Codecs, topic string, body []byte) (*kgo.Record, string, error) {
	mt, err := schemas.MessageType(body)
	if err != nil {
		return nil, "", err
	}
	if mt == "" {
		switch {
		case topology.DirectionOf(topic) == topology.DirEvent:
			mt = schemas.TypeEvent
		case len(topic) >= len(topology.TopicStatus) && topic[len(topic)-len(topology.TopicStatus):] == topology.TopicStatus:
			mt = schemas.TypeStatus
		default:
			mt = schemas.TypeUserMessage
		}
	}
	rec := &kgo.Record{Topic: topic}
	switch mt {
	case schemas.TypeUserMessage:
		m, err := schemas.ParseUserMessage(body)
		if err != nil {
			return nil, "", err
		}
		if rec.Value, err = encodeWith(ctx, codecs.UserMessage, topic, m); err != nil {
			return nil, "", err
		}
		rec.Key = topology.UserMessageKey(topic, m)
		return rec, m.MessageID, nil
	case schemas.TypeEvent:
		ev, err := schemas.ParseEvent(body)
		if err != nil {
			return nil, "", err
		}
		if rec.Value, err = encodeWith(ctx, codecs.Event, topic, ev); err != nil {
			return nil, "", err
		}
		rec.Key = topology.EventKey(ev)
		return rec, ev.EventID, nil
	case schemas.TypeStatus:
		st, err := schemas.ParseStatus(body)
		if err != nil {
			return nil, "", err
		}
		if rec.Value, err = encodeWith(ctx, codecs.Status, topic, st); err != nil {
			return nil, "", err
		}
		rec.Key = topology.StatusKey(st)
		return rec, st.Component, nil
	}
	return nil, "", fmt.Errorf("field message_type: cannot send %q messages (want user_message, event or status_event)", mt)
}

func encodeWith[T any](ctx context.Context, c *schemas.Codec[T], topic string, v *T) ([]byte, error) {
	if err := c.Register(ctx, topic); err != nil {
		return nil, err
	}
	return c.Encode(v)
}
