package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/testlog"
)

func runVumi(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

// TestAccountsCommand sets, lists and forgets account states in the
// accounts topic of an embedded broker.
func TestAccountsCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	steps := []struct {
		args   []string
		stdout []string
	}{
		{[]string{"deactivate", "acme", "-reason", "unpaid invoice"}, []string{"acme inactive"}},
		{[]string{"activate", "beta"}, []string{"beta active"}},
		{[]string{"list"}, []string{"ACCOUNT", "acme     inactive", "unpaid invoice", "beta     active"}},
		{[]string{"forget", "acme"}, []string{"acme forgotten"}},
	}
	for _, s := range steps {
		code, stdout, stderr := runVumi(t, "", append([]string{"accounts", "-brokers", b.KafkaAddr()}, s.args...)...)
		if code != 0 {
			t.Fatalf("accounts %v: exit %d: %s", s.args, code, stderr)
		}
		for _, w := range s.stdout {
			if !strings.Contains(stdout, w) {
				t.Errorf("accounts %v: %q lacks %q", s.args, stdout, w)
			}
		}
	}
	code, stdout, _ := runVumi(t, "", "accounts", "-brokers", b.KafkaAddr(), "list")
	if code != 0 || strings.Contains(stdout, "acme") || !strings.Contains(stdout, "beta") {
		t.Errorf("after forget: %q", stdout)
	}
}
