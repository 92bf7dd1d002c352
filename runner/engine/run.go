package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
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
		s.run.deadLetter(s.stats.id, ev, err)
	}
	if !t0.IsZero() {
		s.stats.latency.Observe(s.run.clock.Now().Sub(t0))
	}
}

// run is one run of a pipeline: a goroutine that reads the log from its
// cursor and pushes each decoded event through the fused chain. A run is
// started once and stopped once; Apply and Start make a new run.
type run struct {
	e      *Engine
	plan   *pipeline.Plan
	logger *slog.Logger
	clock  interface{ Now() time.Time }

	format      mqtt.Format
	decoder     mqtt.Decoder // format + the fields the pipeline reads
	reads       memberFields // the fields the pipeline reads (for a shared source)
	mutates     bool         // a step changes fields in place: shared events are copied
	share       *share       // the pipelines on this source; set by attachShare
	joined      *sharedSource
	joinedGen   uint64
	sharedWake  chan struct{}             // the shared source wakes the run on it (capacity 1)
	screen      func(map[string]any) bool // the first step's screen (see sharedSource); nil: none
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
	// recentDelay is the largest recent delay between a record's stamp and
	// its processing (decaying); delayAt when it last decayed.
	recentDelay time.Duration
	delayAt     time.Time
	states      map[string]operators.Stateful
	sinks       []*sinkStage
	late        []*sinkStage
	errs        []*sinkStage // errors: (dead-letter) sinks
	enders      []BatchEnder // the sinks that hold output until a batch ends
	lateCnt     atomic.Int64

	// Event clock: the largest event time seen, and the processing time at
	// which the last event was processed (for idle advancement).
	maxEventTime int64
	lastActivity time.Time
	idleTimeout  time.Duration

	// Owned by the pipeline goroutine (and by start, before it).
	cursor    uint64 // next offset to read
	current   uint64 // offset of the record being processed; 0 for timer output
	dead      int64  // events that failed permanently
	abandoned bool   // an event's output was given up because the run stopped
	lastCkpt  time.Time
	ckptOut   int64 // events handed to sinks at the last checkpoint
	scratch   pipeline.Event
	errLog    logLimiter

	// Published for Status.
	pubCursor  atomic.Uint64
	pubDead    atomic.Int64
	pubEvClock atomic.Int64
	heartbeat  atomic.Int64  // unix ns of the last wake-up
	blockedAt  atomic.Uint64 // offset a sink keeps failing on
	ckptOffset atomic.Uint64
	started    time.Time

	stateMu sync.Mutex // guards state and err
	state   State
	err     error

	// ctx ends the loop (Stop); writeCtx ends sink writes in progress,
	// StopGrace later. skip makes the stop checkpoint past the record the
	// run is blocked on (Engine.Skip).
	ctx         context.Context
	cancel      context.CancelFunc
	writeCtx    context.Context
	cancelWrite context.CancelFunc
	skip        atomic.Bool
	stopOnce    sync.Once
	done        chan struct{}

	// taps are the slot's: they outlive a replace of the run.
	taps *atomic.Pointer[[]*Tap]
}

// chainEnd is the Emitter after the last step: it fans out to the sinks.
type chainEnd struct{ r *run }

func (c chainEnd) Emit(ev *pipeline.Event) {
	for _, s := range c.r.sinks {
		if !s.write(ev) {
			return
		}
	}
	c.r.e.tap(c.r, ev)
}

// sinkStage wraps a sink with its counters and retry loop.
type sinkStage struct {
	sink  Sink
	stats *stepStats
	run   *run
}

