package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// latencySample is how often (one event in N) a stage times its Process
// call; timing every event would cost more than a filter.
const latencySample = 64

// stage is one step in the fused chain. It is the Emitter the previous
// stage calls, so passing an event along is a plain method call.
type stage struct {
	op     operators.Operator
	out    stageOut
	stats  *stepStats
	run    *run
	sample int
}

// stageOut is the Emitter a stage hands its operator: it counts the
// output and passes it to the next stage.
type stageOut struct {
	stats *stepStats
	next  operators.Emitter
}

// Emit counts ev and hands it on.
func (o *stageOut) Emit(ev *pipeline.Event) {
	o.stats.out++
	o.next.Emit(ev)
}

// Emit runs the stage's operator on ev.
func (s *stage) Emit(ev *pipeline.Event) {
	s.stats.in++
	var t0 time.Time
	if s.sample--; s.sample <= 0 {
		s.sample = latencySample
		t0 = s.run.clock.Now()
	}
	if err := s.op.Process(ev, &s.out); err != nil {
		s.stats.fail(err, s.run.clock.Now())
	}
	if !t0.IsZero() {
		s.stats.latency.Observe(s.run.clock.Now().Sub(t0))
	}
}

// run is one running pipeline: a goroutine that reads the log from its
// cursor and pushes each decoded event through the fused chain.
type run struct {
	e      *Engine
	plan   *pipeline.Plan
	logger *slog.Logger
	clock  interface{ Now() time.Time }

	format      mqtt.Format
	decoder     mqtt.Decoder // format + the fields the pipeline reads
	topicFilter string
	eventTime   *pipeline.Program
	key         *pipeline.Program
	vm          vm.VM

	source *stepStats
	head   operators.Emitter
	stages []*stage
	timed  []timedStage
	// deadliners are the timed operators that know when they next emit
	// (windows): processing-time pipelines wake for them.
	deadliners []operators.Deadliner
	states     map[string]operators.Stateful
	sinks      []*sinkStage
	late       []*sinkStage
	lateCnt    atomic.Int64

	// Event clock: the largest event time seen, and the processing time at
	// which the last event was processed (for idle advancement).
	maxEventTime int64
	lastActivity time.Time
	idleTimeout  time.Duration

	cursor     atomic.Uint64 // next offset to read
	pubEvClock atomic.Int64
	started    time.Time
	stateMu    sync.Mutex // guards state and err
	state      string
	err        error
	cancel     context.CancelFunc
	done       chan struct{}
	lastCkpt   time.Time
	ckptOffset atomic.Uint64
	scratch    pipeline.Event
	tapMu      sync.Mutex
	taps       atomic.Pointer[[]*Tap]
}

// chainEnd is the Emitter after the last step: it fans out to the sinks.
type chainEnd struct{ r *run }

func (c chainEnd) Emit(ev *pipeline.Event) {
	for _, s := range c.r.sinks {
		s.write(ev)
	}
	c.r.e.tap(c.r, ev)
}

// sinkStage wraps a sink with its counters and retry loop.
type sinkStage struct {
	sink  Sink
	stats *stepStats
	run   *run
}

