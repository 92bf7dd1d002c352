// Package engine runs compiled pipelines on the edge runner's log. Each
// pipeline gets one goroutine that reads records from its cursor, decodes
// them once and pushes each event through a fused chain of operators (plain
// method calls, no channels, no re-encoding), then fans out to its sinks.
// Event time drives windows and alerts through a per-pipeline event clock;
// an injected clock drives idle advancement and checkpoints.
//
// The engine owns scheduling, watermarks, checkpoints and metrics. It does
// not own the log, the broker or the sinks' connections: those are handed in
// (Options.Log, Registry sink factories), so it runs the same on the
// file-backed WAL, an in-memory log in tests, and replayed history.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Log is what pipelines read: the runner's WAL.
type Log interface {
	// Read fills buf with records whose offset is >= from, blocking until
	// there is at least one or ctx is done.
	Read(ctx context.Context, from uint64, buf []wal.Record) (int, error)
	// Last returns the offset of the newest record (0 when empty).
	Last() uint64
}

// ConsumerTracker is implemented by logs whose retention must not remove
// what a pipeline has not checkpointed yet.
type ConsumerTracker interface {
	SetConsumer(name string, offset uint64)
	RemoveConsumer(name string)
}

// Options configure an Engine. The zero value works with Log and
// Checkpoints set.
type Options struct {
	// Log is the record source. Required.
	Log Log
	// Checkpoints stores cursors and state. Default: in memory.
	Checkpoints checkpoint.Store
	// Registry lists the step and sink kinds. Default: NewRegistry().
	Registry *Registry
	// Twins answers enrich lookups.
	Twins TwinLookup
	// Clock drives ticks and checkpoints. Default: the real clock.
	Clock clock.Clock
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// TickInterval is how often idle pipelines wake to advance their
	// event clock. Default 1s.
	TickInterval time.Duration
	// CheckpointInterval is the most time between checkpoints. Default 2s.
	CheckpointInterval time.Duration
	// BatchSize is how many records a pipeline reads at once. Default 256.
	BatchSize int
	// DefaultIdleTimeout applies when a pipeline has no window to derive
	// one from. Default 30s.
	DefaultIdleTimeout time.Duration
	// OnAlert is called (on the pipeline goroutine) for every alert event.
	OnAlert func(plan *pipeline.Plan, ev *pipeline.Event)
	// MaxFutureSkew bounds how far ahead of the processing clock an event
	// time may be. A later timestamp (a device with a wrong clock) would
	// move the watermark and make every later event late, so such an event
	// is counted as a source error and stamped with its arrival time.
	// Default 1h; negative disables the check.
	MaxFutureSkew time.Duration
	// StartAtEnd makes a pipeline without a checkpoint start at the end of
	// the log (only new records) instead of the beginning.
	StartAtEnd bool

	// ProcessingTimeGrace is how long after a window's end a pipeline on
	// processing time (no eventTime: events are stamped when the broker
	// accepts them) waits for records stamped before the end to reach the
	// log, before it closes the window. It wakes on a timer at end + grace,
	// so results come out that long after the window ends. Default 25ms;
	// a record that takes longer is late (counted, sent to late sinks).
	ProcessingTimeGrace time.Duration

	// decodeAll turns field projection off (every field is decoded); the
	// differential test runs each pipeline both ways.
	decodeAll bool
}

// Engine runs pipelines. Create it with New, then Apply plans.
type Engine struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	runs    map[string]*run
	alert   *ring[AlertRecord]
	filters atomic.Pointer[[]string] // source topic filters of all pipelines
}

// AlertRecord is an alert event with the pipeline that raised it.
type AlertRecord struct {
	Pipeline string         `json:"pipeline"`
	Fields   map[string]any `json:"fields"`
	Time     time.Time      `json:"time"`
}

