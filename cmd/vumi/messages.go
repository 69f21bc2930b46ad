package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// messagesCommand queries and manages a message_store worker over its
// HTTP API (docs/message-store.md).
func messagesCommand() *command {
	c := &command{
		name:    "messages",
		summary: "query the message store: batches, their messages, events and status counts; tag pools",
		usage: "[-url URL] ACTION [ARGS]\n\nactions:\n" +
			"  batches                         list batches\n" +
			"  create-batch [POOL:TAG ...]     create a batch for tags\n" +
			"  batch ID                        a batch with its status\n" +
			"  status ID                       a batch's status counts\n" +
			"  done ID                         close a batch (its tags stop matching)\n" +
			"  inbound|outbound|events ID      a batch's messages or events, JSON lines (-start, -end, -csv)\n" +
			"  message ID                      a message with its delivery status and events\n" +
			"  event ID                        an event\n" +
			"  pools | pool NAME               tag pools\n" +
			"  declare POOL TAG...             declare tags in a pool\n" +
			"  [-owner O] acquire POOL [TAG]   acquire a free (or a given) tag\n" +
			"  release POOL TAG                release a tag",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		base := fs.String("url", envOr("VUMI_MESSAGE_STORE_URL", "http://127.0.0.1:8090"), "message store API ($VUMI_MESSAGE_STORE_URL)")
		user := fs.String("username", envOr("VUMI_MESSAGE_STORE_USERNAME", ""), "basic-auth user ($VUMI_MESSAGE_STORE_USERNAME)")
		pass := fs.String("password", envOr("VUMI_MESSAGE_STORE_PASSWORD", ""), "basic-auth password ($VUMI_MESSAGE_STORE_PASSWORD)")
		start := fs.String("start", "", "inbound/outbound/events: only from this ISO 8601 time")
		end := fs.String("end", "", "inbound/outbound/events: only before this ISO 8601 time")
		asCSV := fs.Bool("csv", false, "inbound/outbound/events: CSV instead of JSON lines")
		owner := fs.String("owner", "", "acquire: the tag's owner")
		if err := parse(fs, args); err != nil {
			return err
		}
		a := fs.Args()
		if len(a) == 0 {
			return usagef("an action is required")
		}
		cl := storeClient{base: strings.TrimRight(*base, "/"), user: *user, pass: *pass, out: e.stdout}
		need := func(n int) error {
			if len(a)-1 < n {
				return usagef("%s needs %d argument(s)", a[0], n)
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		switch a[0] {
		case "batches":
			return cl.call(ctx, "GET", "/batches", nil)
		case "create-batch":
			tags := [][2]string{}
			for _, t := range a[1:] {
				pool, name, ok := strings.Cut(t, ":")
				if !ok || pool == "" || name == "" {
					return usagef("tag %q is not POOL:TAG", t)
				}
				tags = append(tags, [2]string{pool, name})
			}
			return cl.call(ctx, "POST", "/batches", map[string]any{"tags": tags})
		case "batch", "status", "done", "inbound", "outbound", "events", "message", "event", "pool":
			if err := need(1); err != nil {
				return err
			}
			id := url.PathEscape(a[1])
			switch a[0] {
			case "batch":
				return cl.call(ctx, "GET", "/batches/"+id, nil)
			case "status":
				return cl.call(ctx, "GET", "/batches/"+id+"/status", nil)
			case "done":
				return cl.call(ctx, "POST", "/batches/"+id+"/done", nil)
			case "message":
				return cl.call(ctx, "GET", "/messages/"+id, nil)
			case "event":
				return cl.call(ctx, "GET", "/events/"+id, nil)
			case "pool":
				return cl.call(ctx, "GET", "/tagpools/"+id, nil)
			}
			ext := ".json"
			if *asCSV {
				ext = ".csv"
			}
			q := url.Values{}
			if *start != "" {
				q.Set("start", *start)
			}
			if *end != "" {
				q.Set("end", *end)
			}
			path := "/batches/" + id + "/" + a[0] + ext
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			return cl.call(ctx, "GET", path, nil)
		case "pools":
			return cl.call(ctx, "GET", "/tagpools", nil)
		case "declare":
			if err := need(2); err != nil {
				return err
			}
			return cl.call(ctx, "POST", "/tagpools/"+url.PathEscape(a[1])+"/declare", map[string]any{"tags": a[2:]})
		case "acquire":
			if err := need(1); err != nil {
				return err
			}
			body := map[string]any{}
			if len(a) > 2 {
				body["tag"] = a[2]
			}
			if *owner != "" {
				body["owner"] = *owner
			}
			return cl.call(ctx, "POST", "/tagpools/"+url.PathEscape(a[1])+"/acquire", body)
		case "release":
			if err := need(2); err != nil {
				return err
			}
			return cl.call(ctx, "POST", "/tagpools/"+url.PathEscape(a[1])+"/release", map[string]any{"tag": a[2]})
		}
		return usagef("unknown action %q", a[0])
	}
	return c
}

type storeClient struct {
	base, user, pass string
	out              io.Writer
}

// call sends a request and copies the response body to out; HTTP errors
// become errors carrying the API's message.
func (s storeClient) call(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return usagef("-url: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.user != "" {
		req.SetBasicAuth(s.user, s.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("message store at %s: %w", s.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (HTTP %d)", method, path, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(s.out, resp.Body)
	return err
}
