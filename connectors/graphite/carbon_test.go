package graphite_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/graphite"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/internal/broker"
	"github.com/vumi-kafka/vumi/internal/metrics"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/processors/metrics/aggregator"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// carbon is a real carbon-cache (Debian's graphite-carbon) on loopback,
// storing whisper files under a temp dir.
type carbon struct {
	dir              string
	line, pickle     int
	whisperFetchPath string
}

func freePort(t *testing.T) int {
	t.Helper()
	return transporttest.FreePort(t)
}

func startCarbon(t *testing.T) *carbon {
	t.Helper()
	bin, err := exec.LookPath("carbon-cache")
	if err != nil {
		t.Fatal("carbon-cache not found: install Debian's graphite-carbon (scripts/install-test-deps.sh does)")
	}
	wf, err := exec.LookPath("whisper-fetch")
	if err != nil {
		t.Fatal("whisper-fetch not found: install Debian's python3-whisper (scripts/install-test-deps.sh does)")
	}
	c := &carbon{dir: t.TempDir(), line: freePort(t), pickle: freePort(t), whisperFetchPath: wf}
	for _, d := range []string{"conf", "storage/whisper", "storage/lists", "log", "run"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/storage/
LOCAL_DATA_DIR = %[1]s/storage/whisper/
WHITELISTS_DIR = %[1]s/storage/lists/
CONF_DIR = %[1]s/conf/
LOG_DIR = %[1]s/log/
PID_DIR = %[1]s/run/
USER =
ENABLE_TAGS = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[3]d
ENABLE_UDP_LISTENER = False
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[4]d
LOG_UPDATES = False
WHISPER_AUTOFLUSH = True
`, c.dir, c.line, c.pickle, freePort(t))
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(c.dir, "conf", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("carbon.conf", conf)
	write("storage-schemas.conf", "[all]\npattern = .*\nretentions = 1s:1d\n")
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--config="+filepath.Join(c.dir, "conf", "carbon.conf"),
		"--pidfile="+filepath.Join(c.dir, "run", "carbon.pid"), "--logdir="+filepath.Join(c.dir, "log"), "--debug", "start")
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start carbon-cache: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("carbon-cache output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{c.line, c.pickle} {
		for {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("carbon-cache exited:\n%s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("carbon-cache not listening on %d within 30s:\n%s", port, out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// fetch reads a metric's whisper file: timestamp -> value, for the
// seconds that have one.
func (c *carbon) fetch(t *testing.T, path string, from, until int64) map[int64]float64 {
	t.Helper()
	file := filepath.Join(c.dir, "storage", "whisper", strings.ReplaceAll(path, ".", "/")+".wsp")
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	out, err := exec.Command(c.whisperFetchPath, "--from="+strconv.FormatInt(from, 10), "--until="+strconv.FormatInt(until, 10), file).Output()
	if err != nil {
		t.Fatalf("whisper-fetch %s: %v", file, err)
	}
	got := map[int64]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[1] == "None" {
			continue
		}
		ts, err1 := strconv.ParseInt(f[0], 10, 64)
		v, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("whisper-fetch line %q", sc.Text())
		}
		got[ts] = v
	}
	return got
}

// TestCarbonEndToEnd runs the whole metrics pipeline: a worker's metric
// manager publishes counts to vumi.metrics on the embedded broker, the
// metric_aggregator sums them per 1 s window, and two graphite collectors
// (plaintext and pickle) write the aggregates to a real carbon-cache,
// whose whisper files must hold the right values at the right paths and
// timestamps.
func TestCarbonEndToEnd(t *testing.T) {
	c := startCarbon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{DataDir: t.TempDir(), KafkaPort: -1, RegistryPort: -1, Logger: testlog.Stderr()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kinds := topology.NewRegistry().Add(aggregator.Kind(), graphite.Kind())
	cfgText := fmt.Sprintf(`cluster:
  kafka: {brokers: [%s]}
  schema_registry: {url: %s}
  partitions: 2
  state_dir: %s
workers:
  - name: aggregator
    kind: vumi.blinkenlights.MetricAggregator
    bucket_size: 1
    lag: 1
    tick_interval: 100ms
    heartbeat_interval: -1s
  - name: graphite
    kind: graphite
    address: 127.0.0.1:%d
    prefix: plain.
    heartbeat_interval: -1s
  - name: graphite_pickle
    kind: vumi.blinkenlights.GraphiteMetricsCollector
    protocol: pickle
    address: 127.0.0.1:%d
    prefix: pickled.
    heartbeat_interval: -1s
`, b.KafkaAddr(), b.RegistryURL(), t.TempDir(), c.line, c.pickle)
	cfg, err := topology.Load("carbon-test.yaml", []byte(cfgText), kinds, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- topology.Run(runCtx, cfg, kinds, topology.RunOptions{Logger: testlog.Stderr(), Ready: func([]string, string) { close(ready) }})
	}()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("deployment: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("deployment did not stop within 30s")
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("deployment failed: %v", err)
	case <-ctx.Done():
		t.Fatal("deployment not ready")
	}

	// The worker: a metric manager publishing through its own producer.
	reg := schemas.NewRegistryClient(b.RegistryURL(), schemas.RegistryClientOptions{})
	codecs := schemas.NewCodecs(reg)
	if err := codecs.MetricDatapoint.Register(ctx, "vumi.metrics"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := metrics.NewManager(metrics.WorkerPrefix("w1"), metrics.Options{
		PublishInterval: 200 * time.Millisecond, Source: "w1", Logger: testlog.Stderr(),
		Publisher: &metrics.KafkaPublisher{Client: cl, Codec: codecs.MetricDatapoint, Topic: "vumi.metrics"},
	})
	m.Start(ctx)
	defer func() { _ = m.Stop(context.Background()) }()
	// Count 3 in one second and 5 two seconds later, each well inside its
	// second so the counts cannot straddle a window boundary.
	waitSecond := func() int64 {
		now := time.Now()
		next := now.Truncate(time.Second).Add(time.Second + 100*time.Millisecond)
		time.Sleep(next.Sub(now))
		return next.Unix()
	}
	a := waitSecond()
	for range 3 {
		m.Count("sent", 1)
	}
	waitSecond()
	bSec := waitSecond()
	m.Count("sent", 5)
	if time.Now().Unix() != bSec {
		t.Fatal("the machine is too slow: counting took over 800ms")
	}
	want := map[int64]float64{a: 3, a + 1: 0, bSec: 5}
	for _, path := range []string{"plain.vumi.w1.sent.sum", "pickled.vumi.w1.sent.sum"} {
		var got map[int64]float64
		for {
			got = c.fetch(t, path, a-1, bSec+1)
			if len(got) >= len(want) && got[bSec] == 5 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: whisper holds %v, want %v", path, got, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
		for ts, v := range want {
			if got[ts] != v {
				t.Errorf("%s at %d: %v, want %v (all: %v)", path, ts, got[ts], v, got)
			}
		}
		for ts, v := range got {
			if (ts < a || ts > bSec) && v != 0 {
				t.Errorf("%s: unexpected point at %d (counts were at %d and %d)", path, ts, a, bSec)
			}
		}
	}
}