// write delivers ev and reports whether the run may go on with the next
// output. An error marked permanent (pipeline.IsPermanent) sends the event
// to the errors sinks and moves on; any other error is retried with
// backoff (10ms doubling to 5s) while the run shows as degraded, so output
// is at-least-once. Only a stop ends the retries: then write returns false
// and the run ends without a final checkpoint past this event.
func (s *sinkStage) write(ev *pipeline.Event) bool {
	r := s.run
	if r.abandoned {
		return false
	}
	s.stats.in++
	backoff := 10 * time.Millisecond
	for failed := false; ; failed = true {
		err := s.sink.Write(r.writeCtx, ev)
		if err == nil {
			s.stats.out++
			if failed {
				r.recovered(s)
			}
			return true
		}
		s.stats.fail(err, r.clock.Now())
		if pipeline.IsPermanent(err) {
			if failed {
				r.recovered(s)
			}
			if s.stats.role == pipeline.RoleErrors {
				r.warnDropped("an errors: sink refused a dead-letter record", s.stats.id, ev, err)
				return true
			}
			r.deadLetter(s.stats.id, ev, err)
			return true
		}
		if r.ctx.Err() != nil {
			r.abandoned = true
			return false
		}
		r.degrade(s, err, backoff)
		r.endBatch() // what this batch delivered so far leaves before the wait
		if !r.sleep(backoff) {
			r.abandoned = true
			return false
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// degrade marks the run degraded by a retryable sink error.
func (r *run) degrade(s *sinkStage, err error, backoff time.Duration) {
	r.blockedAt.Store(r.current)
	r.stateMu.Lock()
	r.state, r.err = StateDegraded, fmt.Errorf("sink %s: %w", s.stats.id, err)
	r.stateMu.Unlock()
	s.stats.publish()
	r.publish()
	if r.current > 0 {
		// The record in hand is not done: show it as unread, in the lag.
		r.pubCursor.Store(r.current)
	}
	r.logger.Warn("sink write failed; retrying (pipeline degraded, its cursor waits)", "sink", s.stats.id,
		"offset", r.current, "err", err, "backoff", backoff)
}

// recovered ends a degraded spell.
func (r *run) recovered(s *sinkStage) {
	r.blockedAt.Store(0)
	r.stateMu.Lock()
	if r.state == StateDegraded {
		r.state, r.err = StateRunning, nil
	}
	r.stateMu.Unlock()
	r.logger.Info("sink recovered; pipeline running again", "sink", s.stats.id)
}

// sleep waits d on the engine's clock; false when the run stops first.
func (r *run) sleep(d time.Duration) bool {
	t := r.e.opts.Clock.NewTicker(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-r.ctx.Done():
		return false
	}
}

// loop is the pipeline goroutine. It waits for records (the log's own
// notification), its tick or its stop, whichever comes first.
func (r *run) loop() {
	defer close(r.done)
	defer r.e.detachShare(r)
	// Buffers are allocated on first use: a pipeline served by a shared
	// source does not hold a log batch (with 300 pipelines that is 15 MB).
	var buf []wal.Record
	var sbuf []sharedRec
	tick := r.e.opts.Clock.NewTicker(r.e.opts.TickInterval)
	defer tick.Stop()
	log := r.e.opts.Log
	for {
		var n int
		var err error
		// A processing-time window due now: read what is there, then
		// advance; due later (before the tick): wake for it.
		wake, due := r.windowTimer()
		var at <-chan time.Time
		if wake != nil {
			at = wake.C()
		}
		// Records come from the shared source when it has the cursor's,
		// else from the log.
		var ready <-chan struct{}
		read := func() {
			if buf == nil {
				buf = make([]wal.Record, r.e.opts.BatchSize)
			}
			n, err = log.Read(r.ctx, r.cursor, buf)
		}
		var shared []sharedRec
		if src := r.sharedSource(); src != nil {
			if sbuf == nil {
				sbuf = make([]sharedRec, min(r.e.opts.BatchSize, 64))
			}
			if sn, ok := src.take(r.cursor, r.joinedGen, sbuf); ok {
				buf = nil // caught up with the ring: give the log batch back
				if sn > 0 {
					shared, ready, read = sbuf[:sn], closedChan, func() {}
				} else {
					ready = r.sharedWake
					read = func() {
						if sn, ok := src.take(r.cursor, r.joinedGen, sbuf); ok {
							shared = sbuf[:sn]
						} else {
							buf = make([]wal.Record, r.e.opts.BatchSize)
							n, err = log.Read(r.ctx, r.cursor, buf)
						}
					}
				}
			}
		}
		if ready == nil {
			ready = log.Wait(r.cursor) // not served by a shared source
		}
		if due {
			select {
			case <-ready:
				read()
			default:
			}
		} else {
			select {
			case <-r.ctx.Done():
			case <-ready:
				read()
			case <-tick.C():
			case <-at:
			}
		}
		if wake != nil {
			wake.Stop()
		}
		// One clock reading for the whole batch (with hundreds of
		// pipelines on a topic, each woken per message, every reading
		// counts): windows may close a batch's processing time later.
		now := r.clock.Now()
		r.heartbeat.Store(now.UnixNano())
		if len(shared) > 0 {
			r.processShared(shared, now)
			clear(shared) // drop references to decoded events
		}
		if n > 0 {
			r.process(buf[:n], now)
		}
		if r.ctx.Err() != nil {
			r.exit()
			return
		}
		if err != nil {
			var gap *wal.GapError
			var ahead *wal.AheadError
			switch {
			case errors.As(err, &gap):
				r.logger.Error("records were removed by retention before this pipeline read them",
					"lost", gap.Lost(), "resume", gap.First)
				r.source.fail(gap, r.clock.Now())
				r.cursor = gap.First
			case errors.As(err, &ahead):
				// The log lost records after our checkpoint (buffered
				// writes in a power loss): go on from its end.
				r.logger.Error("checkpoint is beyond the end of the log; continuing from the log's end", "cursor", ahead.From, "last", ahead.Last)
				r.source.fail(ahead, r.clock.Now())
				r.cursor = ahead.Last + 1
			default:
				r.endBatch()
				r.fail(fmt.Errorf("reading the log at offset %d: %w", r.cursor, err))
				r.publish()
				return
			}
		}
		r.advance(now)
		r.endBatch()
		if r.abandoned {
			continue // stopping: the next select sees ctx done
		}
		r.publish()
		if r.checkpointDue(now) {
			r.checkpoint(false)
		}
	}
}

// endBatch lets the sinks send what they held back for the batch.
func (r *run) endBatch() {
	for _, e := range r.enders {
		e.EndBatch()
	}
}

// exit ends a stopped run: a final checkpoint, unless an event's output
// was given up (then the run resumes from its last checkpoint and replays,
// which is at-least-once) or an operator asked to skip it.
func (r *run) exit() {
	r.endBatch()
	switch {
	case r.abandoned && r.skip.Load():
		r.logger.Warn("operator skipped the output the pipeline was blocked on", "offset", r.current, "resume", r.cursor)
		r.checkpoint(true)
	case r.abandoned:
		r.logger.Warn("stopped while a sink was failing: no final checkpoint; the pipeline resumes from its last checkpoint and replays from there",
			"blockedAt", r.current, "checkpoint", r.ckptOffset.Load())
	default:
		r.checkpoint(true)
	}
	r.publish()
}

// process pushes a batch of records through the chain. It stops early
// when the run is stopped (between records) or an output was given up.
func (r *run) process(recs []wal.Record, now time.Time) {
	for i := range recs {
		if r.abandoned || r.ctx.Err() != nil {
			return
		}
		rec := &recs[i]
		r.cursor = rec.Offset + 1
		if !mqtt.MatchTopic(r.topicFilter, rec.Topic) {
			continue
		}
		r.current = rec.Offset
		r.source.in++
		r.lastActivity = now
		r.noteDelay(now, rec.Time)
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
			err = fmt.Errorf("offset %d topic %s: %w", rec.Offset, rec.Topic, err)
			r.source.fail(err, now)
			r.deadLetter("source", &pipeline.Event{Time: rec.Time, Key: rec.Topic, Topic: rec.Topic, Offset: rec.Offset, Raw: rec.Payload}, err)
		}
	}
}

// processShared is process for records the shared source has decoded.
func (r *run) processShared(recs []sharedRec, now time.Time) {
	for i := range recs {
		if r.abandoned || r.ctx.Err() != nil {
			return
		}
		sr := &recs[i]
		r.cursor = sr.offset + 1
		if !sr.match {
			continue
		}
		r.current = sr.offset
		r.source.in++
		r.lastActivity = now
		r.noteDelay(now, sr.time)
		if sr.err != nil {
			err := fmt.Errorf("offset %d topic %s: %w", sr.offset, sr.topic, sr.err)
			r.source.fail(err, now)
			r.deadLetter("source", &pipeline.Event{Time: sr.time, Key: sr.topic, Topic: sr.topic, Offset: sr.offset, Raw: sr.payload}, err)
			continue
		}
		for _, d := range sr.events {
			if r.abandoned || r.ctx.Err() != nil {
				return
			}
			fields := d.Fields
			if r.mutates {
				fields = maps.Clone(fields) // the decoded map is shared
			}
			ev := &r.scratch
			*ev = pipeline.Event{Time: sr.time, Key: sr.topic, Topic: sr.topic, Fields: fields, Offset: sr.offset, Raw: d.Raw}
			r.stamp(ev)
			if ev.Time > r.maxEventTime {
				r.maxEventTime = ev.Time
			}
			r.source.out++
			r.head.Emit(ev)
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
			t, err = pipeline.EventTimeNanos(v)
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

// eventClock returns the pipeline's event clock: the largest event time
// seen, moved forward with processing time once the source has been idle
// for idleTimeout, so windows of keys that went quiet still close.
func (r *run) eventClock(now time.Time) int64 {
	if r.maxEventTime == 0 {
		return 0
	}
	idle := now.Sub(r.lastActivity)
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
	now := r.clock.Now()
	wait := time.Duration(next-now.UnixNano()) + r.grace()
	switch {
	case wait <= 0:
		return nil, r.processingClock(now) >= next
	case wait >= r.e.opts.TickInterval:
		return nil, false
	}
	return r.e.opts.Clock.NewTicker(wait), false
}

// maxGrace bounds the adaptive grace of processing-time windows.
const maxGrace = time.Second

// grace is how long after a window's end a processing-time pipeline waits
// before closing it: ProcessingTimeGrace, or twice the largest recent
// delay between a record's stamp and its processing if that is more (a
// loaded machine delays records between the broker and the log; waiting
// for them beats counting them late), at most maxGrace.
func (r *run) grace() time.Duration {
	return min(max(r.e.opts.ProcessingTimeGrace, 2*r.recentDelay), maxGrace)
}

// noteDelay records how long after its stamp a record was processed; the
// maximum decays by half every second without a larger one.
func (r *run) noteDelay(now time.Time, stamp int64) {
	if r.eventTime != nil || len(r.deadliners) == 0 {
		return
	}
	if since := now.Sub(r.delayAt); since >= time.Second {
		r.recentDelay >>= min(since/time.Second, 62)
		r.delayAt = now
	}
	if d := time.Duration(now.UnixNano() - stamp); d > r.recentDelay {
		r.recentDelay = d
	}
}

// processingClock is the event clock of a processing-time pipeline that
// has read everything in the log: every record stamped before now - grace
// is assumed read, so windows ending before it can close.
func (r *run) processingClock(now time.Time) int64 {
	if r.eventTime != nil || len(r.deadliners) == 0 || r.cursor <= r.e.opts.Log.Last() {
		return 0
	}
	return now.Add(-r.grace()).UnixNano()
}

func (r *run) advance(now time.Time) {
	ec := max(r.eventClock(now), r.processingClock(now))
	if ec == 0 || r.abandoned {
		return
	}
	r.current = 0
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
	r.pubCursor.Store(r.cursor)
	r.pubDead.Store(r.dead)
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
	for _, s := range r.errs {
		s.stats.publish()
	}
}

func (r *run) fail(err error) {
	r.logger.Error("pipeline failed", "err", err)
	r.setFailed(err)
}

// snapshot is a pipeline's checkpointed state.
type snapshot struct {
	MaxEventTime int64             `json:"maxEventTime"`
	Steps        map[string][]byte `json:"steps"`
}

// checkpoint flushes the sinks, then saves the cursor with every stateful
// operator's snapshot. The order matters: output before the cursor, so a
// crash between the two replays (at-least-once) instead of losing output.
// quietCheckpoints is how many checkpoint intervals a pipeline without
// state and without output since its last checkpoint waits before the
// next one (see checkpointDue).
const quietCheckpoints = 10

// checkpointDue reports whether the periodic checkpoint is due. A pipeline
// with stateful steps, or whose sinks got events since its last checkpoint,
// checkpoints every CheckpointInterval. One with neither — a filter that
// dropped everything, or an idle source — has only its cursor to save, and
// replaying what it read since produces nothing again: it checkpoints every
// quietCheckpoints intervals when its cursor moved, never when it did not.
// With 300 such pipelines that is 15 checkpoints (fsyncs) a second instead
// of 150. Retention still sees its cursor at most 20s late.
func (r *run) checkpointDue(now time.Time) bool {
	since := now.Sub(r.lastCkpt)
	if since < r.e.opts.CheckpointInterval {
		return false
	}
	if len(r.states) > 0 || r.sinkEvents() != r.ckptOut {
		return true
	}
	return r.cursor != r.ckptOffset.Load() && since >= quietCheckpoints*r.e.opts.CheckpointInterval
}

// sinkEvents counts the events handed to every sink so far.
func (r *run) sinkEvents() int64 {
	var n int64
	for _, group := range [][]*sinkStage{r.sinks, r.late, r.errs} {
		for _, s := range group {
			n += s.stats.in
		}
	}
	return n
}

func (r *run) checkpoint(final bool) {
	r.lastCkpt = r.clock.Now()
	out := r.sinkEvents()
	ctx := r.writeCtx
	for _, s := range slices.Concat(r.sinks, r.late, r.errs) {
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
	off := r.cursor
	// The save is not cancelled with the run's writes: a stopping run's
	// final checkpoint is what lets it resume without replaying.
	if err := r.e.opts.Checkpoints.Save(context.Background(), checkpointOf(r.plan, off, state, r.clock.Now())); err != nil {
		r.logger.Error("saving checkpoint", "err", err)
		return
	}
	r.ckptOut = out
	r.ckptOffset.Store(off)
	if t, ok := r.e.opts.Log.(ConsumerTracker); ok {
		t.SetConsumer(r.plan.ID(), off)
	}
	if final {
		r.logger.Info("pipeline checkpointed", "offset", off)
	}
}

// restore applies a saved snapshot (none: fresh state).
func (r *run) restore(state []byte) error {
	if len(state) == 0 {
		return nil
	}
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
