package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// loadClient is the pipeline benchmark's HTTP load generator: one
// keep-alive HTTP/1.1 connection, requests written from a reused buffer and
// responses read with just enough parsing to find the status, the body and
// its message_id — the way wrk or h2load drive a server, so that the load
// generator, whose CPU the benchmark counts with everything else in the
// process, costs a few microseconds per request instead of net/http's
// client (~40 µs per request with its goroutines and allocations).
type loadClient struct {
	addr, path, auth string

	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	req  []byte
	body []byte
}

func (c *loadClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

func (c *loadClient) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		return err
	}
	c.conn, c.r, c.w = conn, bufio.NewReaderSize(conn, 8<<10), bufio.NewWriterSize(conn, 4<<10)
	return nil
}

// post sends message i and returns the message id of the 201 answer. A
// broken connection is redialled once.
func (c *loadClient) post(i int) (string, error) {
	for attempt := 0; ; attempt++ {
		id, err := c.try(i)
		if err == nil {
			return id, nil
		}
		c.close()
		var he *httpStatusError
		if attempt > 0 || errors.As(err, &he) {
			return "", err
		}
	}
}

type httpStatusError struct {
	code int
	body []byte
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func (c *loadClient) try(i int) (string, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return "", err
		}
	}
	c.body = fmt.Appendf(c.body[:0], `{"to_addr": "+2776%07d", "content": "benchmark message %d"}`, i%10000, i)
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, c.path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nAuthorization: Basic "...)
	c.req = base64.StdEncoding.AppendEncode(c.req, []byte(c.auth))
	c.req = append(c.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(c.body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, c.body...)
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.w.Write(c.req); err != nil {
		return "", err
	}
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	// "HTTP/1.1 201 Created\r\n"
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) {
		return "", fmt.Errorf("bad status line %q", status)
	}
	code, err := strconv.Atoi(string(status[9:12]))
	if err != nil {
		return "", fmt.Errorf("bad status line %q", status)
	}
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return "", fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return "", errors.New("response without Content-Length")
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return "", err
	}
	if code != 201 {
		return "", &httpStatusError{code, body}
	}
	id := jsonStringField(body, "message_id")
	if id == "" {
		return "", fmt.Errorf("no message_id in %s", body)
	}
	return id, nil
}

// jsonStringField finds "key": "value" in a JSON object and returns value
// (ids hold no escapes).
func jsonStringField(body []byte, key string) string {
	i := bytes.Index(body, []byte(`"`+key+`"`))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key)+2:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	rest = rest[j+1:]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return ""
	}
	return string(rest[:k])
}
