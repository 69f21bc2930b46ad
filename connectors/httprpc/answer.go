package httprpc

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/vumi-kafka/vumi/schemas"
)

// NotAccepted is the text of the 503 answer to a request whose message
// could not be published.
const NotAccepted = "message not accepted, try again"

// NotAcceptedJSON is NotAccepted as a JSON answer,
// {"error": "message not accepted, try again"}.
func NotAcceptedJSON() []byte { return []byte(`{"error": "` + NotAccepted + `"}`) }

// PublishOrFail publishes m as the inbound message of request r, which
// waits for the application's reply (Publish). When publishing fails it
// logs why, answers r 503 with body and returns false.
func (s *Server) PublishOrFail(ctx context.Context, r *Request, m *schemas.UserMessage, body []byte) bool {
	return s.failed(r, s.Publish(ctx, r, m), body)
}

// PublishInboundOrFail publishes m, a message of request r that is
// answered at once (PublishInbound). When publishing fails it logs why,
// answers r 503 with body and returns false.
func (s *Server) PublishInboundOrFail(ctx context.Context, r *Request, m *schemas.UserMessage, body []byte) bool {
	return s.failed(r, s.PublishInbound(ctx, m), body)
}

func (s *Server) failed(r *Request, err error, body []byte) bool {
	if err == nil {
		return true
	}
	s.Log.Error("inbound message not published", "request_id", r.ID, "error", err)
	r.Finish(s, body, http.StatusServiceUnavailable)
	return false
}

// PublishAnswerID publishes m, the message of request r, with the request
// id as its message_id, and answers r {"message_id": <id>} (200), or
// {"error": "message not accepted, try again"} (503) when publishing
// fails: how the SMS aggregators that take an inbound message in one
// request acknowledge it.
func (s *Server) PublishAnswerID(ctx context.Context, r *Request, m *schemas.UserMessage) {
	m.MessageID = r.ID
	if !s.PublishInboundOrFail(ctx, r, m, NotAcceptedJSON()) {
		return
	}
	body, _ := json.Marshal(map[string]string{"message_id": r.ID})
	r.Finish(s, body, http.StatusOK)
}