// New returns an engine; it runs until Close.
func New(opts Options) (*Engine, error) {
	if opts.Log == nil {
		return nil, errors.New("engine: Options.Log is required")
	}
	if opts.Checkpoints == nil {
		opts.Checkpoints = checkpoint.NewMemoryStore()
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = time.Second
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 2 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.ProcessingTimeGrace <= 0 {
		opts.ProcessingTimeGrace = 25 * time.Millisecond
	}
	if opts.MaxFutureSkew == 0 {
		opts.MaxFutureSkew = time.Hour
	}
	if opts.DefaultIdleTimeout <= 0 {
		opts.DefaultIdleTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{opts: opts, ctx: ctx, cancel: cancel, runs: map[string]*run{},
		alert: newRing[AlertRecord](500)}, nil
}

// Apply starts a plan, or replaces the running pipeline of the same
// namespace/name. A plan with the same hash as the running one is left
// alone. A replaced pipeline is checkpointed and stopped first; the new one
// continues from its cursor, with its operator state when the hash matches
// the checkpoint and fresh state otherwise. Other pipelines are not touched.
func (e *Engine) Apply(ctx context.Context, plan *pipeline.Plan) error {
	e.mu.Lock()
	old := e.runs[plan.ID()]
	e.mu.Unlock()
	if old != nil {
		if old.plan.Hash == plan.Hash && old.currentState() == "running" {
			return nil
		}
		old.stop()
	}
	r, err := e.build(plan)
	if err != nil {
		if old != nil {
			e.mu.Lock()
			delete(e.runs, plan.ID())
			e.refreshFilters()
			e.mu.Unlock()
		}
		return err
	}
	if err := e.start(ctx, r); err != nil {
		return err
	}
	e.mu.Lock()
	e.runs[plan.ID()] = r
	e.refreshFilters()
	e.mu.Unlock()
	return nil
}

// refreshFilters publishes the source filters of all pipelines for Reads.
// The caller holds e.mu.
func (e *Engine) refreshFilters() {
	fs := make([]string, 0, len(e.runs))
	for _, r := range e.runs {
		fs = append(fs, r.topicFilter)
	}
	e.filters.Store(&fs)
}

// Reads reports whether some pipeline's source reads topic. It takes no
// lock (one atomic load), so the broker can ask it on every publish.
func (e *Engine) Reads(topic string) bool {
	fs := e.filters.Load()
	if fs == nil {
		return false
	}
	for _, f := range *fs {
		if mqtt.MatchTopic(f, topic) {
			return true
		}
	}
	return false
}

// Remove stops a pipeline and deletes its checkpoint.
func (e *Engine) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	r := e.runs[id]
	delete(e.runs, id)
	e.refreshFilters()
	e.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no pipeline %q", id)
	}
	r.stop()
	r.closeSinks()
	if t, ok := e.opts.Log.(ConsumerTracker); ok {
		t.RemoveConsumer(id)
	}
	return e.opts.Checkpoints.Delete(ctx, id)
}

// Stop stops a pipeline but keeps it (and its checkpoint) so Start can
// resume it.
func (e *Engine) Stop(id string) error {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no pipeline %q", id)
	}
	r.stop()
	return nil
}

// Start resumes a stopped pipeline from its checkpoint.
func (e *Engine) Start(ctx context.Context, id string) error {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no pipeline %q", id)
	}
	if r.currentState() == "running" {
		return nil
	}
	r.closeSinks()
	return e.Apply(ctx, r.plan)
}

// Close checkpoints and stops every pipeline.
func (e *Engine) Close() error {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		r.stop()
		r.closeSinks()
	}
	e.cancel()
	return nil
}

