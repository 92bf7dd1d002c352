// Package pipeline holds Eddy's shared vocabulary: the Pipeline resource that
// users write in YAML (and that is also the CRD schema), its strict decoder
// with file:line errors, validation, and the compiler that turns a spec into a
// Plan. It is pure: no I/O beyond the bytes handed in, no goroutines, no
// network. The runner, the controller and the Beam translator all start from a
// Plan built here.
package pipeline

// APIVersion is the group/version of the Pipeline kind.
const APIVersion = "eddy.dev/v1alpha1"

// Kind is the kind name of a pipeline resource.
const Kind = "Pipeline"

// Pipeline is a declared stream computation: one source, a chain of steps and
// one or more sinks.
type Pipeline struct {
	// APIVersion must be eddy.dev/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind must be Pipeline.
	Kind string `json:"kind"`
	// Metadata names the pipeline.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is what the pipeline computes.
	Spec Spec `json:"spec"`
}

// ObjectMeta is the subset of Kubernetes object metadata a pipeline uses.
type ObjectMeta struct {
	// Name identifies the pipeline; a DNS label (a-z, 0-9, '-', at most 63).
	Name string `json:"name"`
	// Namespace defaults to "default".
	Namespace string `json:"namespace,omitempty"`
	// Labels are free-form and do not change what the pipeline computes.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are free-form and do not change what the pipeline computes.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Generation is set by Kubernetes; Eddy uses it as the plan version.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is set by Kubernetes and ignored by the compiler.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// UID is set by Kubernetes and ignored by the compiler.
	UID string `json:"uid,omitempty"`
}

// Spec is the body of a pipeline.
type Spec struct {
	// NodeSelector picks the edge nodes that run the pipeline (used by the
	// controller; a local `eddy run` ignores it).
	NodeSelector *LabelSelector `json:"nodeSelector,omitempty"`
	// Source is where events come from.
	Source Source `json:"source"`
	// EventTime is an expression giving each event's time: a unix timestamp
	// (seconds below 1e11, milliseconds below 1e14, microseconds below 1e17,
	// else nanoseconds) or an RFC 3339 string. Absent means the time the
	// broker accepted the message. If it fails on an event, or gives a time
	// outside 1678..2262 (what nanoseconds since 1970 can hold) or more
	// than an hour ahead of the runner's clock, the arrival time is used
	// and the error is counted on the source.
	EventTime string `json:"eventTime,omitempty"`
	// Key is an expression giving each event's partition key (windows,
	// alerts, dedupe and throttle are per key). Absent means the MQTT topic.
	Key string `json:"key,omitempty"`
	// Steps run in order on every event.
	Steps []Step `json:"steps,omitempty"`
	// Sinks receive every event that leaves the last step.
	Sinks []Sink `json:"sinks"`
	// Late receives events that arrive after their window closed (beyond
	// allowedLateness). They are always counted; without a late sink they
	// are also logged.
	Late []Sink `json:"late,omitempty"`
	// Errors receive events that failed permanently: a step's expression
	// failed on them, or a sink refused them for good (a value JSON cannot
	// encode such as NaN or ±Inf, a rendered topic that is not a valid
	// topic name). Each arrives as a dead-letter record with the pipeline,
	// the step or sink, the reason, the log offset and the event; the
	// pipeline moves on. Without an errors sink such events are counted
	// and logged (rate-limited). Errors a retry can fix (a busy broker, a
	// full disk) are retried with backoff instead, and the pipeline shows
	// as degraded meanwhile.
	Errors []Sink `json:"errors,omitempty"`
	// IdleTimeout is how long the source may be silent before the watermark
	// starts to follow the processing clock, so that idle keys' windows
	// still close. Default: the largest window size (or session gap) plus
	// allowed lateness; 30s for a pipeline without windows.
	IdleTimeout *Duration `json:"idleTimeout,omitempty"`
}

