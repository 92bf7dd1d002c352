// Package alert is the alert step: it turns a condition on each event into
// firing and resolved notifications, per key, with Prometheus alerting
// semantics evaluated in event time.
//
// For every event the condition `when` is evaluated on the event's fields
// and the event's key moves through inactive -> pending -> firing:
//
//   - inactive -> pending when `when` first holds; started_at is that
//     event's time. With for: 0 the alert fires on the same event.
//   - pending -> firing once `when` has held for `for` (event time of the
//     current event minus started_at >= for); pending -> inactive silently
//     on the first event where `when` is false.
//   - while firing, the alert is sent again (same alert_id) on the first
//     event at least `cooldown` after the previous send; cooldown 0 sends it
//     once per episode.
//   - firing -> inactive on the first event where `when` is false: one
//     resolved notification is sent.
//
// An evaluation error (a missing field, a non-bool result) is returned to
// be counted against the step and does not change the key's state. Events
// of a key that are older than the newest event already evaluated for that
// key are ignored (counted as late): a stale reading must not resolve or
// re-fire an alert. Only notifications are emitted; input events are
// consumed.
//
// The alert_id is a hash of pipeline, rule, key and started_at, so re-sends
// share it, a new episode gets a new one, and replaying the log after a
// crash (from a snapshot or from the start) produces the same ids, which
// lets consumers de-duplicate at-least-once output.
//
// The package owns the alert state machine, its snapshot format and the
// list of firing alerts shown by the dashboard. It must not deliver
// notifications (sinks do that), read the wall clock or start goroutines.
package alert

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/expr-lang/expr/vm"
)

// Notification states, the value of the "state" field.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// DefaultSeverity is used when the spec names none.
const DefaultSeverity = "warning"

// DefaultRule is the rule name used when Config.Rule is empty.
const DefaultRule = "alert"

// TimeLayout is the format of started_at, ts and resolved_at: RFC 3339 in
// UTC with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Config configures an alert operator. Spec.When is required; everything
// else has a default.
type Config struct {
	// Pipeline is the pipeline's name; it goes into every notification and
	// into the alert_id.
	Pipeline string
	// Rule names the alert (usually the step name); it goes into every
	// notification as "rule" and into the alert_id, so two alert steps on
	// the same key never share ids. Default "alert".
	Rule string
	// Spec is the step as the user wrote it.
	Spec pipeline.AlertSpec
	// Schema is the set of fields known at this step, or nil if unknown. A
	// known schema turns unknown names in when and message into errors.
	Schema pipeline.Schema
	// Logger receives state transitions at debug level. Nil discards.
	Logger *slog.Logger
}

// Firing is one currently firing alert, as shown on the dashboard.
type Firing struct {
	// AlertID identifies the episode.
	AlertID string `json:"alert_id"`
	// Pipeline and Rule name where the alert comes from.
	Pipeline string `json:"pipeline"`
	// Rule is the alert's rule (step) name.
	Rule string `json:"rule"`
	// Key is the partition key the alert is about.
	Key string `json:"key"`
	// Severity is the configured severity.
	Severity string `json:"severity"`
	// Message is the message of the last notification sent.
	Message string `json:"message"`
	// StartedAt is when the condition first held (event time).
	StartedAt time.Time `json:"started_at"`
	// FiredAt is when the alert went from pending to firing (event time).
	FiredAt time.Time `json:"fired_at"`
	// LastSentAt is the event time of the last notification sent.
	LastSentAt time.Time `json:"last_sent_at"`
	// LastSeenAt is the event time of the last event evaluated.
	LastSeenAt time.Time `json:"last_seen_at"`
	// Values are the fields of the event that triggered the last
	// notification (a copy the caller may keep).
	Values map[string]any `json:"values"`
}

// Stats are the operator's counters since it was created.
type Stats struct {
	// Evaluated counts events whose condition was evaluated without error.
	Evaluated uint64
	// Errors counts evaluation errors (the state did not change).
	Errors uint64
	// Late counts events ignored because they were older than the key's
	// newest evaluated event.
	Late uint64
	// Fired counts pending -> firing transitions.
	Fired uint64
	// Resent counts re-sends of firing alerts after a cooldown.
	Resent uint64
	// Resolved counts firing -> resolved transitions.
	Resolved uint64
}

type phase uint8

const (
	phasePending phase = iota + 1
	phaseFiring
)

func (p phase) String() string {
	switch p {
	case phasePending:
		return "pending"
	case phaseFiring:
		return StateFiring
	}
	return "unknown"
}

