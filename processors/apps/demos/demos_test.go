package demos_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/processors/apps/apptest"
	"github.com/vumi-kafka/vumi/processors/apps/demos"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

func TestCalcStep(t *testing.T) {
	two, first := 1, int64(7)
	cases := []struct {
		name    string
		s       demos.CalcSession
		input   string
		reply   string
		cont    bool
		cleared bool
	}{
		{"choose subtract", demos.CalcSession{}, "2", "What is the first number?", true, false},
		{"bad choice shows the menu", demos.CalcSession{}, "9", demos.CalcMenu(), true, false},
		{"not a number", demos.CalcSession{}, "two", "Sorry invalid input!", false, true},
		{"first number", demos.CalcSession{Action: &two}, "7", "What is the second number?", true, false},
		{"result", demos.CalcSession{Action: &two, First: &first}, "10", "The result is: -3.", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply, cont, next := demos.CalcStep(tc.s, tc.input)
			if reply != tc.reply || cont != tc.cont || (next == nil) != tc.cleared {
				t.Errorf("got %q %v cleared=%v", reply, cont, next == nil)
			}
		})
	}
}

func TestHangman(t *testing.T) {
	cases := []struct {
		guesses, input, msg, board string
		exit                       int
	}{
		{"", "a", "Word contains at least one 'a'! :D", "Word: _a__", 0},
		{"", "z", "Word contains no 'z'. :(", "Word: ____", 0},
		{"", "", "Some input required please.", "Word: ____", 0},
		{"", "ab", "Single characters only please.", "", 0},
		{"", "1", "Letters of the alphabet only please.", "", 0},
		{"a", "A", "You've already guessed 'a'.", "Letters guessed so far: a", 0},
		{"", "0", "Game ended.", "Adieu!", 1},
		{"bde", "l", "Flawless victory!", "Enter anything to start a new game", 0},
		{"bdexyzqw", "l", "Sub-par victory!", "", 0},
		{"bdel", "x", "", "", 2},
	}
	for _, tc := range cases {
		t.Run(tc.guesses+"+"+tc.input, func(t *testing.T) {
			h := &demos.Hangman{Word: "bade", Guesses: tc.guesses}
			if tc.input == "l" || tc.guesses == "bdel" {
				h.Word = "bled"
			}
			h.Event(tc.input)
			if tc.msg != "" && h.Msg != tc.msg {
				t.Errorf("msg %q, want %q", h.Msg, tc.msg)
			}
			if !strings.Contains(h.Board(), tc.board) {
				t.Errorf("board %q, want it to contain %q", h.Board(), tc.board)
			}
			if h.Exit != tc.exit {
				t.Errorf("exit %d, want %d", h.Exit, tc.exit)
			}
		})
	}
}

func TestStaticReply(t *testing.T) {
	now := time.Date(2024, 5, 6, 1, 2, 3, 0, time.UTC)
	if got := demos.StaticReply("Hello {user} at {now}.", "+2776", now); got != "Hello +2776 at 2024-05-06." {
		t.Errorf("got %q", got)
	}
}

func kinds() *topology.Registry { return topology.NewRegistry().Add(demos.Kinds()...) }

func TestConfig(t *testing.T) {
	cases := []struct{ name, yaml, wantErr string }{
		{"calculator", "kind: vumi.demos.calculator.CalculatorApp", ""},
		{"static", "kind: static_reply\n    reply_text: hi", ""},
		{"hangman words", "kind: hangman\n    words: [abc]", ""},
		{"hangman nothing", "kind: hangman", "key random_word_url:"},
		{"hangman both", "kind: hangman\n    words: [abc]\n    random_word_url: http://x/", "key random_word_url:"},
		{"hangman bad word", "kind: hangman\n    words: [Abc]", "key words:"},
		{"unknown key", "kind: calculator\n    reply_text: x", "reply_text"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topology.Load("t.yaml", []byte("workers:\n  - name: d\n    transport_name: sms\n    "+tc.yaml+"\n"), kinds(), nil)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestDemosEndToEnd plays the calculator and hangman through Kafka.
func TestDemosEndToEnd(t *testing.T) {
	words := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "\ufeffhi\n") }))
	defer words.Close()
	c := apptest.Start(t)
	c.Run(t, kinds, fmt.Sprintf(`  - name: calc
    kind: calculator
    transport_name: sms
  - name: hang
    kind: hangman
    transport_name: other
    random_word_url: %s
`, words.URL))
	p := c.Producer(t)
	out := c.Consumer(t, "sms.outbound")
	say := func(content string, session schemas.SessionEvent) *schemas.UserMessage {
		m := apptest.Inbound("27761234567", content)
		if content == "" {
			m.Content = nil
		}
		m.SessionEvent = &session
		p.Inbound(t, m)
		got := apptest.Messages(c.Collect(t, out, 20*time.Second, func(got []any) bool { return len(got) >= 1 }))
		return got[0]
	}
	steps := []struct {
		in      string
		session schemas.SessionEvent
		want    string
		close   bool
	}{
		{"", schemas.SessionNew, demos.CalcMenu(), false},
		{"3", schemas.SessionResume, "What is the first number?", false},
		{"6", schemas.SessionResume, "What is the second number?", false},
		{"7", schemas.SessionResume, "The result is: 42.", true},
	}
	for _, s := range steps {
		r := say(s.in, s.session)
		if r.Text() != s.want || (r.Session() == schemas.SessionClose) != s.close {
			t.Errorf("after %q: %q (session %s), want %q", s.in, r.Text(), r.Session(), s.want)
		}
	}
	// hangman, on the other transport
	hangOut := c.Consumer(t, "other.outbound")
	play := func(content string) string {
		m := apptest.Inbound("27761234567", content)
		m.TransportName = schemas.String("other")
		p.InboundTo(t, "other.inbound", m)
		got := apptest.Messages(c.Collect(t, hangOut, 20*time.Second, func(got []any) bool { return len(got) >= 1 }))
		return got[0].Text()
	}
	for _, step := range []struct{ in, want string }{
		{"start", "New game!\nWord: __"},
		{"h", "Word: h_"},
		{"i", "Flawless victory!\nWord: hi"},
		{"again", "Flawless victory!"}, // as in Vumi, a new game takes one character
		{"x", "New game!"},
		{"0", "Adieu!"},
	} {
		if got := play(step.in); !strings.Contains(got, step.want) {
			t.Errorf("after %q: %q, want %q", step.in, got, step.want)
		}
	}
}

