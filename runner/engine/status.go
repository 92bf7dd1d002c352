package engine

import (
	"sort"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// StreamTopic is the log topic of a runner-internal stream (twin,
// device_state, membership). The runner appends stream events there as JSON.
func StreamTopic(name string) string { return pipeline.StreamTopic(name) }

// Status is a snapshot of one pipeline. Counters and the cursor are
// published together by the pipeline after each batch, so they describe
// the same moment.
type Status struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Hash      string `json:"hash"`
	Version   int64  `json:"version"`
	State     State  `json:"state"`
	// Error is why the pipeline failed, or the error it keeps retrying
	// while degraded.
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	// Cursor is the next log offset the pipeline reads.
	Cursor uint64 `json:"cursor"`
	// Head is the newest offset in the log.
	Head uint64 `json:"head"`
	// Lag is how many records the pipeline has not read yet.
	Lag uint64 `json:"lag"`
	// Committed is the cursor of the last checkpoint.
	Committed uint64 `json:"committed"`
	// BlockedAt is the offset of the record whose output a sink keeps
	// refusing (degraded), 0 when none: what Engine.Skip would skip.
	BlockedAt uint64    `json:"blockedAt,omitempty"`
	EventTime time.Time `json:"eventTime,omitzero"`
	// Heartbeat is the processing time at which the pipeline last woke
	// (for records or its tick); it stops moving only if the loop hangs.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	Late      int64     `json:"late"`
	// DeadLettered counts events that failed permanently (a step's error,
	// a sink's refusal): sent to the errors: sinks, or counted and logged
	// when there are none.
	DeadLettered int64          `json:"deadLettered"`
	Source       StepStatus     `json:"source"`
	Steps        []StepStatus   `json:"steps"`
	Sinks        []StepStatus   `json:"sinks"`
	Plan         *pipeline.Plan `json:"-"`
}

// Status returns a pipeline's status.
func (e *Engine) Status(id string) (Status, bool) {
	e.mu.Lock()
	s := e.slots[id]
	e.mu.Unlock()
	if s == nil {
		return Status{}, false
	}
	r := s.run.Load()
	if r == nil {
		return Status{}, false
	}
	return r.status(), true
}

// List returns every pipeline's status, sorted by id.
func (e *Engine) List() []Status {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.slots))
	for _, s := range e.slots {
		if r := s.run.Load(); r != nil {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	out := make([]Status, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Alerts returns recent alert events, oldest first.
func (e *Engine) Alerts() []AlertRecord { return e.alert.items() }

func (r *run) status() Status {
	r.stateMu.Lock()
	st := Status{State: r.state}
	if r.err != nil {
		st.Error = r.err.Error()
	}
	r.stateMu.Unlock()
	st.ID, st.Name, st.Namespace = r.plan.ID(), r.plan.Name, r.plan.Namespace
	st.Hash, st.Version, st.Plan, st.Started = r.plan.Hash, r.plan.Version, r.plan, r.started
	st.Cursor = r.pubCursor.Load()
	st.Head = r.e.opts.Log.Last()
	if st.Head+1 > st.Cursor {
		st.Lag = st.Head + 1 - st.Cursor
	}
	st.Committed = r.ckptOffset.Load()
	if st.State == StateDegraded {
		st.BlockedAt = r.blockedAt.Load()
	}
	if ec := r.pubEvClock.Load(); ec != 0 {
		st.EventTime = time.Unix(0, ec).UTC()
	}
	if hb := r.heartbeat.Load(); hb != 0 {
		st.Heartbeat = time.Unix(0, hb).UTC()
	}
	st.Late = r.lateCnt.Load()
	st.DeadLettered = r.pubDead.Load()
	st.Source = r.source.status()
	for _, s := range r.stages {
		st.Steps = append(st.Steps, s.stats.status())
	}
	for _, group := range [][]*sinkStage{r.sinks, r.late, r.errs} {
		for _, s := range group {
			st.Sinks = append(st.Sinks, s.stats.status())
		}
	}
	return st
}
