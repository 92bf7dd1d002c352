package engine

import (
	"encoding/json"
	"math"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// deadLetter handles an event that failed permanently at step or sink at:
// it goes to the errors: sinks as a dead-letter record, or, when there
// are none, is counted and logged (rate-limited). Either way the pipeline
// moves on.
func (r *run) deadLetter(at string, ev *pipeline.Event, err error) {
	r.dead++
	if len(r.errs) == 0 {
		r.warnDropped("event failed permanently and was dropped; add an errors: sink to keep such events", at, ev, err)
		return
	}
	dl := deadLetterEvent(r.plan.ID(), at, ev, err)
	for _, s := range r.errs {
		if !s.write(dl) {
			return
		}
	}
}

// warnDropped logs a dropped event, at most once per ErrorLogInterval, with
// how many were not logged since.
func (r *run) warnDropped(msg, at string, ev *pipeline.Event, err error) {
	if ok, suppressed := r.errLog.allow(r.clock.Now()); ok {
		r.logger.Warn(msg, "step", at, "offset", ev.Offset, "topic", ev.Topic, "key", ev.Key, "err", err,
			"notLoggedSince", suppressed)
	}
}

// deadLetterEvent builds the record an errors: sink receives (see the
// pipeline.Dead* field names). It always encodes as JSON: NaN and ±Inf in
// the failed event are written as strings.
func deadLetterEvent(pipelineID, at string, ev *pipeline.Event, err error) *pipeline.Event {
	var body any
	switch {
	case ev.Raw != nil && json.Valid(ev.Raw):
		// Unchanged since decoding: the whole payload, even when the
		// pipeline decoded only the fields it reads.
		body = json.RawMessage(ev.Raw)
	case ev.Fields != nil:
		body = sanitize(map[string]any(ev.Fields))
	default:
		body = string(ev.Raw)
	}
	f := map[string]any{
		pipeline.DeadPipeline: pipelineID,
		pipeline.DeadStep:     at,
		pipeline.DeadError:    err.Error(),
		pipeline.DeadOffset:   ev.Offset,
		pipeline.DeadTopic:    ev.Topic,
		pipeline.DeadKey:      ev.Key,
		pipeline.DeadTime:     time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano),
		pipeline.DeadEvent:    body,
	}
	return &pipeline.Event{Time: ev.Time, Key: ev.Key, Topic: ev.Topic, Offset: ev.Offset, Fields: f}
}

// sanitize returns v with non-finite floats replaced by their names, in a
// copy (the event is not changed).
func sanitize(v any) any {
	switch x := v.(type) {
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "+Inf"
		case math.IsInf(x, -1):
			return "-Inf"
		}
		return x
	case float32:
		return sanitize(float64(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = sanitize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sanitize(e)
		}
		return out
	}
	return v
}

// logLimiter lets one log line through per interval and counts the rest.
type logLimiter struct {
	every      time.Duration
	next       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back
// since the last one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed = 0
	l.next = now.Add(l.every)
	return true, n
}