// keyState is the state of one non-inactive key; inactive keys hold none.
type keyState struct {
	phase     phase
	startedAt int64
	firedAt   int64
	lastSent  int64
	lastSeen  int64
	id        string
	message   string
	values    map[string]any
}

// Operator is the alert step. Process, Snapshot and Restore are called by
// the pipeline's goroutine; Firing, Stats and StateSize may be called from
// any goroutine.
type Operator struct {
	pipeline string
	rule     string
	severity string
	forNs    int64
	coolNs   int64
	when     *pipeline.Program
	msg      *pipeline.Template // nil: default message
	log      *slog.Logger
	vm       vm.VM
	buf      []byte

	staleNs int64 // 0: never
	sweptAt int64 // event time of the last staleness sweep

	mu    sync.Mutex
	keys  map[string]*keyState
	stats Stats
}

// DefaultStaleAfter is how long a key may be silent before its alert is
// resolved as stale (Prometheus' default lookback).
const DefaultStaleAfter = 5 * time.Minute

var (
	_ operators.Operator   = (*Operator)(nil)
	_ operators.TimeDriven = (*Operator)(nil)
	_ operators.Stateful   = (*Operator)(nil)
	_ operators.Sized      = (*Operator)(nil)
)

// New compiles the condition and message of an alert step.
func New(cfg Config) (*Operator, error) {
	s := cfg.Spec
	if s.When == "" {
		return nil, fmt.Errorf("alert.when: is required; write the condition, e.g. when: \"avg_t > 30\"")
	}
	when, err := pipeline.CompileExpr(s.When, cfg.Schema)
	if err != nil {
		return nil, fmt.Errorf("alert.when: %q: %v", s.When, err)
	}
	o := &Operator{
		pipeline: cfg.Pipeline,
		rule:     cfg.Rule,
		severity: s.Severity,
		when:     when,
		log:      cfg.Logger,
		keys:     map[string]*keyState{},
	}
	if o.rule == "" {
		o.rule = DefaultRule
	}
	if o.severity == "" {
		o.severity = DefaultSeverity
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if s.For != nil {
		if s.For.Duration < 0 {
			return nil, fmt.Errorf("alert.for: %s is negative; use 0 to fire at once or e.g. for: 30s", s.For)
		}
		o.forNs = int64(s.For.Duration)
	}
	if s.Cooldown != nil {
		if s.Cooldown.Duration < 0 {
			return nil, fmt.Errorf("alert.cooldown: %s is negative; use 0 to send once or e.g. cooldown: 5m", s.Cooldown)
		}
		o.coolNs = int64(s.Cooldown.Duration)
	}
	o.staleNs = int64(DefaultStaleAfter)
	if s.StaleAfter != nil {
		if s.StaleAfter.Duration < 0 {
			return nil, fmt.Errorf("alert.staleAfter: %s is negative; use 0 to never resolve silent keys or e.g. staleAfter: 5m", s.StaleAfter)
		}
		o.staleNs = int64(s.StaleAfter.Duration)
	}
	if s.Message != "" {
		t, err := pipeline.ParseTemplate(s.Message)
		if err != nil {
			return nil, fmt.Errorf("alert.message: %v", err)
		}
		if err := t.Check(cfg.Schema); err != nil {
			return nil, fmt.Errorf("alert.message: %v", err)
		}
		o.msg = t
	}
	return o, nil
}

// OutputSchema is the schema of the notifications the alert step emits.
func OutputSchema() pipeline.Schema {
	return pipeline.Schema{
		"alert_id": "", "state": "", "severity": "", "message": "", "key": "",
		"values": map[string]any{}, "started_at": "", "ts": "", "resolved_at": "",
		"rule": "", "pipeline": "", "reason": "",
	}
}

// AlertID returns the id of the episode of rule in pipeline for key that
// started at startedAt (unix ns): 16 hex digits of a 64-bit FNV-1a hash.
func AlertID(pipelineName, rule, key string, startedAt int64) string {
	h := fnv.New64a()
	var n [8]byte
	for _, s := range []string{pipelineName, rule, key} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(startedAt))
	h.Write(n[:])
	var sum [8]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// Process evaluates the condition on ev and emits the notifications its
// key's state change calls for.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	cond, err := o.when.RunBool(&o.vm, ev.Fields)
	o.mu.Lock()
	if err != nil {
		o.stats.Errors++
		o.mu.Unlock()
		return fmt.Errorf("alert %q: key %q: when %q: %v", o.rule, ev.Key, o.when.Source, pipeline.ErrorLine(err))
	}
	o.stats.Evaluated++
	st := o.keys[ev.Key]
	if st != nil && ev.Time < st.lastSeen {
		o.stats.Late++
		o.mu.Unlock()
		return nil
	}
	var note *pipeline.Event
	switch {
	case st == nil && cond:
		st = &keyState{phase: phasePending, startedAt: ev.Time, lastSeen: ev.Time}
		st.id = AlertID(o.pipeline, o.rule, ev.Key, ev.Time)
		o.keys[ev.Key] = st
		o.log.Debug("alert pending", "rule", o.rule, "key", ev.Key, "alert_id", st.id)
		if o.forNs == 0 {
			note = o.fire(st, ev)
		}
	case st == nil:
		// inactive and false: nothing to remember.
	case st.phase == phasePending && cond:
		st.lastSeen = ev.Time
		if ev.Time-st.startedAt >= o.forNs {
			note = o.fire(st, ev)
		}
	case st.phase == phasePending:
		delete(o.keys, ev.Key)
		o.log.Debug("alert inactive", "rule", o.rule, "key", ev.Key, "alert_id", st.id)
	case st.phase == phaseFiring && cond:
		st.lastSeen = ev.Time
		if o.coolNs > 0 && ev.Time-st.lastSent >= o.coolNs {
			o.stats.Resent++
			note = o.notify(st, ev, StateFiring)
		}
	default: // firing and false
		o.stats.Resolved++
		delete(o.keys, ev.Key)
		note = o.notify(st, ev, StateResolved)
		o.log.Debug("alert resolved", "rule", o.rule, "key", ev.Key, "alert_id", st.id)
	}
	o.mu.Unlock()
	if note != nil {
		out.Emit(note)
	}
	return nil
}

