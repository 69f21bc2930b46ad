// Package demos is Vumi's demo applications (vumi/demos/) in Go, as
// examples for application authors: the calculator (a USSD-style menu with
// per-user session state), static reply (config-driven text) and hangman
// (per-user game state, a word fetched over HTTP). Each single-player demo keeps its state in
// the application's group table through app.Context's LoadState and
// SaveState. The two-player games, rock-paper-scissors and tic-tac-toe,
// re-key their players' messages to one lobby key (games.go). The echo, reverse and word count demos are in
// processors/apps/words. docs/demo-apps.md describes them.
package demos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// ---- calculator

// CalculatorConfig is the calculator's config: the application base only.
type CalculatorConfig struct {
	app.Config `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *CalculatorConfig) Validate() error { return c.ValidateBase() }

var calcActions = []struct {
	name string
	op   func(a, b int64) int64
}{
	{"Add", func(a, b int64) int64 { return a + b }},
	{"Subtract", func(a, b int64) int64 { return a - b }},
	{"Multiply", func(a, b int64) int64 { return a * b }},
}

// CalcSession is a calculator user's progress.
type CalcSession struct {
	Action *int   `json:"action,omitempty"`
	First  *int64 `json:"first_number,omitempty"`
}

// CalcMenu is the calculator's opening menu.
func CalcMenu() string {
	lines := []string{"What would you like to do?"}
	for i, a := range calcActions {
		lines = append(lines, fmt.Sprintf("%d. %s", i+1, a.name))
	}
	return strings.Join(lines, "\n")
}

// CalcStep advances a session with the user's input: the reply, whether
// the session continues, and the session to keep (nil: cleared).
func CalcStep(s CalcSession, input string) (reply string, cont bool, next *CalcSession) {
	n, err := strconv.ParseInt(strings.TrimSpace(input), 10, 64)
	if err != nil {
		return "Sorry invalid input!", false, nil
	}
	switch {
	case s.Action == nil:
		if n < 1 || n > int64(len(calcActions)) {
			return CalcMenu(), true, &CalcSession{}
		}
		i := int(n - 1)
		return "What is the first number?", true, &CalcSession{Action: &i}
	case s.First == nil:
		s.First = &n
		return "What is the second number?", true, &s
	default:
		return fmt.Sprintf("The result is: %d.", calcActions[*s.Action].op(*s.First, n)), false, nil
	}
}

type calculator struct{}

func (calculator) NewSession(c *app.Context, m *schemas.UserMessage) error {
	c.SetState(nil)
	return c.ReplyTo(m, CalcMenu(), true)
}

func (calculator) CloseSession(c *app.Context, _ *schemas.UserMessage) error {
	c.SetState(nil)
	return nil
}

func (calculator) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	var s CalcSession
	if _, err := c.LoadState(&s); err != nil {
		s = CalcSession{}
	}
	reply, cont, next := CalcStep(s, m.Text())
	if next == nil {
		c.SetState(nil)
	} else if err := c.SaveState(next); err != nil {
		return err
	}
	return c.ReplyTo(m, reply, cont)
}

// ---- static reply

// StaticReplyConfig is the static reply's config.
type StaticReplyConfig struct {
	app.Config `yaml:",inline"`
	// ReplyText is the reply; {user} is the sender's address and {now}
	// today's date (YYYY-MM-DD). Default "Hello {user} at {now}.".
	ReplyText string `yaml:"reply_text"`
}

// Validate implements topology.WorkerConfig.
func (c *StaticReplyConfig) Validate() error {
	if c.ReplyText == "" {
		c.ReplyText = "Hello {user} at {now}."
	}
	return c.ValidateBase()
}

// StaticReply formats the reply text.
func StaticReply(text, user string, now time.Time) string {
	return strings.NewReplacer("{user}", user, "{now}", now.Format(time.DateOnly)).Replace(text)
}

type staticReply struct{ text string }

func (s staticReply) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	return c.ReplyTo(m, StaticReply(s.text, m.From(), time.Now()), false)
}

// ---- hangman

// HangmanConfig is hangman's config.
type HangmanConfig struct {
	app.Config `yaml:",inline"`
	// WorkerName is accepted for Vumi compatibility (state is per worker
	// anyway).
	WorkerName string `yaml:"worker_name"`
	// RedisManager is accepted for Vumi compatibility and ignored: games
	// live in the group table.
	RedisManager map[string]any `yaml:"redis_manager"`
	// RandomWordURL answers a GET with a random word. One of
	// random_word_url and words is required.
	RandomWordURL string `yaml:"random_word_url"`
	// Words to pick from instead of random_word_url.
	Words []string `yaml:"words"`
}

// Validate implements topology.WorkerConfig.
func (c *HangmanConfig) Validate() error {
	var errs []error
	if err := c.ValidateBase(); err != nil {
		errs = append(errs, err)
	}
	if (c.RandomWordURL == "") == (len(c.Words) == 0) {
		errs = append(errs, errors.New("key random_word_url: set random_word_url or words (one of them)"))
	}
	for _, w := range c.Words {
		if w == "" || strings.IndexFunc(w, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
			errs = append(errs, fmt.Errorf("key words: %q is not a lower-case word of a-z", w))
		}
	}
	return errors.Join(errs...)
}

// Hangman is a game's state (as Vumi's HangmanGame.state()).
type Hangman struct {
	Word    string `json:"word"`
	Guesses string `json:"guesses"`
	Msg     string `json:"msg"`
	// Exit: 0 playing, 1 quit, 2 won and wants a new game.
	Exit int `json:"-"`
}

// Won reports whether every letter was guessed.
func (h *Hangman) Won() bool {
	for _, r := range h.Word {
		if !strings.ContainsRune(h.Guesses, r) {
			return false
		}
	}
	return true
}

// Event handles a user's input.
func (h *Hangman) Event(input string) {
	in := strings.ToLower(strings.TrimSpace(input))
	switch {
	case in == "":
		h.Msg = "Some input required please."
	case len([]rune(in)) > 1:
		h.Msg = "Single characters only please."
	case in == "0":
		h.Exit = 1
		h.Msg = "Game ended."
	case h.Won():
		h.Exit = 2
	case !unicode.IsLetter([]rune(in)[0]) || in[0] < 'a' || in[0] > 'z':
		h.Msg = "Letters of the alphabet only please."
	case strings.Contains(h.Guesses, in):
		h.Msg = fmt.Sprintf("You've already guessed '%s'.", in)
	default:
		g := []rune(h.Guesses + in)
		sort.Slice(g, func(i, j int) bool { return g[i] < g[j] })
		h.Guesses = string(g)
		if strings.Contains(h.Word, in) {
			h.Msg = fmt.Sprintf("Word contains at least one '%s'! :D", in)
		} else {
			h.Msg = fmt.Sprintf("Word contains no '%s'. :(", in)
		}
	}
	if h.Won() {
		h.Msg = h.victory()
	}
}

func (h *Hangman) victory() string {
	uniques := map[rune]bool{}
	for _, r := range h.Word {
		uniques[r] = true
	}
	n, g := float64(len(uniques)), float64(len(h.Guesses))
	for _, v := range []struct {
		f   float64
		msg string
	}{{1, "Flawless victory!"}, {1.5, "Epic victory!"}, {2, "Standard victory!"}, {3, "Sub-par victory!"}, {4, "Random victory!"}} {
		if g <= n*v.f {
			return v.msg
		}
	}
	return "Button mashing!"
}

// Board is the text shown to the player.
func (h *Hangman) Board() string {
	if h.Exit != 0 {
		return "Adieu!"
	}
	var word strings.Builder
	for _, r := range h.Word {
		if strings.ContainsRune(h.Guesses, r) {
			word.WriteRune(r)
		} else {
			word.WriteRune('_')
		}
	}
	prompt := "Enter next guess"
	if h.Won() {
		prompt = "Enter anything to start a new game"
	}
	return fmt.Sprintf("%s\nWord: %s\nLetters guessed so far: %s\n%s (0 to quit):\n", h.Msg, word.String(), h.Guesses, prompt)
}

type hangman struct {
	cfg  *HangmanConfig
	http *http.Client
}

func (g hangman) randomWord(ctx context.Context) (string, error) {
	if len(g.cfg.Words) > 0 {
		return g.cfg.Words[rand.IntN(len(g.cfg.Words))], nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.RandomWordURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("random word: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", fmt.Errorf("random word: %w", err)
	}
	w := strings.ToLower(strings.TrimSpace(strings.TrimLeft(string(b), "\ufeff\ufffe")))
	if w == "" {
		return "", errors.New("random word: empty answer")
	}
	return w, nil
}

func (g hangman) newGame(c *app.Context, m *schemas.UserMessage) error {
	w, err := g.randomWord(c.Context())
	if err != nil {
		return err
	}
	h := &Hangman{Word: w, Msg: "New game!"}
	if err := c.SaveState(h); err != nil {
		return err
	}
	return c.ReplyTo(m, h.Board(), true)
}

func (g hangman) NewSession(c *app.Context, m *schemas.UserMessage) error { return g.newGame(c, m) }

func (g hangman) CloseSession(*app.Context, *schemas.UserMessage) error { return nil }

func (g hangman) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	var h Hangman
	found, err := c.LoadState(&h)
	if err != nil || !found {
		return g.newGame(c, m)
	}
	h.Event(m.Text())
	switch h.Exit {
	case 1:
		c.SetState(nil)
		return c.ReplyTo(m, h.Board(), false)
	case 2:
		return g.newGame(c, m)
	}
	if err := c.SaveState(&h); err != nil {
		return err
	}
	return c.ReplyTo(m, h.Board(), true)
}

// Kinds returns the demo kinds: calculator, static_reply, hangman, rps
// and tictactoe.
func Kinds() []*topology.Kind {
	return append(GameKinds(), []*topology.Kind{
		{
			Name: "calculator", Aliases: []string{"vumi.demos.calculator.CalculatorApp"}, Role: topology.RoleApplication,
			Summary:   "demo: a menu-driven calculator with per-user sessions",
			NewConfig: func() topology.WorkerConfig { return &CalculatorConfig{} },
			Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
				return app.Worker(deps, spec, &spec.Config.(*CalculatorConfig).Config, calculator{}, app.Options{}), nil
			},
		},
		{
			Name: "static_reply", Aliases: []string{"vumi.demos.static_reply.StaticReplyApplication"}, Role: topology.RoleApplication,
			Summary:   "demo: replies to every message with a configured text",
			NewConfig: func() topology.WorkerConfig { return &StaticReplyConfig{} },
			Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
				cfg := spec.Config.(*StaticReplyConfig)
				return app.Worker(deps, spec, &cfg.Config, staticReply{text: cfg.ReplyText}, app.Options{}), nil
			},
		},
		{
			Name: "hangman", Aliases: []string{"vumi.demos.hangman.HangmanWorker"}, Role: topology.RoleApplication,
			Summary:   "demo: hangman, one game per user",
			NewConfig: func() topology.WorkerConfig { return &HangmanConfig{} },
			Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
				cfg := spec.Config.(*HangmanConfig)
				return app.Worker(deps, spec, &cfg.Config, hangman{cfg: cfg, http: &http.Client{Timeout: 5 * time.Second}}, app.Options{}), nil
			},
		},
	}...)
}
