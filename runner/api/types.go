package api

import (
	"sort"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Info is GET /api/v1/info: what the caller may do on this runner.
type Info struct {
	// Role is the caller's role: "admin" or "read".
	Role string `json:"role"`
	// ReadOnly is true on controller-managed edges.
	ReadOnly bool `json:"readOnly"`
	// AuthRequired tells whether requests need a bearer token.
	AuthRequired bool `json:"authRequired"`
	// Time is the runner's clock.
	Time time.Time `json:"time"`
}

// PipelineList is GET /api/v1/pipelines.
type PipelineList struct {
	Items []engine.Status `json:"items"`
}

// PipelineDetail is GET /api/v1/pipelines/{ns}/{name}.
type PipelineDetail struct {
	// Status holds the counters of the pipeline and each step.
	Status engine.Status `json:"status"`
	// Plan is the compiled plan.
	Plan *pipeline.Plan `json:"plan"`
	// Source is the YAML the pipeline was loaded from (may hold other
	// pipelines of the same file).
	Source string `json:"source,omitempty"`
	// Firing lists this pipeline's alerts that are firing.
	Firing []Alert `json:"firing"`
}

// ApplyResult is the answer to POST/PUT of pipelines.
type ApplyResult struct {
	// Applied lists the ids of the pipelines created or replaced.
	Applied []string `json:"applied"`
}

// ValidateResult is the answer to POST /api/v1/validate.
type ValidateResult struct {
	// Valid is true when every document compiled.
	Valid bool `json:"valid"`
	// Pipelines lists the ids of the compiled pipelines.
	Pipelines []string `json:"pipelines,omitempty"`
	// Errors lists problems, each with file:line and field path.
	Errors []Problem `json:"errors,omitempty"`
}

// Problem is one error in a submitted document.
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// Alert is one alert notification.
type Alert struct {
	Pipeline string         `json:"pipeline"`
	AlertID  string         `json:"alertId"`
	Rule     string         `json:"rule,omitempty"`
	Key      string         `json:"key,omitempty"`
	State    string         `json:"state"`
	Severity string         `json:"severity,omitempty"`
	Message  string         `json:"message,omitempty"`
	Time     time.Time      `json:"time"`
	Fields   map[string]any `json:"fields,omitempty"`
}

// AlertList is GET /api/v1/alerts.
type AlertList struct {
	// Firing are the alerts whose latest notification is "firing".
	Firing []Alert `json:"firing"`
	// History are recent notifications, newest first.
	History []Alert `json:"history"`
}

// DeviceList is GET /api/v1/devices.
type DeviceList struct {
	Items []*twin.DeviceRecord `json:"items"`
}

// BrokerStats mirrors broker.Stats.
type BrokerStats struct {
	Clients              int64 `json:"clients"`
	Sessions             int64 `json:"sessions"`
	Subscriptions        int64 `json:"subscriptions"`
	InlineSubs           int64 `json:"inlineSubscriptions"`
	Retained             int64 `json:"retained"`
	Inflight             int64 `json:"inflight"`
	MessagesIn           int64 `json:"messagesIn"`
	MessagesOut          int64 `json:"messagesOut"`
	Logged               int64 `json:"logged"`
	LogFailures          int64 `json:"logFailures"`
	DeniedPublishes      int64 `json:"deniedPublishes"`
	DeniedSubscribes     int64 `json:"deniedSubscribes"`
	AuthFailures         int64 `json:"authFailures"`
	BackpressureWaits    int64 `json:"backpressureWaits"`
	BackpressureTimeouts int64 `json:"backpressureTimeouts"`
	Dropped              int64 `json:"dropped"`
	BytesIn              int64 `json:"bytesIn"`
	BytesOut             int64 `json:"bytesOut"`

	SlowSubscriberDrops  int64 `json:"slowSubscriberDrops"`
	CatchUps             int64 `json:"catchUps"`
	Lagging              int64 `json:"lagging"`
	Replayed             int64 `json:"replayed"`
	RetentionDisconnects int64 `json:"retentionDisconnects"`

	PacketsTooLarge        int64 `json:"packetsTooLarge"`
	TopicsRefused          int64 `json:"topicsRefused"`
	SubscriptionsRefused   int64 `json:"subscriptionsRefused"`
	ReceiveMaximumExceeded int64 `json:"receiveMaximumExceeded"`
	ConnectTimeouts        int64 `json:"connectTimeouts"`
}

// MQTTClient mirrors broker.ClientInfo.
type MQTTClient struct {
	ID              string   `json:"id"`
	Username        string   `json:"username,omitempty"`
	Remote          string   `json:"remote,omitempty"`
	Listener        string   `json:"listener,omitempty"`
	ProtocolVersion byte     `json:"protocolVersion"`
	Connected       bool     `json:"connected"`
	CleanSession    bool     `json:"cleanSession"`
	Subscriptions   []string `json:"subscriptions"`
	Inflight        int      `json:"inflight"`
	PendingWrites   int      `json:"pendingWrites"`
	Dropped         int64    `json:"dropped"`
	Lagging         bool     `json:"lagging"`
	LagFrom         uint64   `json:"lagFrom,omitempty"`
}

// Topic mirrors broker.TopicInfo.
type Topic struct {
	Name          string `json:"name"`
	Subscribers   int    `json:"subscribers"`
	Retained      bool   `json:"retained"`
	RetainedBytes int    `json:"retainedBytes"`
}

// Broker is GET /api/v1/broker.
type Broker struct {
	Stats   BrokerStats  `json:"stats"`
	Clients []MQTTClient `json:"clients"`
	Topics  []Topic      `json:"topics"`
}

// WAL is GET /api/v1/wal: the log's size, offsets and retention counters.
type WAL struct {
	First            uint64            `json:"first"`
	Last             uint64            `json:"last"`
	Records          uint64            `json:"records"`
	Bytes            int64             `json:"bytes"`
	Segments         int               `json:"segments"`
	Appends          uint64            `json:"appends"`
	Batches          uint64            `json:"batches"`
	Fsyncs           uint64            `json:"fsyncs"`
	FsyncSeconds     float64           `json:"fsyncSeconds"`
	RetentionRemoved uint64            `json:"retentionRemoved"`
	RetentionBlocked uint64            `json:"retentionBlocked"`
	RetentionOverrun uint64            `json:"retentionOverrun"`
	FullRejects      uint64            `json:"fullRejects"`
	Full             bool              `json:"full"`
	CorruptSkipped   uint64            `json:"corruptSkipped"`
	Consumers        map[string]uint64 `json:"consumers"`
}

func brokerStats(s broker.Stats) BrokerStats {
	return BrokerStats(s)
}

func clients(in []broker.ClientInfo) []MQTTClient {
	out := make([]MQTTClient, 0, len(in))
	for _, c := range in {
		subs := c.Subscriptions
		if subs == nil {
			subs = []string{}
		}
		out = append(out, MQTTClient{ID: c.ID, Username: c.Username, Remote: c.Remote, Listener: c.Listener,
			ProtocolVersion: c.ProtocolVersion, Connected: c.Connected, CleanSession: c.CleanSession,
			Subscriptions: subs, Inflight: c.Inflight, PendingWrites: c.PendingWrites,
			Dropped: c.Dropped, Lagging: c.Lagging, LagFrom: c.LagFrom})
	}
	return out
}

func topics(in []broker.TopicInfo) []Topic {
	out := make([]Topic, 0, len(in))
	for _, t := range in {
		out = append(out, Topic(t))
	}
	return out
}

func walInfo(s wal.Stats) WAL {
	w := WAL{First: s.First, Last: s.Last, Bytes: s.Bytes, Segments: s.Segments, Appends: s.Appends,
		Batches: s.Batches, Fsyncs: s.Fsyncs, FsyncSeconds: s.FsyncTime.Seconds(), RetentionRemoved: s.RetentionRemoved, RetentionBlocked: s.RetentionBlocked,
		RetentionOverrun: s.RetentionOverrun, FullRejects: s.FullRejects, Full: s.Full, CorruptSkipped: s.CorruptSkipped,
		Consumers: s.Consumers}
	if s.Last+1 > s.First {
		w.Records = s.Last + 1 - s.First
	}
	if w.Consumers == nil {
		w.Consumers = map[string]uint64{}
	}
	return w
}

// alertOf turns an engine alert record into an Alert.
func alertOf(r engine.AlertRecord) Alert {
	str := func(k string) string {
		s, _ := r.Fields[k].(string)
		return s
	}
	return Alert{Pipeline: r.Pipeline, AlertID: str("alert_id"), Rule: str("rule"), Key: str("key"),
		State: str("state"), Severity: str("severity"), Message: str("message"), Time: r.Time, Fields: r.Fields}
}

// alertList splits recent notifications into the firing set (latest
// notification per alert id is "firing") and the history, newest first.
func alertList(recs []engine.AlertRecord) AlertList {
	l := AlertList{Firing: []Alert{}, History: make([]Alert, 0, len(recs))}
	latest := map[string]int{} // pipeline + alert id -> index in History
	for i := len(recs) - 1; i >= 0; i-- {
		a := alertOf(recs[i])
		l.History = append(l.History, a)
		k := a.Pipeline + "\x00" + a.AlertID
		if _, ok := latest[k]; !ok {
			latest[k] = len(l.History) - 1
		}
	}
	for _, i := range latest {
		if a := l.History[i]; a.State == "firing" {
			l.Firing = append(l.Firing, a)
		}
	}
	sort.Slice(l.Firing, func(i, j int) bool {
		a, b := l.Firing[i], l.Firing[j]
		if ra, rb := severityRank(a.Severity), severityRank(b.Severity); ra != rb {
			return ra < rb
		}
		if !a.Time.Equal(b.Time) {
			return a.Time.After(b.Time)
		}
		return a.AlertID < b.AlertID
	})
	return l
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 0
	case "error":
		return 1
	case "warning":
		return 2
	case "info":
		return 3
	}
	return 4
}