func (e *Engine) build(plan *pipeline.Plan) (*run, error) {
	logger := e.opts.Logger.With("pipeline", plan.ID())
	r := &run{e: e, plan: plan, logger: logger, clock: e.opts.Clock, states: map[string]operators.Stateful{},
		done: make(chan struct{}), state: "starting"}
	src := plan.Spec.Source
	switch {
	case src.MQTT != nil:
		r.topicFilter = src.MQTT.Topic
		r.format = mqtt.Format(src.MQTT.Format)
	case src.Stream != nil:
		r.topicFilter = StreamTopic(src.Stream.Name)
		r.format = mqtt.JSON
	}
	r.decoder = mqtt.Decoder{Format: r.format}
	if names, all := plan.Spec.SourceFields(); !all && !e.opts.decodeAll {
		// Decode only what the steps read; sinks forward the raw bytes.
		r.decoder.Fields = mqtt.NewProjection(names)
	}
	var err error
	if plan.Spec.EventTime != "" {
		if r.eventTime, err = pipeline.CompileExpr(plan.Spec.EventTime, nil); err != nil {
			return nil, fmt.Errorf("eventTime: %w", err)
		}
	}
	if plan.Spec.Key != "" {
		if r.key, err = pipeline.CompileExpr(plan.Spec.Key, nil); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	r.idleTimeout = idleTimeout(plan, e.opts.DefaultIdleTimeout)
	r.source = &stepStats{id: "source", kind: string(r.format), role: "source"}

	// Late sinks first: window steps route late events to them.
	for _, n := range plan.Nodes {
		if n.Role != "late" {
			continue
		}
		s, err := e.opts.Registry.sink(&Build{Plan: plan, Node: n, Logger: logger, Clock: e.opts.Clock})
		if err != nil {
			r.closeSinks()
			return nil, err
		}
		r.late = append(r.late, &sinkStage{sink: s, run: r, stats: &stepStats{id: n.ID, kind: n.Kind, role: "late"}})
	}
	lateFn := func(ev *pipeline.Event) {
		r.lateCnt.Add(1)
		if len(r.late) == 0 {
			logger.Warn("late event dropped: it arrived after its window closed; add a late: sink to keep such events",
				"key", ev.Key, "eventTime", ev.EventTime(), "offset", ev.Offset)
			return
		}
		for _, s := range r.late {
			s.write(ev)
		}
	}
	for _, n := range plan.Nodes {
		if n.Role != "sink" {
			continue
		}
		s, err := e.opts.Registry.sink(&Build{Plan: plan, Node: n, Logger: logger, Clock: e.opts.Clock})
		if err != nil {
			r.closeSinks()
			return nil, err
		}
		r.sinks = append(r.sinks, &sinkStage{sink: s, run: r, stats: &stepStats{id: n.ID, kind: n.Kind, role: "sink"}})
	}

	// Steps, built back to front so each knows its next stage.
	var steps []pipeline.Node
	for _, n := range plan.Nodes {
		if n.Role == "step" {
			steps = append(steps, n)
		}
	}
	var next operators.Emitter = chainEnd{r}
	r.stages = make([]*stage, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		n := steps[i]
		b := &Build{Plan: plan, Node: n, Logger: logger.With("step", n.ID), Clock: e.opts.Clock, Late: lateFn, Twins: e.opts.Twins}
		if i+1 < len(steps) {
			b.Next = plan.Step(steps[i+1])
		}
		op, err := e.opts.Registry.step(b)
		if err != nil {
			r.closeSinks()
			return nil, err
		}
		st := &stage{op: op, run: r, stats: &stepStats{id: n.ID, kind: n.Kind, role: "step"}, sample: latencySample}
		out := next
		if n.Kind == "alert" && e.opts.OnAlert != nil {
			out = alertHook{e: e, r: r, next: next}
		}
		st.out = stageOut{stats: st.stats, next: out}
		if sz, ok := op.(operators.Sized); ok {
			st.stats.size = sz.StateSize
		}
		if sf, ok := op.(operators.Stateful); ok {
			r.states[n.ID] = sf
		}
		r.stages[i] = st
		next = st
	}
	for _, st := range r.stages {
		if td, ok := st.op.(operators.TimeDriven); ok {
			r.timed = append(r.timed, timedStage{op: td, out: &st.out})
			if d, ok := td.(operators.Deadliner); ok {
				r.deadliners = append(r.deadliners, d)
			}
		}
	}
	r.head = next
	return r, nil
}

type alertHook struct {
	e    *Engine
	r    *run
	next operators.Emitter
}

func (h alertHook) Emit(ev *pipeline.Event) {
	h.e.alert.add(AlertRecord{Pipeline: h.r.plan.ID(), Fields: ev.Clone().Fields, Time: ev.EventTime()})
	h.e.opts.OnAlert(h.r.plan, ev)
	h.next.Emit(ev)
}

// idleTimeout is how long a source may be silent before the event clock
// follows processing time: the pipeline's idleTimeout, else its longest
// window (size or gap) plus allowed lateness, else the default.
func idleTimeout(plan *pipeline.Plan, def time.Duration) time.Duration {
	if plan.Spec.IdleTimeout != nil {
		return plan.Spec.IdleTimeout.Duration
	}
	var longest time.Duration
	for _, st := range plan.Spec.Steps {
		w := st.Window
		if w == nil {
			continue
		}
		var d time.Duration
		switch {
		case w.Tumbling != nil:
			d = w.Tumbling.Duration
		case w.Sliding != nil:
			d = w.Sliding.Size.Duration
		case w.Session != nil:
			d = w.Session.Gap.Duration
		}
		if w.AllowedLateness != nil {
			d += w.AllowedLateness.Duration
		}
		longest = max(longest, d)
	}
	if longest == 0 {
		return def
	}
	return longest
}

func (e *Engine) start(ctx context.Context, r *run) error {
	cp, ok, err := e.opts.Checkpoints.Load(ctx, r.plan.ID())
	if err != nil {
		r.logger.Error("loading checkpoint failed; starting without it", "err", err)
		ok = false
	}
	switch {
	case ok && cp.PlanHash == r.plan.Hash:
		if err := r.restore(cp.State); err != nil {
			r.logger.Error("restoring state failed; continuing from the cursor with fresh state", "err", err)
		}
		r.cursor.Store(cp.Offset)
		r.logger.Info("pipeline resumed from checkpoint", "offset", cp.Offset)
	case ok:
		r.cursor.Store(cp.Offset)
		r.logger.Info("pipeline changed; continuing from the old cursor with fresh state",
			"offset", cp.Offset, "oldHash", cp.PlanHash, "newHash", r.plan.Hash)
	case e.opts.StartAtEnd:
		r.cursor.Store(e.opts.Log.Last() + 1)
	default:
		r.cursor.Store(1)
	}
	r.started = e.opts.Clock.Now()
	r.lastActivity = r.started
	runCtx, cancel := context.WithCancel(e.ctx)
	r.cancel = cancel
	r.setState("running")
	// A first checkpoint right away, so a crash before the next one
	// replays from here rather than from wherever a new pipeline starts.
	r.checkpoint(runCtx, false)
	go r.loop(runCtx)
	return nil
}

func (r *run) setState(s string) {
	r.stateMu.Lock()
	r.state = s
	r.stateMu.Unlock()
}

func (r *run) currentState() string {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	return r.state
}

// stop cancels the goroutine and waits for its final checkpoint.
func (r *run) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.stateMu.Lock()
	if r.state != "failed" {
		r.state = "stopped"
	}
	r.stateMu.Unlock()
}

