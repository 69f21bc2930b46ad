package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// TestShippedConfigsValidate loads every config under deploy/ and checks
// its whole topology.
func TestShippedConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../../deploy/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no shipped configs found")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Secrets and addresses come from the environment when deployed:
			// give each variable the config requires (and has no default
			// for) a placeholder.
			placeholders := map[string]string{}
			lookup := func(k string) (string, bool) {
				if v, ok := placeholders[k]; ok {
					return v, true
				}
				return os.LookupEnv(k)
			}
			var cfg *topology.Config
			for range 20 {
				cfg, err = topology.Load(f, data, kinds(), lookup)
				var name string
				if err == nil || !strings.Contains(err.Error(), "environment variable ") {
					break
				}
				_, rest, _ := strings.Cut(err.Error(), "environment variable ")
				name, _, _ = strings.Cut(rest, " ")
				placeholders[name] = "placeholder-" + strings.ToLower(name)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := topology.BuildGraph(cfg).Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRegistryHasEveryKindOnce(t *testing.T) {
	r := kinds()
	for _, k := range r.Kinds() {
		if k.NewConfig == nil || (k.Build == nil && k.SelectBy == "") || k.Summary == "" {
			t.Errorf("kind %s is incomplete", k.Name)
			continue
		}
		if dups := topology.DuplicateKeys(k.NewConfig()); len(dups) > 0 {
			t.Errorf("kind %s declares config keys twice: %v", k.Name, dups)
		}
	}
	for _, n := range r.MiddlewareNames() {
		mk, _ := r.Middleware(n)
		if dups := topology.DuplicateKeys(mk.NewConfig()); len(dups) > 0 {
			t.Errorf("middleware %s declares config keys twice: %v", n, dups)
		}
	}
}

// cli runs the vumi command line in-process.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = runMain(ctx, args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb})
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: vumi <command>"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"send"}, 2, "-topic is required"},
		{[]string{"send", "-topic", "x", "-m", "{}", "file"}, 2, "either -m or a file"},
		{[]string{"tail"}, 2, "-topic is required"},
		{[]string{"tail", "-topic", "x", "-offset", "1", "-from-beginning"}, 2, "at most one of"},
		{[]string{"topics"}, 2, "missing subcommand"},
		{[]string{"topology", "-c", "/nonexistent.yaml"}, 1, "no such file"},
		{[]string{"worker"}, 2, "name at least one worker"},
		{[]string{"broker", "-kafka-port", "99999"}, 1, "kafka port 99999 out of range"},
	}
	for _, tc := range cases {
		_, stderr, code := cli(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("vumi %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(plain, []byte("workers:\n  - {name: echo, kind: echo, transport_name: t}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "", "worker", "-c", plain, "-dynamic"); code != 2 || !strings.Contains(stderr, "need a management section") {
		t.Errorf("worker -dynamic without management: exit %d, %q", code, stderr)
	}
	out, _, code := cli(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "vumi ") {
		t.Errorf("version: %d %q", code, out)
	}
	out, _, code = cli(t, "", "kinds")
	if code != 0 || !strings.Contains(out, "telnet") || !strings.Contains(out, "logging") {
		t.Errorf("kinds: %d %q", code, out)
	}
}

// TestTopicsSendTail drives the data tools against an embedded broker.
func TestTopicsSendTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn := []string{"-brokers", b.KafkaAddr(), "-registry", b.RegistryURL()}
	with := func(args ...string) []string {
		return append(append(args[:1:1], conn...), args[1:]...)
	}

	// Flags after the topic names, as the README writes them.
	out, stderr, code := cli(t, "", append(append([]string{"topics", "create", "sms.inbound", "sms.event"}, conn...), "-partitions", "3")...)
	if code != 0 || !strings.Contains(out, "created sms.inbound with 3 partitions") {
		t.Fatalf("topics create: %d %q %q", code, out, stderr)
	}
	out, _, code = cli(t, "", append([]string{"topics", "list"}, conn...)...)
	if code != 0 || !strings.Contains(out, "sms.inbound") || !strings.Contains(out, "partitions=3") {
		t.Fatalf("topics list: %d %q", code, out)
	}
	// The same through a deployment config's cluster section (-c).
	_, kport, _ := strings.Cut(b.KafkaAddr(), ":")
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	cfgText := "cluster:\n  kafka: {brokers: [127.0.0.1:" + kport + "]}\n  schema_registry: {url: " + b.RegistryURL() + "}\nworkers:\n  - {name: e, kind: echo, transport_name: sms}\n"
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = cli(t, "", "topics", "list", "-c", cfgFile)
	if code != 0 || !strings.Contains(out, "sms.inbound") {
		t.Fatalf("topics list -c: %d %q %q", code, out, stderr)
	}

	// Two messages as JSON lines on stdin, one with a bad field.
	lines := `{"message_id": "m1", "to_addr": "1234", "from_addr": "27761234567", "content": "hello", "transport_name": "sms", "transport_type": "sms"}
{"message_id": "m2", "to_addr": "1234", "from_addr": "27761234568", "content": "again", "transport_name": "sms", "transport_type": "sms", "helper_metadata": {"n": 12345678901234567890}}
`
	out, stderr, code = cli(t, lines, with("send", "-topic", "sms.inbound")...)
	if code != 0 || strings.Count(out, "sent ") != 2 {
		t.Fatalf("send: %d %q %q", code, out, stderr)
	}
	_, stderr, code = cli(t, "{\"content\": \"fine\"}\n{\"content\": 5}\n", with("send", "-topic", "sms.inbound")...)
	if code != 1 || !strings.Contains(stderr, "stdin:2: field content: must be a string or null, got number (nothing was sent)") {
		t.Errorf("bad send: %d %q", code, stderr)
	}
	_, stderr, code = cli(t, `{"content": "x"}`, with("send", "-topic", "no.such.topic")...)
	if code != 1 || !strings.Contains(stderr, "topic no.such.topic does not exist") {
		t.Errorf("send to a missing topic: %d %q", code, stderr)
	}
	_, stderr, code = cli(t, "", with("send", "-topic", "sms.event", "-m", `{"event_type": "ack", "user_message_id": "m1"}`)...)
	if code != 1 || !strings.Contains(stderr, "field sent_message_id: is required for an ack") {
		t.Errorf("bad event: %d %q", code, stderr)
	}
	out, stderr, code = cli(t, "", with("send", "-topic", "sms.event", "-m", `{"event_type": "ack", "user_message_id": "m1", "sent_message_id": "smsc-1"}`)...)
	if code != 0 {
		t.Fatalf("send event: %d %q", code, stderr)
	}

	out, stderr, code = cli(t, "", with("tail", "-topic", "sms.inbound", "-from-beginning")...)
	if code != 0 {
		t.Fatalf("tail: %d %q", code, stderr)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 2 {
		t.Fatalf("tail printed %d lines: %q", len(got), out)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{`"message_id":"m1"`, `"content":"hello"`, `"message_id":"m2"`, `"n":12345678901234567890`, `"message_type":"user_message"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("tail output lacks %s:\n%s", want, joined)
		}
	}
	out, _, code = cli(t, "", with("tail", "-topic", "sms.event", "-from-beginning", "-meta")...)
	if code != 0 || !strings.Contains(out, `"partition":`) || !strings.Contains(out, `"event_type":"ack"`) || !strings.Contains(out, `"key":"m1"`) {
		t.Errorf("tail -meta: %d %q", code, out)
	}
	out, _, code = cli(t, "", with("tail", "-topic", "sms.inbound", "-offset", "0", "-n", "1")...)
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("tail -n 1: %d %q", code, out)
	}
	out, _, code = cli(t, "", append([]string{"topics", "add-partitions", "-total", "5"}, append(conn, "sms.inbound")...)...)
	if code != 0 || !strings.Contains(out, "sms.inbound now has 5 partitions") {
		t.Errorf("add-partitions: %d %q", code, out)
	}
	out, _, code = cli(t, "", append([]string{"topics", "describe"}, append(conn, "sms.inbound")...)...)
	if code != 0 || !strings.Contains(out, "topic sms.inbound (5 partitions)") {
		t.Errorf("describe: %d %q", code, out)
	}
	_, stderr, code = cli(t, "", with("tail", "-topic", "nope")...)
	if code != 1 || !strings.Contains(stderr, "topic nope") {
		t.Errorf("tail of a missing topic: %d %q", code, stderr)
	}
}

func TestInterspersedFlags(t *testing.T) {
	c := &command{name: "x"}
	e := &env{stderr: &bytes.Buffer{}}
	for _, tc := range []struct {
		args []string
		n    int
		pos  string
	}{
		{[]string{"a", "-n", "3", "b"}, 3, "a b"},
		{[]string{"-n", "2", "a"}, 2, "a"},
		{[]string{"a", "b", "-n=5"}, 5, "a b"},
		{[]string{"a", "--", "-n", "b"}, 0, "a -n b"},
	} {
		fs := newFlags(e, c)
		n := fs.Int("n", 0, "")
		if err := parse(fs, tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if *n != tc.n || strings.Join(fs.Args(), " ") != tc.pos {
			t.Errorf("%v: n=%d args=%q, want n=%d args=%q", tc.args, *n, fs.Args(), tc.n, tc.pos)
		}
	}
}

// TestFailuresCommand: dead letters can be listed, inspected, retried to
// the outbound topic and discarded.
func TestFailuresCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn := []string{"-brokers", b.KafkaAddr(), "-registry", b.RegistryURL(), "-transport", "sms"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": &compact}, "sms.dead-letters"); err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "sms.outbound"); err != nil {
		t.Fatal(err)
	}
	codecs := schemas.NewCodecs(schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{}))
	if err := codecs.Failure.Register(ctx, "sms.dead-letters"); err != nil {
		t.Fatal(err)
	}
	msg := schemas.NewUserMessage()
	msg.ToAddr, msg.Content = schemas.String("+27820000001"), schemas.String("retry me")
	js, _ := msg.MarshalJSON()
	perm := schemas.FailurePermanent
	fails := []*schemas.Failure{
		{FailureID: "f1", Timestamp: schemas.Now(), FailureCode: &perm, Reason: "SMSC said no", MessageType: schemas.String(schemas.TypeUserMessage), Message: schemas.String(string(js))},
		{FailureID: "f2", Timestamp: schemas.Now(), Reason: "decode: bad magic", Raw: []byte{0xff}},
	}
	for _, f := range fails {
		v, err := codecs.Failure.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sms.dead-letters", Key: []byte(f.FailureID), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := cli(t, "", append([]string{"failures", "list"}, conn...)...)
	if code != 0 || !strings.Contains(out, "f1") || !strings.Contains(out, "SMSC said no") || !strings.Contains(out, "f2") || !strings.Contains(stderr, "2 dead letter(s)") {
		t.Fatalf("list: %d %q %q", code, out, stderr)
	}
	out, _, code = cli(t, "", append([]string{"failures", "list", "-reason", "SMSC"}, conn...)...)
	if code != 0 || !strings.Contains(out, "f1") || strings.Contains(out, "f2") {
		t.Errorf("list -reason: %d %q", code, out)
	}
	out, _, code = cli(t, "", append(append([]string{"failures", "inspect"}, conn...), "f2")...)
	if code != 0 || !strings.Contains(out, `"raw_base64":"/w=="`) {
		t.Errorf("inspect: %d %q", code, out)
	}
	_, stderr, code = cli(t, "", append(append([]string{"failures", "retry"}, conn...), "f2")...)
	if code != 1 || !strings.Contains(stderr, "holds no user message") {
		t.Errorf("retry of an undecodable record: %d %q", code, stderr)
	}
	out, _, code = cli(t, "", append(append([]string{"failures", "retry"}, conn...), "f1")...)
	if code != 0 || !strings.Contains(out, "f1 retried to sms.outbound") {
		t.Errorf("retry: %d %q", code, out)
	}
	out, _, code = cli(t, "", append([]string{"failures", "discard", "-all"}, conn...)...)
	if code != 0 || !strings.Contains(out, "f2 discarded") {
		t.Errorf("discard: %d %q", code, out)
	}
	_, stderr, _ = cli(t, "", append([]string{"failures", "list"}, conn...)...)
	if !strings.Contains(stderr, "0 dead letter(s)") {
		t.Errorf("after retry and discard: %q", stderr)
	}
	out, _, code = cli(t, "", "tail", "-brokers", b.KafkaAddr(), "-registry", b.RegistryURL(), "-topic", "sms.outbound", "-from-beginning")
	if code != 0 || !strings.Contains(out, msg.MessageID) {
		t.Errorf("the retried message is not on sms.outbound: %q", out)
	}
}
