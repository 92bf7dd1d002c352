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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Log is what pipelines read: the runner's WAL (wal.Log has these).
type Log interface {
	// Read fills buf with records whose offset is >= from, blocking until
	// there is at least one or ctx is done.
	Read(ctx context.Context, from uint64, buf []wal.Record) (int, error)
	// Wait returns a channel closed once Read(from) would not block. A
	// pipeline selects on it with its ticker and its stop signal, so
	// nothing is started or cancelled per batch.
	Wait(from uint64) <-chan struct{}
	// First returns the oldest offset kept (Last()+1 when empty).
	First() uint64
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
	// StopGrace is how long a stopping pipeline lets a sink write that is
	// in progress finish (a publish waiting for a congested subscriber, a
	// durable append) before cancelling it. A pipeline waiting between
	// retries stops at once. Default 1s.
	StopGrace time.Duration
	// ErrorLogInterval rate-limits the warnings about events that failed
	// permanently in a pipeline without errors: sinks (one line per
	// interval with the count since the last). Default 10s.
	ErrorLogInterval time.Duration

	// ProcessingTimeGrace is how long after a window's end a pipeline on
	// processing time (no eventTime: events are stamped when the broker
	// accepts them) at least waits for records stamped before the end to
	// reach the log, before it closes the window. It wakes on a timer at
	// end + grace, so results come out that long after the window ends.
	// The grace grows to twice the largest recent delay between stamp and
	// processing (at most 1s) on a loaded machine. Default 25ms; a record
	// that takes longer is late (counted, sent to late sinks).
	ProcessingTimeGrace time.Duration

	// SharedRing is how many decoded records a shared source keeps for the
	// pipelines on it (see shared.go): a pipeline further behind reads and
	// decodes the log itself until it catches up. Default 2048.
	SharedRing int

	// decodeAll turns field projection off (every field is decoded); the
	// differential test runs each pipeline both ways.
	decodeAll bool
}

// Engine runs pipelines. Create it with New, then Apply plans.
//
// Each pipeline has one owner at a time: Apply, Start, Stop, Remove, Skip
// and Seek of one namespace/name are serialised on that pipeline's slot
// (one lock per pipeline, as controller-runtime reconciles one key at a
// time), and each returns only when the run it replaced or stopped has
// ended, flushed, checkpointed and closed its sinks. Different pipelines
// never wait for each other.
type Engine struct {
	opts Options

	mu      sync.Mutex
	slots   map[string]*slot
	closed  bool
	alert   *ring[AlertRecord]
	filters atomic.Pointer[[]string] // source topic filters of all pipelines
	shares  map[sourceKey]*share     // pipelines per source; guarded by mu
}

// slot is the home of one pipeline id. mu is held for the whole of an
// operation on the pipeline; run and plan may be read without it.
type slot struct {
	id   string
	mu   sync.Mutex
	run  atomic.Pointer[run]
	plan *pipeline.Plan // the plan this slot runs or is about to; guarded by Engine.mu
	gone bool           // removed: a caller that waited on mu looks again; guarded by mu

	// Taps of the pipeline's output (the API's live stream), kept across
	// replaces; every run of the slot sends to them.
	tapMu sync.Mutex
	taps  atomic.Pointer[[]*Tap]
}

// ErrClosed is returned by operations on a closed engine.
var ErrClosed = errors.New("engine: closed")

// NotFoundError is returned for an unknown pipeline id.
type NotFoundError struct{ ID string }

// Error names the pipeline.
func (e *NotFoundError) Error() string { return fmt.Sprintf("no pipeline %q", e.ID) }

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
	if opts.SharedRing <= 0 {
		opts.SharedRing = 2048
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
	if opts.StopGrace <= 0 {
		opts.StopGrace = time.Second
	}
	if opts.ErrorLogInterval <= 0 {
		opts.ErrorLogInterval = 10 * time.Second
	}
	return &Engine{opts: opts, slots: map[string]*slot{}, alert: newRing[AlertRecord](500), shares: map[sourceKey]*share{}}, nil
}

// lock returns the slot of id locked, creating it when create is set.
func (e *Engine) lock(id string, create bool) (*slot, error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		s := e.slots[id]
		if s == nil {
			if !create {
				e.mu.Unlock()
				return nil, &NotFoundError{ID: id}
			}
			s = &slot{id: id}
			e.slots[id] = s
		}
		e.mu.Unlock()
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		return s, nil
	}
}

// drop forgets a locked slot (its pipeline was removed, or never ran).
// The caller holds s.mu.
func (e *Engine) drop(s *slot) {
	s.gone = true
	e.mu.Lock()
	if e.slots[s.id] == s {
		delete(e.slots, s.id)
	}
	e.refreshFilters()
	e.mu.Unlock()
}

