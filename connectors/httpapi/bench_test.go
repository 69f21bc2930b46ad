package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/transporttest"
)

func benchClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

// BenchmarkIngress: requests -> Avro on the inbound topic with
// reply_expected false, from 64 concurrent clients on the same machine.
func BenchmarkIngress(b *testing.B) {
	e := transporttest.Start(b, kinds(), "api", `
  - name: api
    kind: http_api
    transport_name: api
    web_path: /send
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    amqp_prefetch_count: 100
`)
	cl := benchClient()
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				resp, err := cl.Get(fmt.Sprintf("%s/send?content=hello&to_addr=1234&from_addr=%%2B2783%07d", e.BaseURL, i%1000))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkSyncReplyAt1000PerSecond: reply_expected true through the echo
// application, requests paced at 1,000/s; reports latency percentiles.
func BenchmarkSyncReplyAt1000PerSecond(b *testing.B) {
	e := transporttest.Start(b, kinds(), "api", `
  - name: api
    kind: http_api
    transport_name: api
    web_path: /send
    web_port: ${WEB_PORT}
    web_interface: 127.0.0.1
    reply_expected: true
    amqp_prefetch_count: 100
  - name: echo
    kind: echo
    transport_name: api
`)
	cl := benchClient()
	// Warm up: connections, the application's group, the consumers.
	for i := range 200 {
		resp, err := cl.Get(fmt.Sprintf("%s/send?content=warm&to_addr=1234&from_addr=%%2B2784%07d", e.BaseURL, i))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lat := make([]time.Duration, b.N)
	var failed atomic.Int64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := cl.Get(fmt.Sprintf("%s/send?content=ping&to_addr=1234&from_addr=%%2B2783%07d", e.BaseURL, i%1000))
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ping" {
				failed.Add(1)
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
