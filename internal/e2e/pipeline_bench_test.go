package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/internal/testlog"
	"github.com/vumi-kafka/vumi/schemas"
)

// The pipeline benchmark is the whole send path of a deployment, in one
// process on the embedded broker with Avro on every topic:
//
//	HTTP POST (send API) -> api.sends -> send API processor -> api.outbound
//	-> simple_dispatch_router -> smpp.outbound -> SMPP transport -> submit_sm
//	-> SMSC simulator -> submit_sm_resp + deliver_sm receipt -> smpp.event
//	-> router -> api.event -> send API processor (status table)
//
// A message's latency is from the moment its POST was due (open-loop
// schedule: a slow server cannot hide latency by slowing the sender) to the
// moment its ack, and then its delivery report, is on api.event, the topic
// the application consumes. scripts/bench.sh runs it at fixed offered
// loads (PIPELINE_RATE=500, 2000) and at saturation (PIPELINE_RATE=0:
// PIPELINE_CLIENTS concurrent clients as fast as they are answered), one
// process per run so that peak RSS is per load.

// pipelineRate is the offered load in messages/s; 0 is saturation.
func pipelineRate() float64 {
	r, _ := strconv.ParseFloat(os.Getenv("PIPELINE_RATE"), 64)
	return r
}

func pipelineClients() int {
	n, _ := strconv.Atoi(os.Getenv("PIPELINE_CLIENTS"))
	if n <= 0 {
		n = 256
	}
	return n
}

