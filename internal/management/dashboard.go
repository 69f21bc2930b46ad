package management

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/vumi-kafka/vumi/topology"
)

//go:embed web
var webFS embed.FS

func dashboardHandler() http.Handler {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		files.ServeHTTP(w, r)
	})
}

// DashboardWorker is one worker on the dashboard.
type DashboardWorker struct {
	Name    string        `json:"name"`
	Kind    string        `json:"kind,omitempty"`
	Role    topology.Role `json:"role,omitempty"`
	Source  string        `json:"source"` // config, api, or heartbeat (another deployment's process)
	Dynamic bool          `json:"dynamic"`
	// HeartbeatAge is the age of the newest heartbeat of any instance, in
	// seconds; null when none was seen.
	HeartbeatAge *float64 `json:"heartbeat_age_seconds"`
	Interval     int32    `json:"heartbeat_interval_seconds"`
	// Silent: no heartbeat for two intervals (Blinkenlights' rule).
	Silent    bool                  `json:"silent"`
	Instances []InstanceView        `json:"instances"`
	Status    *StatusView           `json:"status,omitempty"`
	Here      *topology.WorkerState `json:"here,omitempty"`
	Problem   string                `json:"problem,omitempty"`
}

// DashboardChannel is one channel on the dashboard.
type DashboardChannel struct {
	ID            string `json:"id"`
	TransportName string `json:"transport_name"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
	ChannelFigures
}

// Dashboard is everything the dashboard shows.
type Dashboard struct {
	Now       time.Time          `json:"now"`
	Instance  string             `json:"instance"`
	Config    string             `json:"config"`
	Sampled   time.Time          `json:"sampled,omitzero"`
	Workers   []DashboardWorker  `json:"workers"`
	Channels  []DashboardChannel `json:"channels"`
	Failures  []FailureView      `json:"failures"`
	Statuses  []StatusView       `json:"statuses"`
	Interval  float64            `json:"sample_interval_seconds"`
	Uptime    float64            `json:"uptime_seconds"`
	Hostname  string             `json:"hostname"`
	ProcessID int                `json:"pid"`
}

// Snapshot builds the dashboard's figures.
func (s *Server) Snapshot() *Dashboard {
	now := time.Now()
	host, _ := os.Hostname()
	d := &Dashboard{Now: now.UTC(), Instance: hostID(), Config: s.rt.Config.File, Sampled: s.mon.Sampled(),
		Interval: s.cfg.SampleInterval.Seconds(), Uptime: now.Sub(s.started).Seconds(), Hostname: host, ProcessID: os.Getpid()}
	here := s.here()
	problems := s.rec.Problems()
	seen := map[string]bool{}
	add := func(w DashboardWorker) {
		if !seen[w.Name] {
			seen[w.Name] = true
			d.Workers = append(d.Workers, w)
		}
	}
	for _, spec := range s.rt.Config.Workers {
		add(DashboardWorker{Name: spec.Name, Kind: spec.Kind.Name, Role: spec.Kind.Role, Source: "config"})
	}
	entries, _ := s.control.Entries()
	for _, e := range entries {
		w := DashboardWorker{Name: e.ID, Kind: e.Kind, Source: "api", Dynamic: true, Problem: problems[e.ID]}
		if k, ok := s.rt.Deps.Kinds.Kind(e.Kind); ok {
			w.Role = k.Role
		}
		add(w)
	}
	for _, name := range s.mon.HeartbeatWorkers() {
		add(DashboardWorker{Name: name, Source: "heartbeat"})
	}
	sort.SliceStable(d.Workers, func(i, j int) bool { return d.Workers[i].Name < d.Workers[j].Name })
	for i := range d.Workers {
		w := &d.Workers[i]
		w.Instances = s.mon.Instances(w.Name)
		if st, ok := here[w.Name]; ok {
			w.Here = &st
		}
		for _, in := range w.Instances {
			if w.HeartbeatAge == nil || in.AgeSeconds < *w.HeartbeatAge {
				age := in.AgeSeconds
				w.HeartbeatAge = &age
				w.Interval = in.IntervalSeconds
			}
		}
		// Not every kind heartbeats (the SMSC simulator does not): a
		// worker never heard from is shown as such, not flagged.
		if w.HeartbeatAge != nil {
			iv := float64(w.Interval)
			if iv <= 0 {
				iv = 10
			}
			w.Silent = *w.HeartbeatAge > 2*iv
		}
		if sts := s.mon.Statuses(w.Name); len(sts) > 0 {
			w.Status = &sts[0]
		}
	}
	for _, v := range s.views(TypeChannel) {
		if v.TransportName == "" {
			continue
		}
		d.Channels = append(d.Channels, DashboardChannel{ID: v.ID, TransportName: v.TransportName, Kind: v.Kind, Source: v.Source,
			ChannelFigures: s.mon.Channel(v.TransportName, v.ID)})
	}
	d.Statuses, d.Failures = s.mon.Recent()
	if d.Workers == nil {
		d.Workers = []DashboardWorker{}
	}
	if d.Channels == nil {
		d.Channels = []DashboardChannel{}
	}
	return d
}

func (s *Server) dashboardJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, "dashboard", s.Snapshot())
}

// dashboardStream sends a snapshot as a server-sent event every sample
// interval until the client goes away.
func (s *Server) dashboardStream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported", nil)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	for {
		b, err := json.Marshal(s.Snapshot())
		if err != nil {
			return
		}
		if _, err := w.Write([]byte("event: snapshot\ndata: ")); err != nil {
			return
		}
		w.Write(b)
		w.Write([]byte("\n\n"))
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
