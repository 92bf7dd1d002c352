package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/engine"
)

// Collector is a prometheus.Collector that reads the runner's counters at
// scrape time: nothing is counted twice and the pipelines pay nothing per
// event for metrics. Metric names start with eddy_; per-step series carry
// the labels pipeline ("namespace/name") and step (the plan node id).
type Collector struct {
	b Backend
}

// NewCollector returns a collector over b.
func NewCollector(b Backend) *Collector { return &Collector{b: b} }

var (
	stepLabels = []string{"pipeline", "step", "kind", "role"}
	pipeLabels = []string{"pipeline"}

	descStepIn      = prometheus.NewDesc("eddy_step_records_in_total", "Records that entered the step.", stepLabels, nil)
	descStepOut     = prometheus.NewDesc("eddy_step_records_out_total", "Records the step emitted.", stepLabels, nil)
	descStepErrors  = prometheus.NewDesc("eddy_step_errors_total", "Records the step failed on (see the API for the last error).", stepLabels, nil)
	descStepLatency = prometheus.NewDesc("eddy_step_latency_seconds", "Sampled processing time per record in the step.", stepLabels, nil)
	descStepState   = prometheus.NewDesc("eddy_step_state_size", "Open windows, keys or remembered ids held by the step.", stepLabels, nil)

	descPipeUp        = prometheus.NewDesc("eddy_pipeline_up", "1 when the pipeline is running, 0 when degraded (a sink keeps failing), stopped or failed.", []string{"pipeline", "state"}, nil)
	descPipeDead      = prometheus.NewDesc("eddy_pipeline_dead_letters_total", "Events that failed permanently (step error, sink refusal): sent to the errors: sinks, or dropped and logged without one.", pipeLabels, nil)
	descPipeLag       = prometheus.NewDesc("eddy_pipeline_lag_records", "WAL records not yet read by the pipeline (head - cursor).", pipeLabels, nil)
	descPipeCursor    = prometheus.NewDesc("eddy_pipeline_cursor_offset", "Next WAL offset the pipeline reads.", pipeLabels, nil)
	descPipeCommitted = prometheus.NewDesc("eddy_pipeline_committed_offset", "WAL offset of the pipeline's last checkpoint.", pipeLabels, nil)
	descPipeLate      = prometheus.NewDesc("eddy_pipeline_late_events_total", "Events that arrived after their window closed.", pipeLabels, nil)
	descPipeState     = prometheus.NewDesc("eddy_pipeline_state_size", "Sum of the steps' state sizes.", pipeLabels, nil)
	descPipeWatermark = prometheus.NewDesc("eddy_pipeline_event_time_seconds", "The pipeline's event clock (watermark), unix seconds.", pipeLabels, nil)

	descAlertsFiring = prometheus.NewDesc("eddy_alerts_firing", "Alerts currently firing.", []string{"pipeline", "severity"}, nil)
	descDevices      = prometheus.NewDesc("eddy_devices", "Devices known to the twin manager, by state.", []string{"state"}, nil)
	descLink         = prometheus.NewDesc("eddy_link_up", "1 when the uplink to the hub is connected.", []string{"state"}, nil)
	descLinkPending  = prometheus.NewDesc("eddy_link_pending_records", "WAL records the outbox has not passed yet (forwarded or skipped).", nil, nil)
	descLinkFwd      = prometheus.NewDesc("eddy_link_forwarded_records_total", "Records the hub acknowledged.", nil, nil)
	descLinkDup      = prometheus.NewDesc("eddy_link_duplicate_records_total", "Acknowledged records the hub's stream already had (resends).", nil, nil)
	descLinkErr      = prometheus.NewDesc("eddy_link_errors_total", "Failed forwarding attempts (each followed by a resend from the last acknowledged record).", nil, nil)
	descLinkRecon    = prometheus.NewDesc("eddy_link_reconnects_total", "Times the leaf connection to the hub came back.", nil, nil)
	descLinkProblems = prometheus.NewDesc("eddy_link_objects_problems", "Objects from the hub that are Failed or Rejected on this node.", nil, nil)
)

