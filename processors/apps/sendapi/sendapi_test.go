package sendapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vumi-kafka/vumi/connectors/devnull"
	"github.com/vumi-kafka/vumi/connectors/transporttest"
	"github.com/vumi-kafka/vumi/internal/kafka"
	"github.com/vumi-kafka/vumi/internal/testcluster"
	"github.com/vumi-kafka/vumi/processors/apps/sendapi"
	"github.com/vumi-kafka/vumi/topology"
)

// partitions of every topic: more than one per instance, so that two
// instances each hold some of the status table.
const partitions = 4

func kinds() *topology.Registry { return topology.NewRegistry().Add(sendapi.Kind(), devnull.Kind()) }

// deploy runs workers on the cluster with their own state directory, as
// another process (or machine) of the same deployment would.
func deploy(t *testing.T, c *testcluster.Cluster, workers string) *testcluster.Deployment {
	t.Helper()
	text := c.ClusterYAML(partitions, t.TempDir(), "dn.outbound", "dn.event", "dn.inbound") + "workers:\n" + workers
	return testcluster.RunText(t, text, kinds, topology.RunOptions{}, testcluster.RunOptions{StopWithin: 60 * time.Second})
}

// transport is the devnull transport the API sends through: it acks
// every message and reports it delivered.
const transport = `
  - name: dn
    kind: devnull
    transport_name: dn
    ack_rate: 1
    failure_rate: 0
    reply_rate: 0
    heartbeat_interval: -1s
`

// instance is one running send API process.
type instance struct {
	name string
	base string
	d    *testcluster.Deployment
	http *http.Client
}

// startAPI runs one instance of the send API "api" (all instances are one
// consumer group) in a deployment of its own, with extra workers.
func startAPI(t *testing.T, c *testcluster.Cluster, name, extra string) *instance {
	t.Helper()
	port := transporttest.FreePort(t)
	d := deploy(t, c, fmt.Sprintf(`
  - name: api
    kind: http_send_api
    web_port: %d
    web_interface: 127.0.0.1
    transports: [dn]
    heartbeat_interval: -1s
`, port)+extra)
	return &instance{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port), d: d, http: &http.Client{Timeout: 20 * time.Second}}
}

// do sends a request and returns the status and body; a connection error
// (the server still starting) is a status of 0.
func (in *instance) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := in.http.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type health struct {
	Recovered bool    `json:"tables_recovered"`
	View      string  `json:"status_view"`
	Owned     []int32 `json:"partitions_owned"`
	Total     int32   `json:"partitions"`
}

func (in *instance) health(t *testing.T) health {
	t.Helper()
	var h health
	if code, body := in.do(t, "GET", "/health", ""); code == 200 {
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("%s health %s: %v", in.name, body, err)
		}
	}
	return h
}

