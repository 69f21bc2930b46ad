package aggregator

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/internal/metrics"
	"github.com/vumi-kafka/vumi/schemas"
)

func TestStateCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *State
	}{
		{"empty", &State{}},
		{"closed, no windows", &State{Aggs: aggSum, HasClosed: true, Closed: 1_700_000_000, LastData: 1_699_999_995}},
		{"windows", &State{Aggs: aggAll, Closed: -5, LastData: 10, Windows: []Window{
			{Start: 5, Aggs: aggAvg | aggMax, Count: 3, Sum: 1.5, Min: -2, Max: math.MaxFloat64, Last: 0.25, LastTS: 5_999_999},
			{Start: 10, Aggs: aggSum, Count: 1, Sum: 7, Min: 7, Max: 7, Last: 7, LastTS: 10_000_000},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := StateCodec{}.Encode(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			got, err := StateCodec{}.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.st) {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.st)
			}
		})
	}
}

func TestStateCodecRejects(t *testing.T) {
	good := AppendState(nil, &State{Windows: []Window{{Start: 5, Aggs: aggSum, Count: 1}}})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"short", []byte{1, 0}},
		{"version", append([]byte{9}, good[1:]...)},
		{"flags", append([]byte{1, 7}, good[2:]...)},
		{"aggregators", append([]byte{1, 0, 0xff}, good[3:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"huge window count", []byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := DecodeState(tc.b, new(State)); !errors.Is(err, ErrBadState) {
				t.Fatalf("got %v, want ErrBadState", err)
			}
		})
	}
	if _, err := (StateCodec{}).Encode("not a state"); err == nil {
		t.Error("encoded a string")
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(AppendState(nil, &State{}))
	f.Add(AppendState(nil, &State{HasClosed: true, Aggs: aggAll, Windows: []Window{{Start: 1, Count: 2, Aggs: aggMin}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s State
		if err := DecodeState(b, &s); err != nil {
			return
		}
		// What decodes must survive a round trip (the bytes may differ:
		// varints can be written longer than needed).
		var again State
		if err := DecodeState(AppendState(nil, &s), &again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(s), normalize(again)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", s, again)
		}
	})
}

func TestParamsAdd(t *testing.T) {
	p := Params{Bucket: 5, Lateness: 5 * time.Second, ForgetAfter: time.Minute, EmitEmpty: true}
	dp := func(sec float64, aggs ...string) *schemas.MetricDatapoint {
		if len(aggs) == 0 {
			aggs = []string{"sum"}
		}
		return &schemas.MetricDatapoint{Name: "m", Aggregators: aggs, Timestamp: at(sec), Value: 1}
	}
	closed := &State{HasClosed: true, Closed: t0.Unix(), LastData: t0.Unix()}
	for _, tc := range []struct {
		name string
		st   *State
		dp   *schemas.MetricDatapoint
		now  float64
		want Outcome
	}{
		{"new metric", nil, dp(1), 2, Accepted},
		{"new metric, window long due", nil, dp(-30), 2, Accepted},
		{"new metric, older than forget_after", nil, dp(-70), 2, Late},
		{"window emitted", closed, dp(4), 20, Late},
		{"window after the emitted one", closed, dp(5), 20, Accepted},
		{"unknown aggregators only", nil, dp(1, "median"), 2, Invalid},
		{"unknown aggregator with a known one", nil, dp(1, "median", "max"), 2, Accepted},
		{"far future", nil, dp(1000), 2, Invalid},
		{"NaN", nil, &schemas.MetricDatapoint{Name: "m", Aggregators: []string{"sum"}, Timestamp: at(1), Value: math.NaN()}, 2, Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st *State
			if tc.st != nil {
				cp := *tc.st
				st = &cp
			}
			if _, got := p.Add(st, tc.dp, at(tc.now)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		wantErr string
		check   func(*Config) bool
	}{
		{yaml: "{}", check: func(c *Config) bool {
			p := c.Params()
			return p.Bucket == 5 && p.Lateness == 5*time.Second && p.EmitEmpty && p.ForgetAfter == 10*time.Minute && c.TickInterval.D() == 500*time.Millisecond
		}},
		{yaml: "bucket_size: 10\nlag: 2.5", check: func(c *Config) bool { return c.Params().Bucket == 10 && c.Lateness.D() == 2500*time.Millisecond }},
		{yaml: "bucket_size: 1m\nlateness: 30s\nemit_empty: false", check: func(c *Config) bool { return c.Params().Bucket == 60 && !c.Params().EmitEmpty }},
		{yaml: "bucket_size: 1.5", wantErr: "key bucket_size"},
		{yaml: "bucket_size: 0.5", wantErr: "key bucket_size"},
		{yaml: "lag: 1\nlateness: 2", wantErr: "key lag"},
		{yaml: "lateness: -1", wantErr: "key lateness"},
		{yaml: "tick_interval: 1ms", wantErr: "key tick_interval"},
		{yaml: "forget_after: 3s", wantErr: "key forget_after"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.yaml), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(&c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

func TestSecondsRejects(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte("bucket_size: five"), &c); err == nil {
		t.Fatal("bucket_size: five accepted")
	}
	if err := yaml.Unmarshal([]byte("bucket_size: [5]"), &c); err == nil {
		t.Fatal("bucket_size: [5] accepted")
	}
}

// normalize makes NaNs comparable (a NaN is not DeepEqual to itself).
func normalize(s State) State {
	fix := func(f float64) float64 {
		if math.IsNaN(f) {
			return 0
		}
		return f
	}
	ws := make([]Window, len(s.Windows))
	for i, w := range s.Windows {
		w.Sum, w.Min, w.Max, w.Last = fix(w.Sum), fix(w.Min), fix(w.Max), fix(w.Last)
		ws[i] = w
	}
	s.Windows = ws
	return s
}

// Datapoints standing for several values (a metric's mean over one second,
// with their count) aggregate as those values published one by one would;
// a datapoint without a count (older writers: 0 here) counts as one value.
func TestParamsAddWeightsByCount(t *testing.T) {
	p := Params{Bucket: 5, Lateness: 5 * time.Second, ForgetAfter: time.Minute}
	values := [][]float64{{0.1, 0.2, 0.3}, {0.5}, {0.05, 0.15}}
	var one, combined *State
	var n int64
	for i, sec := range values {
		sum := 0.0
		for _, v := range sec {
			one, _ = p.Add(one, &schemas.MetricDatapoint{Name: "m", Aggregators: []string{"avg"}, Timestamp: at(float64(i)), Value: v, Count: 1}, at(3))
			sum += v
			n++
		}
		count := int64(len(sec))
		if count == 1 {
			count = 0 // as decoded from a record written before count existed
		}
		var out Outcome
		combined, out = p.Add(combined, &schemas.MetricDatapoint{Name: "m", Aggregators: []string{"avg"}, Timestamp: at(float64(i)), Value: sum / float64(len(sec)), Count: count}, at(3))
		if out != Accepted {
			t.Fatalf("second %d: %v", i, out)
		}
	}
	a, b := one.Windows[0], combined.Windows[0]
	if a.Count != n || b.Count != n {
		t.Fatalf("counts %d and %d, want %d", a.Count, b.Count, n)
	}
	for _, agg := range []metrics.Aggregator{metrics.Avg, metrics.Sum} {
		if x, y := a.value(agg), b.value(agg); math.Abs(x-y) > 1e-12 {
			t.Errorf("%s: %v one by one, %v combined", agg, x, y)
		}
	}
	if got := b.value(metrics.Avg); math.Abs(got-1.3/6) > 1e-12 {
		t.Errorf("avg %v, want %v", got, 1.3/6)
	}
}
