package demos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/processors/middleware"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Two-player games (Vumi's MultiPlayerGameWorker: rock-paper-scissors and
// tic-tac-toe) pair players who write from different addresses, so their
// state cannot live under one player's key. Every inbound message is
// forwarded to the worker's <worker>.lobby topic under the single key
// "lobby", whose table entry holds every game; the lobby's callback plays
// and replies. One key is one partition at a time: fine for a demo, and
// the way to build any cross-user stage (re-key, then process).

// GameConfig is the two-player games' config: the application base.
type GameConfig struct {
	app.Config `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *GameConfig) Validate() error { return c.ValidateBase() }

// LobbyTopic is where a game worker re-keys messages.
func LobbyTopic(worker string) string { return worker + ".lobby" }

const lobbyKey = "lobby"

// IO implements topology.WorkerConfig.
func (c *GameConfig) IO(name string) topology.IO {
	io := c.Config.IO(name)
	lobby := topology.Stream{Topic: LobbyTopic(name), Kind: "user_message"}
	io.Consumes = append(io.Consumes, lobby)
	io.Produces = append(io.Produces, lobby)
	io.CoPartitioned[0] = append(io.CoPartitioned[0], LobbyTopic(name))
	return io
}

// lobby is the state of every game of a worker.
type lobby struct {
	Open    string                     `json:"open,omitempty"` // a game waiting for its second player
	Players map[string]string          `json:"players"`        // player -> game id
	Games   map[string]json.RawMessage `json:"games"`
	RawMsgs map[string]json.RawMessage `json:"messages"` // player -> last message, to reply to
	replies []*schemas.UserMessage
}

func (l *lobby) reply(player, content string, cont bool) {
	raw, ok := l.RawMsgs[player]
	if !ok {
		return // as in Vumi: nothing to reply to
	}
	delete(l.RawMsgs, player)
	var m schemas.UserMessage
	if err := m.UnmarshalJSON(raw); err != nil {
		return
	}
	l.replies = append(l.replies, m.Reply(content, cont))
}

func (l *lobby) end(player, content string) { l.reply(player, content, false) }

// game is one kind of two-player game.
type game interface {
	// start makes a new game for its first player.
	start(player string) any
	// join adds the second player; it returns the game.
	join(l *lobby, g json.RawMessage, player string) (any, error)
	// play handles a player's message; done ends the game.
	play(l *lobby, g json.RawMessage, player, content string) (next any, done bool, err error)
	// players of a game.
	players(g json.RawMessage) []string
	// closed is what the other players are told when one leaves.
	closed() string
}

type gameApp struct {
	*worker.Base
	cfg      *GameConfig
	game     game
	inbound  string
	outbound string
	lobby    string
}

func gameKind(name, alias, summary string, gm game) *topology.Kind {
	return &topology.Kind{
		Name: name, Aliases: []string{alias}, Role: topology.RoleApplication, Summary: summary,
		NewConfig: func() topology.WorkerConfig { return &GameConfig{} },
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*GameConfig)
			return topology.WorkerFunc(func(ctx context.Context) error {
				b, err := worker.NewBase(deps, spec, cfg.Common)
				if err != nil {
					return err
				}
				defer b.Close()
				n := deps.Names
				a := &gameApp{Base: b, cfg: cfg, game: gm, inbound: n.Inbound(cfg.TransportName),
					outbound: n.Outbound(cfg.TransportName), lobby: n.Prefix + LobbyTopic(spec.Name)}
				return a.run(ctx)
			}), nil
		},
	}
}

func (a *gameApp) run(ctx context.Context) error {
	um := schemas.GokaCodec[schemas.UserMessage]{C: a.Deps.Codecs.UserMessage}
	g := goka.DefineGroup(goka.Group(a.Deps.Names.Prefix+a.Name),
		goka.Input(goka.Stream(a.inbound), new(gokacodec.Bytes), a.onInbound),
		goka.Input(goka.Stream(a.lobby), new(gokacodec.Bytes), a.onLobby),
		goka.Output(goka.Stream(a.lobby), new(gokacodec.Bytes)),
		goka.Output(goka.Stream(a.outbound), um),
		goka.Output(goka.Stream(a.Deps.Names.Failures(a.cfg.TransportName)), schemas.GokaCodec[schemas.Failure]{C: a.Deps.Codecs.Failure}),
		goka.Persist(new(gokacodec.Bytes)),
	)
	p, err := a.NewProcessor(g)
	if err != nil {
		return err
	}
	hb, stop := context.WithCancel(ctx)
	defer stop()
	go a.RunHeartbeat(hb)
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("game %s: %w", a.Name, err)
	}
	return nil
}

// onInbound re-keys a player's message to the lobby.
func (a *gameApp) onInbound(g goka.Context, v any) {
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.UserMessage, raw, &m, a.cfg.TransportName, schemas.TypeUserMessage) {
		return
	}
	in, err := a.Stack.Inbound(g.Context(), &m, middleware.Context{Phase: middleware.Consume, Connector: a.cfg.TransportName, Worker: a.Name})
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, &m, schemas.TypeUserMessage, raw, err)
		return
	}
	if in == nil {
		return
	}
	b, err := a.Deps.Codecs.UserMessage.Encode(in)
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, in, schemas.TypeUserMessage, raw, worker.Permanent(err))
		return
	}
	g.Emit(goka.Stream(a.lobby), lobbyKey, b)
}

func (a *gameApp) onLobby(g goka.Context, v any) {
	raw, _ := v.([]byte)
	var m schemas.UserMessage
	if !worker.DecodeInProcessor(a.Base, g, a.Deps.Codecs.UserMessage, raw, &m, a.cfg.TransportName, schemas.TypeUserMessage) {
		return
	}
	l := &lobby{}
	if b, ok := g.Value().([]byte); ok && b != nil {
		if err := json.Unmarshal(b, l); err != nil {
			a.Log.Error("lobby state unreadable; starting afresh", "error", err)
			l = &lobby{}
		}
	}
	if l.Players == nil {
		l.Players, l.Games, l.RawMsgs = map[string]string{}, map[string]json.RawMessage{}, map[string]json.RawMessage{}
	}
	err := worker.Safely(func() error { return a.handle(l, &m) })
	if err != nil {
		a.FailInProcessor(g, a.cfg.TransportName, &m, schemas.TypeUserMessage, raw, err)
	}
	b, err := json.Marshal(l)
	if err != nil {
		a.Log.Error("lobby state not saved", "error", err)
		return
	}
	g.SetValue(b)
	for _, r := range l.replies {
		out, err := a.Stack.Outbound(g.Context(), r, middleware.Context{Phase: middleware.Publish, Connector: a.cfg.TransportName, Worker: a.Name})
		if err != nil || out == nil {
			continue
		}
		g.Emit(goka.Stream(a.outbound), string(topology.OutboundKey(out)), out)
	}
}

func (a *gameApp) handle(l *lobby, m *schemas.UserMessage) error {
	player := m.From()
	raw, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	l.RawMsgs[player] = raw
	store := func(id string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		l.Games[id] = b
		return nil
	}
	switch m.Session() {
	case schemas.SessionNew:
		if old, ok := l.Players[player]; ok {
			a.drop(l, old, player)
		}
		if l.Open != "" {
			id := l.Open
			l.Open = ""
			next, err := a.game.join(l, l.Games[id], player)
			if err != nil {
				return err
			}
			l.Players[player] = id
			return store(id, next)
		}
		id := fmt.Sprintf("%s-%d", player, time.Now().UnixNano())
		l.Open, l.Players[player] = id, id
		return store(id, a.game.start(player))
	case schemas.SessionClose:
		delete(l.RawMsgs, player)
		if id, ok := l.Players[player]; ok {
			a.drop(l, id, player)
		}
		return nil
	}
	id, ok := l.Players[player]
	if !ok {
		delete(l.RawMsgs, player)
		return nil
	}
	next, done, err := a.game.play(l, l.Games[id], player, m.Text())
	if err != nil {
		return err
	}
	if done {
		a.remove(l, id)
		return nil
	}
	return store(id, next)
}

// drop ends a game because player left it.
func (a *gameApp) drop(l *lobby, id, player string) {
	for _, p := range a.game.players(l.Games[id]) {
		if p != player {
			l.end(p, a.game.closed())
		}
	}
	a.remove(l, id)
}

func (a *gameApp) remove(l *lobby, id string) {
	for _, p := range a.game.players(l.Games[id]) {
		delete(l.Players, p)
	}
	delete(l.Games, id)
	if l.Open == id {
		l.Open = ""
	}
}

// ---- rock, paper, scissors

// RPS is a game of rock-paper-scissors (Vumi's RockPaperScissorsGame).
type RPS struct {
	BestOf     int     `json:"best_of"`
	Player1    string  `json:"player_1"`
	Player2    string  `json:"player_2,omitempty"`
	Current    int     `json:"current_move,omitempty"`
	Scores     [2]int  `json:"scores"`
	LastResult *[2]int `json:"last_result,omitempty"`
}

// Board is what sid sees.
func (g *RPS) Board(sid string) string {
	s := g.Scores
	if sid == g.Player2 {
		s[0], s[1] = s[1], s[0]
	}
	var out []string
	if r := g.LastResult; r != nil {
		won := (r[0] == 1) == (sid == g.Player1)
		switch {
		case *r == [2]int{0, 0}:
			out = append(out, "Draw.")
		case won:
			out = append(out, "You won!")
		default:
			out = append(out, "You lost!")
		}
	}
	out = append(out, fmt.Sprintf("You: %d, opponent: %d", s[0], s[1]), "1. rock", "2. paper", "3. scissors")
	return strings.Join(out, "\n")
}

// Move records a move (1 rock, 2 paper, 3 scissors); true when a round
// was decided.
func (g *RPS) Move(sid string, choice int) bool {
	if g.Current == 0 {
		g.Current = choice
		return false
	}
	p1, p2 := g.Current, choice
	if sid == g.Player1 {
		p1, p2 = choice, g.Current
	}
	g.Current = 0
	beats := map[int]int{1: 3, 2: 1, 3: 2}
	r := [2]int{}
	switch {
	case beats[p1] == p2:
		r[0] = 1
	case beats[p2] == p1:
		r[1] = 1
	}
	g.LastResult = &r
	g.Scores[0] += r[0]
	g.Scores[1] += r[1]
	return true
}

type rpsGame struct{}

func (rpsGame) start(player string) any { return &RPS{BestOf: 5, Player1: player} }

func (rpsGame) load(raw json.RawMessage) (*RPS, error) {
	g := &RPS{}
	return g, json.Unmarshal(raw, g)
}

func (r rpsGame) players(raw json.RawMessage) []string {
	g, _ := r.load(raw)
	return []string{g.Player1, g.Player2}
}

func (rpsGame) closed() string { return "Game terminated due to remote player disconnect." }

func (r rpsGame) join(l *lobby, raw json.RawMessage, player string) (any, error) {
	g, err := r.load(raw)
	if err != nil {
		return nil, err
	}
	g.Player2 = player
	r.turn(l, g)
	return g, nil
}

func (r rpsGame) turn(l *lobby, g *RPS) bool {
	if g.Scores[0]+g.Scores[1] >= g.BestOf {
		win, lose := g.Player1, g.Player2
		if g.Scores[0] <= g.Scores[1] {
			win, lose = lose, win
		}
		l.end(win, "You won! :-)")
		l.end(lose, "You lost. :-(")
		return true
	}
	l.reply(g.Player1, g.Board(g.Player1), true)
	l.reply(g.Player2, g.Board(g.Player2), true)
	return false
}

func (r rpsGame) play(l *lobby, raw json.RawMessage, player, content string) (any, bool, error) {
	g, err := r.load(raw)
	if err != nil {
		return nil, false, err
	}
	c := (content + " ")[0]
	if c < '1' || c > '3' {
		l.end(player, "You disconnected.")
		other := g.Player1
		if player == g.Player1 {
			other = g.Player2
		}
		l.end(other, "Your opponent disconnected.")
		return nil, true, nil
	}
	if g.Move(player, int(c-'0')) && r.turn(l, g) {
		return nil, true, nil
	}
	return g, false, nil
}

// ---- tic-tac-toe

// TicTacToe is a game of noughts and crosses (Vumi's TicTacToeGame).
type TicTacToe struct {
	Board   [3][3]string `json:"board"`
	PlayerX string       `json:"player_x"`
	PlayerO string       `json:"player_o,omitempty"`
}

// Draw is the board as text.
func (g *TicTacToe) Draw() string {
	line := "+---+---+---+"
	out := []string{}
	for _, r := range g.Board {
		cell := func(s string) string {
			if s == "" {
				return " "
			}
			return s
		}
		out = append(out, line, fmt.Sprintf("| %s | %s | %s |", cell(r[0]), cell(r[1]), cell(r[2])))
	}
	return strings.Join(append(out, line), "\n")
}

// Winner is "X" or "O" once a line is complete.
func (g *TicTacToe) Winner() string {
	b := g.Board
	lines := [][3][2]int{{{0, 0}, {0, 1}, {0, 2}}, {{1, 0}, {1, 1}, {1, 2}}, {{2, 0}, {2, 1}, {2, 2}},
		{{0, 0}, {1, 0}, {2, 0}}, {{0, 1}, {1, 1}, {2, 1}}, {{0, 2}, {1, 2}, {2, 2}},
		{{0, 0}, {1, 1}, {2, 2}}, {{0, 2}, {1, 1}, {2, 0}}}
	for _, l := range lines {
		v := b[l[0][0]][l[0][1]]
		if v != "" && v == b[l[1][0]][l[1][1]] && v == b[l[2][0]][l[2][1]] {
			return v
		}
	}
	return ""
}

// Full reports a draw.
func (g *TicTacToe) Full() bool {
	for _, r := range g.Board {
		for _, c := range r {
			if c == "" {
				return false
			}
		}
	}
	return true
}

type tttGame struct{}

func (tttGame) start(player string) any { return &TicTacToe{PlayerX: player} }

func (tttGame) load(raw json.RawMessage) (*TicTacToe, error) {
	g := &TicTacToe{}
	return g, json.Unmarshal(raw, g)
}

func (t tttGame) players(raw json.RawMessage) []string {
	g, _ := t.load(raw)
	return []string{g.PlayerX, g.PlayerO}
}

func (tttGame) closed() string { return "Other side timed out." }

func (t tttGame) join(l *lobby, raw json.RawMessage, player string) (any, error) {
	g, err := t.load(raw)
	if err != nil {
		return nil, err
	}
	g.PlayerO = player
	l.reply(g.PlayerX, g.Draw(), true)
	return g, nil
}

func (t tttGame) play(l *lobby, raw json.RawMessage, player, content string) (any, bool, error) {
	g, err := t.load(raw)
	if err != nil {
		return nil, false, err
	}
	c := (content + " ")[0]
	if c < '1' || c > '9' {
		l.end(g.PlayerX, "Cheerio.")
		l.end(g.PlayerO, "Cheerio.")
		return nil, true, nil
	}
	n := int(c - '1')
	y, x := n/3, n%3
	mark, other := "X", g.PlayerO
	if player == g.PlayerO {
		mark, other = "O", g.PlayerX
	}
	if g.Board[y][x] == "" {
		g.Board[y][x] = mark
	}
	switch {
	case g.Winner() != "":
		l.end(player, "You won!")
		l.end(other, "You lost!")
		return nil, true, nil
	case g.Full():
		l.end(player, "Draw. :-(")
		l.end(other, "Draw. :-(")
		return nil, true, nil
	}
	l.reply(other, g.Draw(), true)
	return g, false, nil
}

// GameKinds returns the two-player demo kinds: rps and tictactoe.
func GameKinds() []*topology.Kind {
	return []*topology.Kind{
		gameKind("rps", "vumi.demos.rps.RockPaperScissorsWorker", "demo: rock-paper-scissors between two players, best of 5", rpsGame{}),
		gameKind("tictactoe", "vumi.demos.tictactoe.TicTacToeWorker", "demo: tic-tac-toe between two players", tttGame{}),
	}
}