// write delivers ev, retrying with backoff while the sink fails, so that
// output is at-least-once. Only shutdown interrupts the retries.
func (s *sinkStage) write(ev *pipeline.Event) {
	s.stats.in++
	backoff := 10 * time.Millisecond
	for {
		err := s.sink.Write(s.run.ctx(), ev)
		if err == nil {
			s.stats.out++
			return
		}
		s.stats.fail(err, s.run.clock.Now())
		s.stats.publish()
		s.run.logger.Warn("sink write failed; retrying", "sink", s.stats.id, "err", err, "backoff", backoff)
		if !s.run.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (r *run) ctx() context.Context { return r.e.ctx }

// sleep waits d on the engine's clock; false when the pipeline stops first.
func (r *run) sleep(d time.Duration) bool {
	t := r.e.opts.Clock.NewTicker(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-r.done:
		return false
	case <-r.e.ctx.Done():
		return false
	}
}

// loop is the pipeline goroutine.
func (r *run) loop(ctx context.Context) {
	defer close(r.done)
	buf := make([]wal.Record, r.e.opts.BatchSize)
	tick := r.e.opts.Clock.NewTicker(r.e.opts.TickInterval)
	defer tick.Stop()
	for {
		readCtx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		wake, due := r.windowTimer()
		if due {
			cancel() // a window is due now: read what is there, then advance
		}
		go func() {
			var at <-chan time.Time
			if wake != nil {
				at = wake.C()
			}
			select {
			case <-tick.C():
				cancel()
			case <-at:
				cancel()
			case <-stop:
			}
		}()
		n, err := r.e.opts.Log.Read(readCtx, r.cursor.Load(), buf)
		close(stop)
		cancel()
		if wake != nil {
			wake.Stop()
		}
		if n > 0 {
			r.process(buf[:n])
		}
		if err != nil {
			var gap *wal.GapError
			var ahead *wal.AheadError
			switch {
			case ctx.Err() != nil:
				r.checkpoint(context.Background(), true)
				return
			case errors.As(err, &gap):
				r.logger.Error("records were removed by retention before this pipeline read them",
					"lost", gap.Lost(), "resume", gap.First)
				r.source.fail(gap, r.clock.Now())
				r.cursor.Store(gap.First)
			case errors.As(err, &ahead):
				// The log lost records after our checkpoint (buffered
				// writes in a power loss): go on from its end.
				r.logger.Error("checkpoint is beyond the end of the log; continuing from the log's end", "cursor", ahead.From, "last", ahead.Last)
				r.source.fail(ahead, r.clock.Now())
				r.cursor.Store(ahead.Last + 1)
			case errors.Is(err, context.Canceled):
				// The tick cancelled the read.
			default:
				r.fail(fmt.Errorf("reading the log: %w", err))
				return
			}
		}
		r.advance()
		r.publish()
		if now := r.clock.Now(); now.Sub(r.lastCkpt) >= r.e.opts.CheckpointInterval {
			r.checkpoint(ctx, false)
		}
	}
}

// process pushes a batch of records through the chain.
func (r *run) process(recs []wal.Record) {
	now := r.clock.Now()
	for i := range recs {
		rec := &recs[i]
		r.cursor.Store(rec.Offset + 1)
		if !mqtt.MatchTopic(r.topicFilter, rec.Topic) {
			continue
		}
		r.source.in++
		r.lastActivity = now
		err := r.decoder.Decode(rec.Topic, rec.Payload, func(d mqtt.Decoded) {
			// One Event per pipeline, reused: receivers that keep an
			// event must Clone it (see operators.Emitter).
			ev := &r.scratch
			*ev = pipeline.Event{Time: rec.Time, Key: rec.Topic, Topic: rec.Topic, Fields: d.Fields, Offset: rec.Offset, Raw: d.Raw}
			r.stamp(ev)
			if ev.Time > r.maxEventTime {
				r.maxEventTime = ev.Time
			}
			r.source.out++
			r.head.Emit(ev)
		})
		if err != nil {
			r.source.fail(fmt.Errorf("offset %d topic %s: %w", rec.Offset, rec.Topic, err), now)
		}
	}
}

// stamp sets the event's time and key from the pipeline's expressions.
// A failing expression falls back to arrival time / topic and is counted
// on the source, so nothing is dropped for want of a timestamp.
func (r *run) stamp(ev *pipeline.Event) {
	if r.eventTime != nil {
		v, err := r.eventTime.Run(&r.vm, ev.Fields)
		if err == nil {
			var t int64
			t, err = toUnixNano(v)
			if skew := r.e.opts.MaxFutureSkew; err == nil && skew > 0 && t > r.clock.Now().Add(skew).UnixNano() {
				err = fmt.Errorf("%s is more than %v ahead of this runner's clock (device clock wrong?)", time.Unix(0, t).UTC().Format(time.RFC3339), skew)
			}
			if err == nil {
				ev.Time = t
			}
		}
		if err != nil {
			r.source.fail(fmt.Errorf("eventTime %q: %v; used arrival time", r.eventTime.Source, err), r.clock.Now())
		}
	}
	if r.key != nil {
		v, err := r.key.Run(&r.vm, ev.Fields)
		switch {
		case err != nil:
			r.source.fail(fmt.Errorf("key %q: %v; used the topic", r.key.Source, err), r.clock.Now())
		case v == nil:
			r.source.fail(fmt.Errorf("key %q is nil; used the topic", r.key.Source), r.clock.Now())
		default:
			if s, ok := v.(string); ok {
				ev.Key = s
			} else {
				ev.Key = string(pipeline.AppendValue(nil, v))
			}
		}
	}
}

// toUnixNano converts an eventTime value: numbers are unix seconds (below
// 1e11), milliseconds (below 1e14), microseconds (below 1e17) or
// nanoseconds; strings are RFC 3339.
func toUnixNano(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		return floatUnixNano(x), nil
	case int:
		return intUnixNano(int64(x)), nil
	case int64:
		return intUnixNano(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return intUnixNano(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return 0, err
		}
		return floatUnixNano(f), nil
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.UnixNano(), nil
		}
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return intUnixNano(i), nil
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return floatUnixNano(f), nil
		}
		return 0, fmt.Errorf("%q is not an RFC 3339 time or a unix timestamp", x)
	case time.Time:
		return x.UnixNano(), nil
	case nil:
		return 0, fmt.Errorf("is nil (field missing?)")
	default:
		return 0, fmt.Errorf("%T %v is not a time", v, v)
	}
}

