// Package words is Vumi's demo applications (vumi/demos/words.py): echo,
// reverse and word count. Each replies to every message; a message with no
// content (such as the start of a session) gets the help text.
package words

import (
	"fmt"
	"strings"

	"github.com/vumi-kafka/vumi/processors/app"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Config is the demo applications' config: only the application base.
type Config struct {
	app.Config `yaml:",inline"`
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error { return c.ValidateBase() }

// simple is Vumi's SimpleAppWorker: reply with process(content), or with
// the help text when there is no content.
type simple struct {
	help    string
	process func(string) string
}

func (s simple) ConsumeUserMessage(c *app.Context, m *schemas.UserMessage) error {
	if m.Content == nil {
		return c.ReplyTo(m, s.help, true)
	}
	return c.ReplyTo(m, s.process(*m.Content), true)
}

// Echo replies with the text it received.
func Echo(text string) string { return text }

// Reverse replies with the text reversed (by character, not byte).
func Reverse(text string) string {
	r := []rune(text)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// WordCount replies with the number of words and characters.
func WordCount(text string) string {
	plural := func(n int, word string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, word)
		}
		return fmt.Sprintf("%d %ss", n, word)
	}
	return plural(len(strings.Fields(text)), "word") + ", " + plural(len([]rune(text)), "char")
}

func kind(name, alias, summary, help string, process func(string) string) *topology.Kind {
	return &topology.Kind{
		Name:    name,
		Aliases: []string{alias},
		Role:    topology.RoleApplication,
		Summary: summary,
		NewConfig: func() topology.WorkerConfig {
			return &Config{}
		},
		Build: func(deps *topology.Deps, spec *topology.WorkerSpec) (topology.Worker, error) {
			cfg := spec.Config.(*Config)
			return app.Worker(deps, spec, &cfg.Config, simple{help: help, process: process}, app.Options{}), nil
		},
	}
}

// Kinds returns the three demo application kinds.
func Kinds() []*topology.Kind {
	return []*topology.Kind{
		kind("echo", "vumi.demos.words.EchoWorker", "replies with the text it receives", "Enter text to echo:", Echo),
		kind("reverse", "vumi.demos.words.ReverseWorker", "replies with the text reversed", "Enter text to reverse:", Reverse),
		kind("word_count", "vumi.demos.words.WordCountWorker", "replies with word and character counts", "Enter text to return word and character counts for:", WordCount),
	}
}