// Advance resolves the firing alerts of keys that have been silent for
// StaleAfter of event time (resolved with reason "stale", from the last
// values seen) and forgets their pending ones. It sweeps the keys at most
// every StaleAfter/8 of event time, so its cost per batch is nil.
func (o *Operator) Advance(eventTime int64, out operators.Emitter) {
	if o.staleNs == 0 || eventTime-o.sweptAt < o.staleNs/8 {
		return
	}
	o.sweptAt = eventTime
	var notes []*pipeline.Event
	o.mu.Lock()
	for key, st := range o.keys {
		if eventTime-st.lastSeen < o.staleNs {
			continue
		}
		delete(o.keys, key)
		if st.phase != phaseFiring {
			continue
		}
		o.stats.Resolved++
		last := &pipeline.Event{Time: eventTime, Key: key, Fields: st.values}
		note := o.notify(st, last, StateResolved)
		note.Fields["reason"] = "stale"
		notes = append(notes, note)
		o.log.Debug("alert resolved as stale", "rule", o.rule, "key", key, "alert_id", st.id)
	}
	o.mu.Unlock()
	sort.Slice(notes, func(i, j int) bool { return notes[i].Key < notes[j].Key })
	for _, n := range notes {
		out.Emit(n)
	}
}

// fire moves st to firing on ev and returns the notification.
func (o *Operator) fire(st *keyState, ev *pipeline.Event) *pipeline.Event {
	st.phase = phaseFiring
	st.firedAt = ev.Time
	o.stats.Fired++
	o.log.Debug("alert firing", "rule", o.rule, "key", ev.Key, "alert_id", st.id)
	return o.notify(st, ev, StateFiring)
}

// notify builds a notification about st triggered by ev and records it as
// the last one sent.
func (o *Operator) notify(st *keyState, ev *pipeline.Event, state string) *pipeline.Event {
	var msg string
	if o.msg != nil {
		o.buf = o.msg.Append(o.buf[:0], ev)
		msg = string(o.buf)
	} else {
		msg = ev.Key + ": " + o.when.Source
	}
	ts := formatTime(ev.Time)
	fields := map[string]any{
		"alert_id":   st.id,
		"state":      state,
		"severity":   o.severity,
		"message":    msg,
		"key":        ev.Key,
		"values":     maps.Clone(ev.Fields),
		"started_at": formatTime(st.startedAt),
		"ts":         ts,
		"rule":       o.rule,
		"pipeline":   o.pipeline,
	}
	if state == StateResolved {
		fields["resolved_at"] = ts
		fields["reason"] = "condition" // Advance sets "stale"
	}
	st.lastSent = ev.Time
	st.message = msg
	st.values = maps.Clone(ev.Fields)
	return &pipeline.Event{Time: ev.Time, Key: ev.Key, Topic: ev.Topic, Offset: ev.Offset, Fields: fields}
}

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(TimeLayout) }