// unitOf returns the nanoseconds per unit of a unix timestamp of magnitude a.
func unitOf(a float64) int64 {
	switch {
	case a < 1e11:
		return 1e9
	case a < 1e14:
		return 1e6
	case a < 1e17:
		return 1e3
	}
	return 1
}

func intUnixNano(i int64) int64 {
	return i * unitOf(math.Abs(float64(i)))
}

func floatUnixNano(f float64) int64 {
	unit := unitOf(math.Abs(f))
	whole, frac := math.Modf(f)
	return int64(whole)*unit + int64(math.Round(frac*float64(unit)))
}

// eventClock returns the pipeline's event clock: the largest event time
// seen, moved forward with processing time once the source has been idle
// for idleTimeout, so windows of keys that went quiet still close.
func (r *run) eventClock() int64 {
	if r.maxEventTime == 0 {
		return 0
	}
	idle := r.clock.Now().Sub(r.lastActivity)
	if idle >= r.idleTimeout {
		return r.maxEventTime + int64(idle)
	}
	return r.maxEventTime
}

// windowTimer returns a one-shot timer for when the next processing-time
// window closes (its end + lateness + ProcessingTimeGrace), or due when
// that time has already come; nil and false when the pipeline runs on
// event time, nothing is pending, or the periodic tick comes first.
func (r *run) windowTimer() (t clock.Ticker, due bool) {
	if r.eventTime != nil || len(r.deadliners) == 0 {
		return nil, false
	}
	next := int64(math.MaxInt64)
	for _, d := range r.deadliners {
		if t, ok := d.NextDeadline(); ok && t < next {
			next = t
		}
	}
	if next == math.MaxInt64 {
		return nil, false
	}
	wait := time.Duration(next-r.clock.Now().UnixNano()) + r.e.opts.ProcessingTimeGrace
	switch {
	case wait <= 0:
		return nil, r.processingClock() >= next
	case wait >= r.e.opts.TickInterval:
		return nil, false
	}
	return r.e.opts.Clock.NewTicker(wait), false
}