// BenchmarkPipeline sends b.N messages through the pipeline above and
// reports throughput (messages with their delivery report back per second),
// ack and delivery-report latency percentiles, CPU per message (getrusage,
// the whole process: broker, registry, every worker, the simulator and the
// load generator), peak RSS and peak Go heap.
func BenchmarkPipeline(b *testing.B) {
	rate := pipelineRate()
	clients := pipelineClients()
	c := startCluster(b)
	c.external = append(c.external, "api.event")
	sim, err := smsc.Listen("127.0.0.1:0", smsc.Options{Logger: testlog.New(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	host, port, _ := strings.Cut(sim.Addr(), ":")
	apiPort := freePort(b)
	run(b, c, fmt.Sprintf(`
  - name: api
    kind: http_send_api
    web_port: %d
    web_interface: 127.0.0.1
    web_username: user
    web_password: pass
    transports: [api]
    heartbeat_interval: -1s
  - name: router
    kind: simple_dispatch_router
    transport_names: [smpp]
    exposed_names: [api]
    route_mappings: {smpp: [api]}
    transport_mappings: {api: smpp}
    heartbeat_interval: -1s
  - name: smpp
    kind: smpp
    transport_name: smpp
    host: %s
    port: %s
    system_id: esme
    password: secret
    window_size: 128
    amqp_prefetch_count: 256
    heartbeat_interval: -1s
    submit_sm_processor_config:
      registered_delivery: {delivery_receipt: 1}
`, apiPort, host, port))
	base := fmt.Sprintf("http://127.0.0.1:%d/api/v1/transports/api/messages", apiPort)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}, Timeout: 60 * time.Second}

	ev := startEventWatch(b, c)
	var st *stageWatch
	if os.Getenv("PIPELINE_STAGES") != "" {
		st = startStageWatch(b, c, "api.sends", "api.outbound", "smpp.outbound")
	}
	post := func(i int) (string, error) {
		body := fmt.Sprintf(`{"to_addr": "+2776%07d", "content": "benchmark message %d"}`, i%10000, i)
		req, _ := http.NewRequest(http.MethodPost, base, strings.NewReader(body))
		req.SetBasicAuth("user", "pass")
		resp, err := httpc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
		}
		var m struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || m.MessageID == "" {
			return "", fmt.Errorf("no message_id in %s", raw)
		}
		return m.MessageID, nil
	}
	// Warm up: the API may still be binding its port, the SMPP transport
	// binding to the simulator; one message must come back in full.
	deadline := time.Now().Add(60 * time.Second)
	var warm string
	for {
		if warm, err = post(-1); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("send API not answering: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ev.waitFor(b, []string{warm}, 60*time.Second)
	ev.reset()

	ids := make([]string, b.N)
	due := make([]time.Time, b.N)
	answered := make([]time.Duration, b.N)
	var failed atomic.Int64
	var firstErr atomic.Value
	usage := startUsage()
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := &loadClient{addr: fmt.Sprintf("127.0.0.1:%d", apiPort), path: "/api/v1/transports/api/messages", auth: "user:pass"}
			defer lc.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				at := time.Now()
				if rate > 0 {
					at = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					}
				}
				due[i] = at
				id, err := lc.post(i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				answered[i] = time.Since(at)
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sends failed, first: %v", n, b.N, firstErr.Load())
	}
	last := ev.waitFor(b, ids, 10*time.Minute)
	elapsed := last.Sub(start)
	b.StopTimer()
	u := usage.stop()

	acks, drs := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	ev.mu.Lock()
	for i, id := range ids {
		r := ev.seen[id]
		acks = append(acks, r.ack.Sub(due[i]))
		drs = append(drs, r.dr.Sub(due[i]))
	}
	dups := ev.duplicates
	ev.mu.Unlock()
	if os.Getenv("PIPELINE_TIMELINE") != "" {
		// Where the slow messages were: the worst ack latency and the
		// count over 50 ms per 500 ms of the run (by when each was due).
		type slot struct {
			worst time.Duration
			slow  int
		}
		var slots []slot
		for i := range ids {
			k := int(due[i].Sub(start) / (500 * time.Millisecond))
			for len(slots) <= k {
				slots = append(slots, slot{})
			}
			slots[k].worst = max(slots[k].worst, acks[i])
			if acks[i] > 50*time.Millisecond {
				slots[k].slow++
			}
		}
		for k, sl := range slots {
			b.Logf("t=%5.1fs worst ack %8.1f ms, %4d over 50 ms", float64(k)/2, float64(sl.worst.Microseconds())/1000, sl.slow)
		}
	}
	// The SMSC's receive time of each submit_sm splits the latency into
	// send API + router + transport consume, and the way back.
	subs := sim.Submitted()
	if len(subs)-1 != b.N { // -1: the warm-up message
		b.Errorf("the SMSC received %d submit_sm for %d messages", len(subs)-1, b.N)
	}
	atSMSC := make([]time.Duration, 0, b.N)
	for _, s := range subs {
		if n, err := strconv.Atoi(strings.TrimPrefix(s.Text, "benchmark message ")); err == nil && n >= 0 && n < b.N {
			atSMSC = append(atSMSC, s.Received.Sub(due[n]))
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	reportPercentiles(b, "http", answered)
	if st != nil {
		// Broker timestamps of each hop (CreateTime: when its producer
		// made the record), from the moment the POST was due.
		for _, topic := range st.topics {
			var ds []time.Duration
			st.mu.Lock()
			for i, id := range ids {
				if at, ok := st.at[topic][id]; ok {
					ds = append(ds, at.Sub(due[i]))
				}
			}
			st.mu.Unlock()
			reportPercentiles(b, topic, ds)
		}
	}
	reportPercentiles(b, "smsc", atSMSC)
	reportPercentiles(b, "ack", acks)
	reportPercentiles(b, "dr", drs)
	b.ReportMetric(float64(u.cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(u.peakRSS)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(u.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(dups), "dup-events")
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) float64 {
		i := int(q * float64(len(ds)))
		if i >= len(ds) {
			i = len(ds) - 1
		}
		return float64(ds[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(0.999), name+"-p99.9-ms")
}

// eventWatch follows api.event and keeps, per user_message_id, when its
// ack and its delivery report were first seen.
type eventWatch struct {
	mu         sync.Mutex
	seen       map[string]*arrival
	duplicates int
}

type arrival struct{ ack, dr time.Time }

func startEventWatch(b *testing.B, c *cluster) *eventWatch {
	w := &eventWatch{seen: map[string]*arrival{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics("api.event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var e schemas.Event
				if err := c.Codecs.Event.DecodeContext(ctx, r.Value, &e); err != nil {
					b.Errorf("api.event@%d: %v", r.Offset, err)
					return
				}
				w.mu.Lock()
				a := w.seen[e.UserMessageID]
				if a == nil {
					a = &arrival{}
					w.seen[e.UserMessageID] = a
				}
				switch e.EventType {
				case schemas.EventAck:
					if a.ack.IsZero() {
						a.ack = now
					} else {
						w.duplicates++
					}
				case schemas.EventDeliveryReport:
					if a.dr.IsZero() {
						a.dr = now
					} else {
						w.duplicates++
					}
				default:
					b.Errorf("unexpected %s for %s", e.EventType, e.UserMessageID)
				}
				w.mu.Unlock()
			})
		}
	}()
	return w
}

func (w *eventWatch) reset() {
	w.mu.Lock()
	w.seen = map[string]*arrival{}
	w.duplicates = 0
	w.mu.Unlock()
}

// waitFor polls until every id has its ack and delivery report, and
// returns the latest arrival. Ids already complete are not looked at again.
func (w *eventWatch) waitFor(b *testing.B, ids []string, within time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(within)
	pending := append([]string(nil), ids...)
	var last time.Time
	for {
		// Messages complete roughly in the order they were sent: each
		// look goes from the oldest pending one up to the first still
		// incomplete, so that waiting costs little however long the
		// backlog (a scan of every pending id every 20 ms, under the lock
		// the event consumer needs, was 4 % of the CPU of a 200,000
		// message run at saturation).
		w.mu.Lock()
		done := 0
		for _, id := range pending {
			a := w.seen[id]
			if a == nil || a.ack.IsZero() || a.dr.IsZero() {
				break
			}
			if a.dr.After(last) {
				last = a.dr
			}
			if a.ack.After(last) {
				last = a.ack
			}
			done++
		}
		w.mu.Unlock()
		pending = pending[done:]
		if len(pending) == 0 {
			return last
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages without both ack and delivery report after %v", len(pending), len(ids), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stageWatch records, per topic, the timestamp of each message's record.
type stageWatch struct {
	topics []string
	mu     sync.Mutex
	at     map[string]map[string]time.Time
}

func startStageWatch(b *testing.B, c *cluster, topics ...string) *stageWatch {
	w := &stageWatch{topics: topics, at: map[string]map[string]time.Time{}}
	for _, t := range topics {
		w.at[t] = map[string]time.Time{}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.B.KafkaAddr()), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				var m schemas.UserMessage
				if err := c.Codecs.UserMessage.DecodeContext(ctx, r.Value, &m); err != nil {
					return
				}
				w.mu.Lock()
				w.at[r.Topic][m.MessageID] = r.Timestamp
				w.mu.Unlock()
			})
		}
	}()
	return w
}

// usage measures the process's CPU time (getrusage) and samples its peak
// RSS (VmHWM, reset at the start) and live Go heap while a run lasts.
type usage struct {
	cpu      time.Duration
	peakRSS  uint64
	peakHeap uint64
	start    syscall.Rusage
	stopC    chan struct{}
	done     chan struct{}
}

func cpuOf(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func startUsage() *usage {
	runtime.GC()
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	u := &usage{stopC: make(chan struct{}), done: make(chan struct{})}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u.start)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(u.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > u.peakHeap {
				u.peakHeap = v
			}
			select {
			case <-u.stopC:
				return
			case <-t.C:
			}
		}
	}()
	return u
}

func (u *usage) stop() *usage {
	close(u.stopC)
	<-u.done
	var end syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &end)
	u.cpu = cpuOf(&end) - cpuOf(&u.start)
	u.peakRSS = vmHWM()
	if u.peakRSS == 0 {
		u.peakRSS = uint64(end.Maxrss) << 10
	}
	return u
}

// vmHWM reads the peak resident set size from /proc/self/status.
func vmHWM() uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
