package vumibridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/tcpclient"
	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/schemas"
)

// stream is one of the two streamed resources.
type stream struct {
	path    string // messages.json or events.json
	name    string // messages or events (status component "<name>-stream")
	handler func(ctx context.Context, raw []byte) error
}

// maxLine bounds one streamed JSON object; a longer line is discarded.
const maxLine = 1 << 20

// runStream keeps a streaming GET open, reconnecting as Vumi's
// GoConversationClientTransport did: the delay starts at initial_delay,
// is multiplied by factor (capped at max_reconnect_delay) and varied by
// jitter before each attempt, and is reset once connected; after
// max_retries consecutive failures it gives up.
func (tr *Transport) runStream(ctx context.Context, s stream) {
	component := s.name + "-stream"
	delay := tr.cfg.InitialDelay
	retries := 0
	for ctx.Err() == nil {
		connected, err := tr.streamOnce(ctx, s, component)
		if ctx.Err() != nil {
			return
		}
		if connected {
			delay, retries = tr.cfg.InitialDelay, 0
		}
		tr.log.Warn("Vumi Go stream ended", "stream", s.path, "error", err)
		tr.updateStatus(ctx, component, schemas.StatusDown, "disconnected", fmt.Sprintf("Stream of %s from Vumi Go lost: %v", s.name, err))
		retries++
		if tr.cfg.MaxRetries != nil && retries > *tr.cfg.MaxRetries {
			tr.log.Error("abandoning reconnecting", "stream", s.path, "attempts", retries)
			tr.updateStatus(ctx, component, schemas.StatusDown, "reconnect_abandoned", fmt.Sprintf("Abandoned reconnecting after %d attempts", retries))
			return
		}
		delay = min(delay*tr.cfg.Factor, float64(tr.cfg.MaxReconnectDelay))
		if j := *tr.cfg.Jitter; j > 0 {
			delay = max(0, delay+rand.NormFloat64()*delay*j)
		}
		tr.log.Info("will retry", "stream", s.path, "in_seconds", delay)
		if !tcpclient.Sleep(ctx, time.Duration(delay*float64(time.Second))) {
			return
		}
	}
}

// streamOnce opens the stream and reads it until it ends; connected
// reports whether Vumi Go answered 200.
func (tr *Transport) streamOnce(ctx context.Context, s stream, component string) (connected bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tr.url(s.path), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", tr.auth)
	// No overall timeout: the response never ends while all is well.
	// The dial and the response headers are bounded.
	cl := &http.Client{Transport: streamTransport}
	resp, err := cl.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNoContent:
		return true, errors.New("no content (204)")
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return false, fmt.Errorf("unexpected status code %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	tr.log.Info("streaming from Vumi Go", "stream", s.path)
	tr.updateStatus(ctx, component, schemas.StatusOK, "connected", "Streaming "+s.name+" from Vumi Go")
	l := tcpclient.NewLanes(lanes, laneDepth, func(raw []byte) {
		if err := s.handler(ctx, raw); err != nil {
			tr.failed(ctx, raw, err)
		} else if s.name == "events" {
			tr.eventStatus(ctx, raw)
		}
	})
	defer l.Close()
	lr := lineReader{r: resp.Body}
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("closed by Vumi Go")
			}
			return true, err
		}
		if tooLong {
			tr.failed(ctx, nil, worker.Permanent(fmt.Errorf("line of more than %d bytes on %s discarded", maxLine, s.path)))
			continue
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue // keep-alive
		}
		if !l.Dispatch(ctx, laneKey(line), line) {
			return true, ctx.Err()
		}
	}
}

var streamTransport = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}

// laneKey keeps one user's messages (and one message's events) in order.
func laneKey(line []byte) string {
	var k struct {
		FromAddr      *string `json:"from_addr"`
		UserMessageID *string `json:"user_message_id"`
	}
	_ = json.Unmarshal(line, &k) // an unreadable line fails later, in its handler
	switch {
	case k.FromAddr != nil:
		return *k.FromAddr
	case k.UserMessageID != nil:
		return *k.UserMessageID
	}
	return ""
}

// lineReader reads newline-delimited lines, discarding over-long ones.
type lineReader struct {
	r   io.Reader
	buf []byte
	eof error
}

func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	discarding := false
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			line = append([]byte(nil), l.buf[:i]...)
			l.buf = l.buf[i+1:]
			if discarding {
				return nil, true, nil
			}
			return line, false, nil
		}
		if len(l.buf) > maxLine {
			l.buf = l.buf[:0]
			discarding = true
		}
		if l.eof != nil {
			if len(l.buf) > 0 && !discarding {
				line, l.buf = l.buf, nil
				return line, false, nil
			}
			return nil, false, l.eof
		}
		chunk := make([]byte, 32*1024)
		n, err := l.r.Read(chunk)
		l.buf = append(l.buf, chunk[:n]...)
		if err != nil {
			l.eof = err
		}
	}
}