// Firing returns the alerts firing now, oldest episode first.
func (o *Operator) Firing() []Firing {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Firing
	for k, st := range o.keys {
		if st.phase != phaseFiring {
			continue
		}
		out = append(out, Firing{
			AlertID: st.id, Pipeline: o.pipeline, Rule: o.rule, Key: k, Severity: o.severity,
			Message:    st.message,
			StartedAt:  time.Unix(0, st.startedAt).UTC(),
			FiredAt:    time.Unix(0, st.firedAt).UTC(),
			LastSentAt: time.Unix(0, st.lastSent).UTC(),
			LastSeenAt: time.Unix(0, st.lastSeen).UTC(),
			Values:     maps.Clone(st.values),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Pending returns how many keys are pending (condition holds, `for` not yet
// reached).
func (o *Operator) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, st := range o.keys {
		if st.phase == phasePending {
			n++
		}
	}
	return n
}

// Stats returns the operator's counters.
func (o *Operator) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// StateSize is the number of keys that are pending or firing.
func (o *Operator) StateSize() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.keys)
}

// snapshotVersion is bumped when the snapshot format changes incompatibly.
const snapshotVersion = 1

type snapshot struct {
	Version int           `json:"version"`
	Keys    []snapshotKey `json:"keys"`
}

type snapshotKey struct {
	Key       string         `json:"key"`
	Phase     string         `json:"phase"`
	StartedAt int64          `json:"started_at"`
	FiredAt   int64          `json:"fired_at,omitempty"`
	LastSent  int64          `json:"last_sent,omitempty"`
	LastSeen  int64          `json:"last_seen"`
	Message   string         `json:"message,omitempty"`
	Values    map[string]any `json:"values,omitempty"`
}

// Snapshot returns the per-key state as JSON, keys sorted, so equal state
// gives equal bytes. Counters are not part of it.
func (o *Operator) Snapshot() ([]byte, error) {
	o.mu.Lock()
	snap := snapshot{Version: snapshotVersion, Keys: make([]snapshotKey, 0, len(o.keys))}
	for k, st := range o.keys {
		snap.Keys = append(snap.Keys, snapshotKey{
			Key: k, Phase: st.phase.String(), StartedAt: st.startedAt, FiredAt: st.firedAt,
			LastSent: st.lastSent, LastSeen: st.lastSeen, Message: st.message, Values: st.values,
		})
	}
	o.mu.Unlock()
	sort.Slice(snap.Keys, func(i, j int) bool { return snap.Keys[i].Key < snap.Keys[j].Key })
	b, err := json.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("alert %q: snapshot: %v", o.rule, err)
	}
	return b, nil
}

// Restore replaces the state with a snapshot taken by Snapshot. Empty data
// restores the empty state. alert_ids are derived again from the operator's
// pipeline and rule names, so they match the ones sent before the snapshot
// when those names are unchanged.
func (o *Operator) Restore(data []byte) error {
	keys := map[string]*keyState{}
	if len(data) > 0 {
		var snap snapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			return fmt.Errorf("alert %q: restore: snapshot is not valid: %v", o.rule, err)
		}
		if snap.Version != snapshotVersion {
			return fmt.Errorf("alert %q: restore: snapshot version %d, this build reads version %d; start from an empty state", o.rule, snap.Version, snapshotVersion)
		}
		for _, sk := range snap.Keys {
			st := &keyState{
				startedAt: sk.StartedAt, firedAt: sk.FiredAt, lastSent: sk.LastSent, lastSeen: sk.LastSeen,
				message: sk.Message, values: sk.Values,
				id: AlertID(o.pipeline, o.rule, sk.Key, sk.StartedAt),
			}
			switch sk.Phase {
			case "pending":
				st.phase = phasePending
			case StateFiring:
				st.phase = phaseFiring
			default:
				return fmt.Errorf("alert %q: restore: key %q has phase %q, want pending or firing", o.rule, sk.Key, sk.Phase)
			}
			if _, dup := keys[sk.Key]; dup {
				return fmt.Errorf("alert %q: restore: key %q appears twice in the snapshot", o.rule, sk.Key)
			}
			keys[sk.Key] = st
		}
	}
	o.mu.Lock()
	o.keys = keys
	o.mu.Unlock()
	return nil
}