type brokerMetric struct {
	desc    *prometheus.Desc
	counter bool
	get     func(BrokerStats) int64
}

func bm(name, help string, counter bool, get func(BrokerStats) int64) brokerMetric {
	return brokerMetric{prometheus.NewDesc("eddy_broker_"+name, help, nil, nil), counter, get}
}

var brokerMetrics = []brokerMetric{
	bm("clients", "Connected MQTT clients.", false, func(s BrokerStats) int64 { return s.Clients }),
	bm("sessions", "Known MQTT sessions, connected or not.", false, func(s BrokerStats) int64 { return s.Sessions }),
	bm("subscriptions", "Client subscriptions.", false, func(s BrokerStats) int64 { return s.Subscriptions }),
	bm("retained_messages", "Retained messages.", false, func(s BrokerStats) int64 { return s.Retained }),
	bm("inflight_messages", "Unacknowledged QoS>0 messages.", false, func(s BrokerStats) int64 { return s.Inflight }),
	bm("messages_in_total", "Publishes received.", true, func(s BrokerStats) int64 { return s.MessagesIn }),
	bm("messages_out_total", "Publishes sent to clients.", true, func(s BrokerStats) int64 { return s.MessagesOut }),
	bm("logged_total", "Messages appended to the WAL.", true, func(s BrokerStats) int64 { return s.Logged }),
	bm("log_failures_total", "Publishes refused because the WAL append failed.", true, func(s BrokerStats) int64 { return s.LogFailures }),
	bm("denied_publishes_total", "Publishes refused by ACL.", true, func(s BrokerStats) int64 { return s.DeniedPublishes }),
	bm("denied_subscribes_total", "Subscriptions refused.", true, func(s BrokerStats) int64 { return s.DeniedSubscribes }),
	bm("auth_failures_total", "Connections refused for bad credentials.", true, func(s BrokerStats) int64 { return s.AuthFailures }),
	bm("backpressure_waits_total", "Publishes that waited for a slow subscriber.", true, func(s BrokerStats) int64 { return s.BackpressureWaits }),
	bm("backpressure_timeouts_total", "Publishes refused after waiting too long.", true, func(s BrokerStats) int64 { return s.BackpressureTimeouts }),
	bm("dropped_total", "Deliveries dropped by the broker.", true, func(s BrokerStats) int64 { return s.Dropped }),
	bm("received_bytes_total", "Bytes received.", true, func(s BrokerStats) int64 { return s.BytesIn }),
	bm("sent_bytes_total", "Bytes sent.", true, func(s BrokerStats) int64 { return s.BytesOut }),
	bm("slow_subscriber_drops_total", "Deliveries dropped for QoS 0 subscribers over their queue bound.", true, func(s BrokerStats) int64 { return s.SlowSubscriberDrops }),
	bm("catch_ups_total", "Times a slow QoS 1/2 subscriber was moved to replay from the log.", true, func(s BrokerStats) int64 { return s.CatchUps }),
	bm("lagging_subscribers", "Subscribers being served from the log because they fell behind.", false, func(s BrokerStats) int64 { return s.Lagging }),
	bm("replayed_total", "Messages delivered from the log to slow subscribers.", true, func(s BrokerStats) int64 { return s.Replayed }),
	bm("retention_disconnects_total", "Subscribers disconnected because retention removed messages they had not received.", true, func(s BrokerStats) int64 { return s.RetentionDisconnects }),
	bm("packets_too_large_total", "Connections closed for a packet over the maximum packet size.", true, func(s BrokerStats) int64 { return s.PacketsTooLarge }),
	bm("topics_refused_total", "Publishes and subscription filters refused for a topic over the length or level bound.", true, func(s BrokerStats) int64 { return s.TopicsRefused }),
	bm("subscriptions_refused_total", "Subscription filters refused because the session holds the maximum.", true, func(s BrokerStats) int64 { return s.SubscriptionsRefused }),
	bm("receive_maximum_exceeded_total", "MQTT 5 clients disconnected for exceeding the receive maximum.", true, func(s BrokerStats) int64 { return s.ReceiveMaximumExceeded }),
	bm("connect_timeouts_total", "Connections closed for not sending CONNECT within the connect timeout.", true, func(s BrokerStats) int64 { return s.ConnectTimeouts }),
}