func (r *run) closeSinks() {
	for _, s := range append(append([]*sinkStage(nil), r.sinks...), r.late...) {
		if err := s.sink.Close(); err != nil {
			r.logger.Warn("closing sink", "sink", s.stats.id, "err", err)
		}
	}
}

// StreamTopic is the log topic of a runner-internal stream (twin,
// device_state, membership). The runner appends stream events there as JSON.
func StreamTopic(name string) string { return "$eddy/streams/" + name }

// Status is a snapshot of one pipeline.
type Status struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"`
	Hash      string         `json:"hash"`
	Version   int64          `json:"version"`
	State     string         `json:"state"`
	Error     string         `json:"error,omitempty"`
	Started   time.Time      `json:"started"`
	Cursor    uint64         `json:"cursor"`
	Head      uint64         `json:"head"`
	Lag       uint64         `json:"lag"`
	Committed uint64         `json:"committed"`
	EventTime time.Time      `json:"eventTime,omitzero"`
	Late      int64          `json:"late"`
	Source    StepStatus     `json:"source"`
	Steps     []StepStatus   `json:"steps"`
	Sinks     []StepStatus   `json:"sinks"`
	Plan      *pipeline.Plan `json:"-"`
}

// Status returns a pipeline's status.
func (e *Engine) Status(id string) (Status, bool) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil {
		return Status{}, false
	}
	return r.status(), true
}

// List returns every pipeline's status, sorted by id.
func (e *Engine) List() []Status {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
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
	st.Cursor = r.cursor.Load()
	st.Head = r.e.opts.Log.Last()
	if st.Head+1 > st.Cursor {
		st.Lag = st.Head + 1 - st.Cursor
	}
	st.Committed = r.ckptOffset.Load()
	if ec := r.pubEvClock.Load(); ec != 0 {
		st.EventTime = time.Unix(0, ec).UTC()
	}
	st.Late = r.lateCnt.Load()
	st.Source = r.source.status()
	for _, s := range r.stages {
		st.Steps = append(st.Steps, s.stats.status())
	}
	for _, s := range r.sinks {
		st.Sinks = append(st.Sinks, s.stats.status())
	}
	for _, s := range r.late {
		st.Sinks = append(st.Sinks, s.stats.status())
	}
	return st
}