// Apply starts a plan, or replaces the running pipeline of the same
// namespace/name. A plan with the same hash as the running one is left
// alone. The new run is built (its sinks opened) before the old one is
// touched, so a plan that fails to build leaves the old run going and
// returns why. Then the old run is stopped: it finishes the event in
// hand, checkpoints, and closes its sinks, all before Apply returns. The
// new run continues from that cursor, with the old operator state when
// the hash matches the checkpoint and fresh state otherwise. Other
// pipelines are not touched. A plan whose sinks would feed a cycle of
// pipelines (see pipeline.FindCycle) is refused.
func (e *Engine) Apply(ctx context.Context, plan *pipeline.Plan) error {
	s, err := e.lock(plan.ID(), true)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	old := s.run.Load()
	if old != nil && old.plan.Hash == plan.Hash && old.currentState().Active() {
		return nil
	}
	if err := e.reserve(s, plan); err != nil {
		if old == nil {
			e.drop(s)
		}
		return err
	}
	r, err := e.build(plan)
	if err != nil {
		e.mu.Lock()
		s.plan = nil
		if old != nil {
			s.plan = old.plan
		}
		e.mu.Unlock()
		if old == nil {
			e.drop(s)
		} else {
			old.logger.Warn("new plan failed to build; the running one keeps running", "err", err, "newHash", plan.Hash)
		}
		return err
	}
	if old != nil {
		old.stop()
	}
	r.taps = &s.taps
	e.start(ctx, r)
	s.run.Store(r)
	e.mu.Lock()
	e.refreshFilters()
	e.mu.Unlock()
	return nil
}

// reserve checks that plan closes no cycle with the other pipelines and
// records it as the slot's plan, in one step under e.mu, so that two
// pipelines applied at once cannot each miss the other. The caller holds
// s.mu.
func (e *Engine) reserve(s *slot, plan *pipeline.Plan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	plans := []*pipeline.Plan{plan}
	for id, o := range e.slots {
		if id != s.id && o.plan != nil {
			plans = append(plans, o.plan)
		}
	}
	if cyc := pipeline.FindCycle(plans); cyc != nil {
		return fmt.Errorf("pipeline %s would close a feedback loop across pipelines: %s; every output would come back as input. Publish to topics no pipeline of the loop reads, or set allowLoop: true on a sink of the loop if a step ends it",
			plan.ID(), strings.Join(cyc, " "))
	}
	s.plan = plan
	return nil
}

// refreshFilters publishes the source filters of all pipelines for Reads.
// The caller holds e.mu.
func (e *Engine) refreshFilters() {
	fs := make([]string, 0, len(e.slots))
	for _, s := range e.slots {
		if s.plan != nil {
			fs = append(fs, s.plan.Spec.SourceTopic())
		}
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

// Remove stops a pipeline, closes its sinks, releases its WAL consumer
// (retention no longer waits for it) and deletes its checkpoint, all
// before it returns.
func (e *Engine) Remove(ctx context.Context, id string) error {
	s, err := e.lock(id, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if r := s.run.Load(); r != nil {
		r.stop()
	}
	// Forget the cursor and the checkpoint before the slot goes: an Apply
	// of the same id waiting on this slot must start fresh, not from them.
	if t, ok := e.opts.Log.(ConsumerTracker); ok {
		t.RemoveConsumer(id)
	}
	err = e.opts.Checkpoints.Delete(ctx, id)
	e.drop(s)
	return err
}

// Stop stops a pipeline (final checkpoint, sinks closed) but keeps it, its
// checkpoint and its WAL consumer, so Start resumes without loss.
func (e *Engine) Stop(id string) error {
	s, err := e.lock(id, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if r := s.run.Load(); r != nil {
		r.stop()
	}
	return nil
}

// Start resumes a stopped or failed pipeline from its checkpoint.
func (e *Engine) Start(ctx context.Context, id string) error {
	s, err := e.lock(id, false)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	return e.restart(ctx, s, nil)
}

// restart builds a fresh run of the slot's plan and starts it, unless one
// is already active. before, when set, runs in between (with no run
// active), e.g. to move the checkpoint. The caller holds s.mu.
func (e *Engine) restart(ctx context.Context, s *slot, before func() error) error {
	old := s.run.Load()
	if old == nil {
		return &NotFoundError{ID: s.id}
	}
	if before == nil && old.currentState().Active() {
		return nil
	}
	old.stop()
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	r, err := e.build(old.plan)
	if err != nil {
		old.setFailed(fmt.Errorf("restarting: %w", err))
		return err
	}
	r.taps = &s.taps
	e.start(ctx, r)
	s.run.Store(r)
	return nil
}

// Close stops every pipeline (each finishes its event, checkpoints and
// closes its sinks) and refuses later calls. It waits as long as that
// takes; Shutdown bounds the wait.
func (e *Engine) Close() error { return e.Shutdown(context.Background()) }

// Shutdown stops every pipeline at once, like Close, but returns when ctx
// is done even if some have not finished: the error names them (their
// output since the last checkpoint will be replayed on the next start).
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	slots := make([]*slot, 0, len(e.slots))
	for _, s := range e.slots {
		slots = append(slots, s)
	}
	e.mu.Unlock()
	var mu sync.Mutex
	pending := map[string]bool{}
	var wg sync.WaitGroup
	for _, s := range slots {
		pending[s.id] = true
	}
	for _, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.mu.Lock()
			defer s.mu.Unlock()
			if r := s.run.Load(); r != nil {
				r.stop()
			}
			mu.Lock()
			delete(pending, s.id)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	left := make([]string, 0, len(pending))
	for id := range pending {
		left = append(left, id)
	}
	sort.Strings(left)
	return fmt.Errorf("engine: abandoned %d pipeline(s) that did not stop in time (a sink or checkpoint write hung): %s; they resume from their last checkpoint",
		len(left), strings.Join(left, ", "))
}