type walMetric struct {
	desc    *prometheus.Desc
	counter bool
	get     func(WAL) float64
}

func wm(name, help string, counter bool, get func(WAL) float64) walMetric {
	return walMetric{prometheus.NewDesc("eddy_wal_"+name, help, nil, nil), counter, get}
}

var walMetrics = []walMetric{
	wm("first_offset", "Oldest offset kept.", false, func(w WAL) float64 { return float64(w.First) }),
	wm("last_offset", "Newest offset.", false, func(w WAL) float64 { return float64(w.Last) }),
	wm("records", "Records kept.", false, func(w WAL) float64 { return float64(w.Records) }),
	wm("size_bytes", "Bytes on disk (or encoded bytes in memory).", false, func(w WAL) float64 { return float64(w.Bytes) }),
	wm("segments", "Segment files.", false, func(w WAL) float64 { return float64(w.Segments) }),
	wm("full", "1 while appends are refused because the log is full.", false, func(w WAL) float64 { return b2f(w.Full) }),
	wm("appends_total", "Records appended.", true, func(w WAL) float64 { return float64(w.Appends) }),
	wm("batches_total", "Group commits.", true, func(w WAL) float64 { return float64(w.Batches) }),
	wm("fsyncs_total", "fsync calls.", true, func(w WAL) float64 { return float64(w.Fsyncs) }),
	wm("fsync_seconds_total", "Time spent in fsync calls.", true, func(w WAL) float64 { return w.FsyncSeconds }),
	wm("retention_removed_total", "Records removed by retention.", true, func(w WAL) float64 { return float64(w.RetentionRemoved) }),
	wm("retention_blocked_total", "Retention passes held back by a slow pipeline.", true, func(w WAL) float64 { return float64(w.RetentionBlocked) }),
	wm("retention_overrun_total", "Records removed before a pipeline read them.", true, func(w WAL) float64 { return float64(w.RetentionOverrun) }),
	wm("full_rejects_total", "Appends refused because the log was full.", true, func(w WAL) float64 { return float64(w.FullRejects) }),
	wm("corrupt_skipped_total", "Records skipped because their checksum failed.", true, func(w WAL) float64 { return float64(w.CorruptSkipped) }),
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStepIn, descStepOut, descStepErrors, descStepLatency, descStepState,
		descPipeUp, descPipeLag, descPipeCursor, descPipeCommitted, descPipeLate, descPipeDead, descPipeState, descPipeWatermark,
		descAlertsFiring, descDevices, descLink, descLinkPending,
		descLinkFwd, descLinkDup, descLinkErr, descLinkRecon, descLinkProblems} {
		ch <- d
	}
	for _, m := range brokerMetrics {
		ch <- m.desc
	}
	for _, m := range walMetrics {
		ch <- m.desc
	}
}

// latencyBuckets are the engine histogram's bucket indexes exported to
// Prometheus: upper bounds 2^i ns for even i from ~1µs to ~69s. Buckets
// in between are folded into the next exported bound.
var latencyBuckets = func() []int {
	var out []int
	for i := 10; i <= 36; i += 2 {
		out = append(out, i)
	}
	return out
}()