// TestTwoPlayerGames plays tic-tac-toe and rock-paper-scissors between two
// addresses through Kafka.
func TestTwoPlayerGames(t *testing.T) {
	c := apptest.Start(t)
	c.Run(t, kinds, `  - name: ttt
    kind: vumi.demos.tictactoe.TicTacToeWorker
    transport_name: sms
  - name: rps
    kind: rps
    transport_name: other
`)
	p := c.Producer(t)
	type move struct {
		topic, from, content string
		session              schemas.SessionEvent
		want                 map[string]string // address -> reply content (prefix)
	}
	x, o := "27000000001", "27000000002"
	board := "+---+---+---+\n| X |   |   |\n+---+---+---+"
	games := []struct {
		name, topic, out string
		moves            []move
	}{
		{"tictactoe", "sms.inbound", "sms.outbound", []move{
			{from: x, session: schemas.SessionNew},
			{from: o, session: schemas.SessionNew, want: map[string]string{x: "+---+---+---+\n|   |"}},
			{from: x, content: "1", want: map[string]string{o: board}},
			{from: o, content: "4", want: map[string]string{x: board}},
			{from: x, content: "2", want: map[string]string{o: "+---+---+---+\n| X | X |"}},
			{from: o, content: "5", want: map[string]string{x: "+---+---+---+\n| X | X |"}},
			{from: x, content: "3", want: map[string]string{x: "You won!", o: "You lost!"}},
		}},
		{"rps", "other.inbound", "other.outbound", []move{
			{from: x, session: schemas.SessionNew},
			{from: o, session: schemas.SessionNew, want: map[string]string{x: "You: 0, opponent: 0", o: "You: 0, opponent: 0"}},
			{from: x, content: "1"},
			{from: o, content: "3", want: map[string]string{x: "You won!\nYou: 1, opponent: 0", o: "You lost!\nYou: 0, opponent: 1"}},
			{from: x, content: "2"},
			{from: o, content: "2", want: map[string]string{x: "Draw.\nYou: 1, opponent: 0", o: "Draw."}},
			{from: o, content: "1"},
			{from: x, content: "x", want: map[string]string{x: "You disconnected.", o: "Your opponent disconnected."}},
		}},
	}
	for _, g := range games {
		t.Run(g.name, func(t *testing.T) {
			out := c.Consumer(t, g.out)
			for i, mv := range g.moves {
				m := apptest.Inbound(mv.from, mv.content)
				session := mv.session
				if session == "" {
					session = schemas.SessionResume
				}
				m.SessionEvent = &session
				p.InboundTo(t, g.topic, m)
				if len(mv.want) == 0 {
					// Messages of different users are ordered only by
					// when they reach the lobby: let this one get there.
					time.Sleep(500 * time.Millisecond)
					continue
				}
				got := apptest.Messages(c.Collect(t, out, 20*time.Second, func(got []any) bool { return len(got) >= len(mv.want) }))
				for _, r := range got {
					if want, ok := mv.want[r.To()]; !ok || !strings.HasPrefix(r.Text(), want) {
						t.Errorf("move %d: to %s (in reply to %v) %q, want %q", i, r.To(), r.InReplyTo, r.Text(), want)
					}
				}
			}
		})
	}
}