// send POSTs a message and returns its id.
func (in *instance) send(t *testing.T, to string) string {
	t.Helper()
	code, body := in.do(t, "POST", "/api/v1/transports/dn/messages", fmt.Sprintf(`{"to_addr": %q, "content": "hi"}`, to))
	if code != 201 {
		t.Fatalf("%s: send answered %d %s", in.name, code, body)
	}
	var m struct {
		ID string `json:"message_id"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.ID == "" {
		t.Fatalf("%s: send answered %s (%v)", in.name, body, err)
	}
	return m.ID
}

type record struct {
	MessageID string `json:"message_id"`
	ToAddr    string `json:"to_addr"`
	Status    string `json:"status"`
	Events    []struct {
		EventType string `json:"event_type"`
	} `json:"events"`
}

// get reads a message's status record: the answer's code and the record.
func (in *instance) get(t *testing.T, id string) (int, record, string) {
	t.Helper()
	code, body := in.do(t, "GET", "/api/v1/messages/"+id, "")
	var rec record
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &rec); err != nil || rec.MessageID != id {
			t.Fatalf("%s: status of %s: %s (%v)", in.name, id, body, err)
		}
	}
	return code, rec, body
}

// waitDelivered polls until every id's status is delivered, with its ack
// and delivery report, on the instance.
func (in *instance) waitDelivered(t *testing.T, ids []string) {
	t.Helper()
	testcluster.WaitFor(t, 60*time.Second, in.name+": every message delivered", func() bool {
		for _, id := range ids {
			code, rec, _ := in.get(t, id)
			if code != 200 || rec.Status != "delivered" || len(rec.Events) != 2 {
				return false
			}
		}
		return true
	})
}

// TestSingleInstance: one instance holds every partition of its table,
// answers status queries from it (a POST is readable at once) and never
// starts a view.
func TestSingleInstance(t *testing.T) {
	c := testcluster.Start(t)
	api := startAPI(t, c, "api", transport)
	testcluster.WaitFor(t, 60*time.Second, "the table recovered, every partition held", func() bool {
		h := api.health(t)
		return h.Recovered && len(h.Owned) == partitions && h.Total == partitions
	})
	var ids []string
	for i := range 20 {
		to := fmt.Sprintf("+2782000%04d", i)
		id := api.send(t, to)
		code, rec, body := api.get(t, id)
		if code != 200 || rec.ToAddr != to || !slices.Contains([]string{"submitted", "ack", "delivered"}, rec.Status) {
			t.Fatalf("status right after the 201: %d %s", code, body)
		}
		ids = append(ids, id)
	}
	if code, body := api.do(t, "GET", "/api/v1/messages/no-such-id", ""); code != 404 || !strings.Contains(body, "no message with this id") {
		t.Errorf("unknown id: %d %s", code, body)
	}
	api.waitDelivered(t, ids)
	if h := api.health(t); h.View != "not started" || !h.Recovered {
		t.Errorf("health after the run: %+v, want no view started", h)
	}
}

// TestTwoInstances: two instances of one send API (one consumer group)
// each hold half the table's partitions and run a view for the rest. A
// message sent through either is readable on the instance that answered
// at once and on the other as soon as its view has it; when one instance
// stops, the survivor takes every partition and answers for every id,
// and sends during that rebalance are answered within their bound.
func TestTwoInstances(t *testing.T) {
	c := testcluster.Start(t)
	deploy(t, c, transport)
	a := startAPI(t, c, "a", "")
	testcluster.WaitFor(t, 60*time.Second, "a recovered", func() bool { return a.health(t).Recovered })
	b := startAPI(t, c, "b", "")
	var ha, hb health
	testcluster.WaitFor(t, 90*time.Second, "the partitions shared and both views running", func() bool {
		ha, hb = a.health(t), b.health(t)
		if !ha.Recovered || !hb.Recovered || ha.View != "running" || hb.View != "running" || len(ha.Owned) == 0 || len(hb.Owned) == 0 {
			return false
		}
		all := append(slices.Clone(ha.Owned), hb.Owned...)
		slices.Sort(all)
		return slices.Equal(all, []int32{0, 1, 2, 3})
	})
	owner := func(id string) *instance {
		if slices.Contains(ha.Owned, kafka.Partition([]byte(id), partitions)) {
			return a
		}
		return b
	}

	// Send through both until each has answered for ids of its own
	// partitions and for ids of the other's (random ids: a few sends).
	var ids []string
	seen := map[string]int{}
	for i := 0; i < 200 && (seen["a-local"] < 3 || seen["a-remote"] < 3 || seen["b-local"] < 3 || seen["b-remote"] < 3); i++ {
		in, other := a, b
		if i%2 == 1 {
			in, other = b, a
		}
		id := in.send(t, fmt.Sprintf("+2783000%04d", i))
		ids = append(ids, id)
		kind := "remote"
		if owner(id) == in {
			kind = "local"
		}
		seen[in.name+"-"+kind]++
		if code, _, body := in.get(t, id); code != 200 {
			t.Fatalf("%s: status of %s (%s partition) right after its 201: %d %s", in.name, id, kind, code, body)
		}
		testcluster.WaitFor(t, 30*time.Second, other.name+" reads "+id, func() bool {
			code, _, _ := other.get(t, id)
			return code == 200
		})
	}
	t.Logf("sends: %v", seen)
	if seen["a-local"] < 3 || seen["a-remote"] < 3 || seen["b-local"] < 3 || seen["b-remote"] < 3 {
		t.Fatalf("200 sends did not cover both kinds of partition on both instances: %v", seen)
	}
	a.waitDelivered(t, ids)
	b.waitDelivered(t, ids)

	// a stops while b keeps taking sends: every send is answered (201;
	// a send while no instance holds its partition waits out the API's
	// 5 s bound, never longer) and is readable once the rebalance
	// settled.
	stopSending := make(chan struct{})
	var mu sync.Mutex
	var during []string
	var slowest time.Duration
	var sendErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopSending:
				return
			default:
			}
			start := time.Now()
			code, body := b.do(t, "POST", "/api/v1/transports/dn/messages", fmt.Sprintf(`{"to_addr": "+2784000%04d"}`, i))
			var m struct {
				ID string `json:"message_id"`
			}
			mu.Lock()
			if code != 201 || json.Unmarshal([]byte(body), &m) != nil || time.Since(start) > 15*time.Second {
				sendErr = fmt.Errorf("send during the rebalance: %d %s after %v", code, body, time.Since(start))
				mu.Unlock()
				return
			}
			during = append(during, m.ID)
			slowest = max(slowest, time.Since(start))
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	a.d.Stop()
	testcluster.WaitFor(t, 90*time.Second, "b holds every partition", func() bool {
		h := b.health(t)
		return h.Recovered && len(h.Owned) == partitions
	})
	close(stopSending)
	wg.Wait()
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	t.Logf("%d sends during the rebalance, the slowest answered in %v", len(during), slowest)
	after := b.send(t, "+27850000000")
	if code, _, body := b.get(t, after); code != 200 {
		t.Fatalf("status right after a send to the survivor: %d %s", code, body)
	}
	b.waitDelivered(t, append(append(ids, during...), after))
	if h := b.health(t); h.View != "running" {
		t.Errorf("survivor's view: %+v, want it kept running", h)
	}
}