// Collect reads the backend and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.b.Pipelines() {
		c.collectPipeline(ch, st)
	}
	firing := map[[2]string]int{}
	for _, a := range alertList(c.b.Alerts()).Firing {
		firing[[2]string{a.Pipeline, a.Severity}]++
	}
	for k, n := range firing {
		ch <- prometheus.MustNewConstMetric(descAlertsFiring, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	devs := map[string]int{}
	for _, d := range c.b.Devices() {
		state := d.State
		if state == "" {
			state = "unknown"
		}
		devs[state]++
	}
	for state, n := range devs {
		ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(n), state)
	}
	bs := brokerStats(c.b.BrokerStats())
	for _, m := range brokerMetrics {
		t := prometheus.GaugeValue
		if m.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(m.desc, t, float64(m.get(bs)))
	}
	ws := walInfo(c.b.WALStats())
	for _, m := range walMetrics {
		t := prometheus.GaugeValue
		if m.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(m.desc, t, m.get(ws))
	}
	l := c.b.Link()
	if l.State == "" {
		l.State = LinkNone
	}
	ch <- prometheus.MustNewConstMetric(descLink, prometheus.GaugeValue, b2f(l.State == LinkConnected), l.State)
	ch <- prometheus.MustNewConstMetric(descLinkPending, prometheus.GaugeValue, float64(l.Pending))
	if l.State != LinkNone {
		ch <- prometheus.MustNewConstMetric(descLinkFwd, prometheus.CounterValue, float64(l.Forwarded))
		ch <- prometheus.MustNewConstMetric(descLinkDup, prometheus.CounterValue, float64(l.Duplicates))
		ch <- prometheus.MustNewConstMetric(descLinkErr, prometheus.CounterValue, float64(l.Errors))
		ch <- prometheus.MustNewConstMetric(descLinkRecon, prometheus.CounterValue, float64(l.Reconnects))
		ch <- prometheus.MustNewConstMetric(descLinkProblems, prometheus.GaugeValue, float64(l.Problems))
	}
}

func (c *Collector) collectPipeline(ch chan<- prometheus.Metric, st engine.Status) {
	id := st.ID
	ch <- prometheus.MustNewConstMetric(descPipeUp, prometheus.GaugeValue, b2f(st.State == engine.StateRunning), id, string(st.State))
	ch <- prometheus.MustNewConstMetric(descPipeDead, prometheus.CounterValue, float64(st.DeadLettered), id)
	ch <- prometheus.MustNewConstMetric(descPipeLag, prometheus.GaugeValue, float64(st.Lag), id)
	ch <- prometheus.MustNewConstMetric(descPipeCursor, prometheus.GaugeValue, float64(st.Cursor), id)
	ch <- prometheus.MustNewConstMetric(descPipeCommitted, prometheus.GaugeValue, float64(st.Committed), id)
	ch <- prometheus.MustNewConstMetric(descPipeLate, prometheus.CounterValue, float64(st.Late), id)
	if !st.EventTime.IsZero() {
		ch <- prometheus.MustNewConstMetric(descPipeWatermark, prometheus.GaugeValue, float64(st.EventTime.UnixMilli())/1e3, id)
	}
	var state int
	steps := append(append([]engine.StepStatus{st.Source}, st.Steps...), st.Sinks...)
	for _, s := range steps {
		lv := []string{id, s.ID, s.Kind, string(s.Role)}
		ch <- prometheus.MustNewConstMetric(descStepIn, prometheus.CounterValue, float64(s.In), lv...)
		ch <- prometheus.MustNewConstMetric(descStepOut, prometheus.CounterValue, float64(s.Out), lv...)
		ch <- prometheus.MustNewConstMetric(descStepErrors, prometheus.CounterValue, float64(s.Errors), lv...)
		if s.Role == pipeline.RoleStep {
			ch <- prometheus.MustNewConstMetric(descStepState, prometheus.GaugeValue, float64(s.StateSize), lv...)
			state += s.StateSize
		}
		if s.Latency.Count > 0 {
			ch <- latencyHistogram(s.Latency, lv)
		}
	}
	ch <- prometheus.MustNewConstMetric(descPipeState, prometheus.GaugeValue, float64(state), id)
}

// latencyHistogram converts the engine's power-of-two histogram into a
// Prometheus histogram with cumulative buckets.
func latencyHistogram(h engine.HistogramSnapshot, lv []string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	var cum uint64
	next := 0
	for i, c := range h.Buckets {
		cum += uint64(c)
		if next < len(latencyBuckets) && i == latencyBuckets[next] {
			buckets[float64(uint64(1)<<uint(i))/1e9] = cum
			next++
		}
	}
	var count uint64
	for _, c := range h.Buckets {
		count += uint64(c)
	}
	return prometheus.MustNewConstHistogram(descStepLatency, count, h.Sum.Seconds(), buckets, lv...)
}