// LabelSelector is Kubernetes' label selector.
type LabelSelector struct {
	// MatchLabels requires each label to have the given value.
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// MatchExpressions are set-based requirements.
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one set-based label requirement.
type LabelSelectorRequirement struct {
	// Key is the label key.
	Key string `json:"key"`
	// Operator is In, NotIn, Exists or DoesNotExist.
	Operator string `json:"operator"`
	// Values for In and NotIn.
	Values []string `json:"values,omitempty"`
}

// Source says where a pipeline reads events. Exactly one field is set.
type Source struct {
	// MQTT reads messages published to the edge broker.
	MQTT *MQTTSource `json:"mqtt,omitempty"`
	// Stream reads one of the runner's internal streams: twin,
	// device_state or membership.
	Stream *StreamSource `json:"stream,omitempty"`
}

// MQTTSource reads messages from the embedded broker's log.
type MQTTSource struct {
	// Topic is an MQTT topic filter; + and # wildcards are allowed.
	Topic string `json:"topic"`
	// Format is how payloads are decoded: json (an object, or an array of
	// objects), kubeedge (mapper data/update and twin/update messages) or
	// raw (the payload as the string field "payload"). Default json.
	Format string `json:"format,omitempty"`
	// QoS is the quality of service the pipeline asks for (0, 1 or 2);
	// it is recorded in the plan for sources outside the edge broker.
	QoS int `json:"qos,omitempty"`
}

// StreamSource reads an internal stream of the runner.
type StreamSource struct {
	// Name is twin, device_state or membership.
	Name string `json:"name"`
}

// Step is one operator. Exactly one of the operator fields is set.
type Step struct {
	// Name overrides the step's generated name (kind-index, e.g. filter-0).
	Name string `json:"name,omitempty"`
	// Filter keeps the events for which the expression is true. An event on
	// which the expression fails (e.g. a missing field) is dropped and the
	// error is counted on the step.
	Filter *string `json:"filter,omitempty"`
	// Map adds or overwrites fields; each value is an expression evaluated
	// on the incoming event (expressions do not see each other's results).
	Map map[string]string `json:"map,omitempty"`
	// Window groups events per key into windows; it must be followed by an
	// aggregate step.
	Window *WindowSpec `json:"window,omitempty"`
	// Aggregate computes one output event per key and window, with fields
	// key, window_start, window_end and one field per entry, e.g.
	// avg_t: "avg(temperature)". Functions: count, sum, avg, min, max,
	// first, last, stddev, distinct_count, median, p50, p90, p95, p99.
	Aggregate map[string]string `json:"aggregate,omitempty"`
	// Alert turns a condition into firing / resolved notifications.
	Alert *AlertSpec `json:"alert,omitempty"`
	// Dedupe drops events whose dedupe key was seen within a horizon.
	Dedupe *DedupeSpec `json:"dedupe,omitempty"`
	// Throttle passes at most Max events per key per interval.
	Throttle *ThrottleSpec `json:"throttle,omitempty"`
	// Select keeps only the named fields.
	Select []string `json:"select,omitempty"`
	// Drop removes the named fields.
	Drop []string `json:"drop,omitempty"`
	// Enrich adds values from the runner's state to each event.
	Enrich *EnrichSpec `json:"enrich,omitempty"`
}

// WindowSpec is one of tumbling, sliding, session or count.
type WindowSpec struct {
	// Tumbling windows of this size, aligned to the unix epoch.
	Tumbling *Duration `json:"tumbling,omitempty"`
	// Sliding windows of Size, one starting every Every.
	Sliding *SlidingSpec `json:"sliding,omitempty"`
	// Session windows close after Gap without events for the key.
	Session *SessionSpec `json:"session,omitempty"`
	// Count windows emit after this many events per key.
	Count *int `json:"count,omitempty"`
	// AllowedLateness is how far behind the newest event time an event may
	// be and still be counted in its window. Default 0.
	AllowedLateness *Duration `json:"allowedLateness,omitempty"`
}

// SlidingSpec configures sliding windows.
type SlidingSpec struct {
	// Size is the length of each window.
	Size Duration `json:"size"`
	// Every is how often a new window starts; it must divide Size.
	Every Duration `json:"every"`
}

// SessionSpec configures session windows.
type SessionSpec struct {
	// Gap of inactivity after which a key's session closes.
	Gap Duration `json:"gap"`
}

// AlertSpec follows Prometheus alerting semantics.
type AlertSpec struct {
	// When is the condition, an expression on each event.
	When string `json:"when"`
	// For is how long the condition must hold (in event time) before the
	// alert fires. 0 fires at once.
	For *Duration `json:"for,omitempty"`
	// Cooldown is how often a still-firing alert is sent again. 0 sends it
	// once per episode. Resolved is always sent once.
	Cooldown *Duration `json:"cooldown,omitempty"`
	// Severity is a free label, e.g. info, warning, critical. Default warning.
	Severity string `json:"severity,omitempty"`
	// Message is a template; {{field}} is replaced by the event's field.
	Message string `json:"message,omitempty"`
	// StaleAfter resolves a firing alert (and forgets a pending one) whose
	// key has had no event for this long in event time, as Prometheus does
	// when a series disappears. Resolved notifications carry reason:
	// condition (the condition became false) or stale. Default 5m; 0 keeps
	// the alerts of silent keys forever.
	StaleAfter *Duration `json:"staleAfter,omitempty"`
}

// DedupeSpec configures the dedupe step.
type DedupeSpec struct {
	// Key is an expression; events with an equal key within the horizon
	// are dropped. Default: the whole event.
	Key string `json:"key,omitempty"`
	// Within is the horizon, in event time.
	Within Duration `json:"within"`
}

// ThrottleSpec configures the throttle step.
type ThrottleSpec struct {
	// Max events passed per key and interval.
	Max int `json:"max"`
	// Per is the interval, in event time, aligned to the unix epoch.
	Per Duration `json:"per"`
}

// EnrichSpec adds runner state to events.
type EnrichSpec struct {
	// Twin lists the device twin properties to add; each becomes a field
	// named twin_<property> holding the reported value (or the desired
	// value when nothing was reported). The device is the event's key.
	Twin []string `json:"twin,omitempty"`
}

// Sink is one destination. Exactly one field is set.
type Sink struct {
	// Name overrides the sink's generated name (kind-index).
	Name string `json:"name,omitempty"`
	// MQTT publishes each event as JSON through the edge broker.
	MQTT *MQTTSink `json:"mqtt,omitempty"`
	// File appends each event as a JSON line.
	File *FileSink `json:"file,omitempty"`
	// Log writes each event as a structured log line.
	Log *LogSink `json:"log,omitempty"`
}

// MQTTSink publishes events through the edge broker.
type MQTTSink struct {
	// Topic is a template: {{field}} is replaced by the event's field.
	Topic string `json:"topic"`
	// QoS of the published message (0, 1 or 2).
	QoS int `json:"qos,omitempty"`
	// Retain sets the MQTT retain flag.
	Retain bool `json:"retain,omitempty"`
	// AllowLoop declares that this sink publishes, on purpose, to topics
	// that a pipeline on the same runner reads (its own source or
	// another's), e.g. a state machine whose filter ends the loop.
	// Without it such a feedback loop is refused: at compile time for the
	// pipeline's own source, when applied for a cycle across pipelines.
	AllowLoop bool `json:"allowLoop,omitempty"`
}

// FileSink appends JSON Lines to a file; it is flushed and fsynced at each
// checkpoint.
type FileSink struct {
	// Path of the file; parent directories are created.
	Path string `json:"path"`
}

// LogSink writes events to the runner's log.
type LogSink struct {
	// Level is debug, info, warn or error. Default info.
	Level string `json:"level,omitempty"`
}