// processingClock is the event clock of a processing-time pipeline that
// has read everything in the log: every record stamped before now - grace
// is assumed read, so windows ending before it can close.
func (r *run) processingClock() int64 {
	if r.eventTime != nil || len(r.deadliners) == 0 || r.cursor.Load() <= r.e.opts.Log.Last() {
		return 0
	}
	return r.clock.Now().Add(-r.e.opts.ProcessingTimeGrace).UnixNano()
}

func (r *run) advance() {
	ec := max(r.eventClock(), r.processingClock())
	if ec == 0 {
		return
	}
	r.pubEvClock.Store(ec)
	for _, t := range r.timed {
		t.op.Advance(ec, t.out)
	}
}

// timedStage is a time-driven operator with the emitter its output goes to.
type timedStage struct {
	op  operators.TimeDriven
	out operators.Emitter
}

func (r *run) publish() {
	r.source.publish()
	for _, s := range r.stages {
		s.stats.publish()
	}
	for _, s := range r.sinks {
		s.stats.publish()
	}
	for _, s := range r.late {
		s.stats.publish()
	}
}

func (r *run) fail(err error) {
	r.logger.Error("pipeline failed", "err", err)
	r.stateMu.Lock()
	r.state, r.err = "failed", err
	r.stateMu.Unlock()
}

// snapshot is a pipeline's checkpointed state.
type snapshot struct {
	MaxEventTime int64             `json:"maxEventTime"`
	Steps        map[string][]byte `json:"steps"`
}

// checkpoint flushes the sinks, then saves the cursor with every stateful
// operator's snapshot. The order matters: output before the cursor, so a
// crash between the two replays (at-least-once) instead of losing output.
func (r *run) checkpoint(ctx context.Context, final bool) {
	r.lastCkpt = r.clock.Now()
	if ctx.Err() != nil {
		ctx = context.Background()
	}
	for _, s := range append(append([]*sinkStage(nil), r.sinks...), r.late...) {
		if err := s.sink.Flush(ctx); err != nil {
			s.stats.fail(fmt.Errorf("flush: %w", err), r.clock.Now())
			r.logger.Error("sink flush failed; checkpoint skipped", "sink", s.stats.id, "err", err)
			return
		}
	}
	snap := snapshot{MaxEventTime: r.maxEventTime, Steps: map[string][]byte{}}
	for id, st := range r.states {
		b, err := st.Snapshot()
		if err != nil {
			r.logger.Error("state snapshot failed; checkpoint skipped", "step", id, "err", err)
			return
		}
		snap.Steps[id] = b
	}
	state, err := json.Marshal(snap)
	if err != nil {
		r.logger.Error("encoding checkpoint", "err", err)
		return
	}
	off := r.cursor.Load()
	if err := r.e.opts.Checkpoints.Save(ctx, checkpointOf(r.plan, off, state, r.clock.Now())); err != nil {
		r.logger.Error("saving checkpoint", "err", err)
		return
	}
	r.ckptOffset.Store(off)
	if t, ok := r.e.opts.Log.(ConsumerTracker); ok {
		t.SetConsumer(r.plan.ID(), off)
	}
	if final {
		r.logger.Info("pipeline checkpointed", "offset", off)
	}
}

// restore applies a saved snapshot.
func (r *run) restore(state []byte) error {
	var snap snapshot
	if err := json.Unmarshal(state, &snap); err != nil {
		return fmt.Errorf("decoding checkpoint: %w", err)
	}
	r.maxEventTime = snap.MaxEventTime
	for id, b := range snap.Steps {
		st, ok := r.states[id]
		if !ok {
			continue
		}
		if err := st.Restore(b); err != nil {
			return fmt.Errorf("restoring step %s: %w", id, err)
		}
	}
	return nil
}

func checkpointOf(plan *pipeline.Plan, offset uint64, state []byte, now time.Time) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Pipeline: plan.ID(), PlanHash: plan.Hash, Offset: offset, State: state, Time: now}
}
