package beam

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	beamwindow "github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/connectors/walexport"
)

// Live reading: how often the reader hands its output to the runner, and
// how long it waits for the stream when it has nothing to read.
const (
	// liveBatch is how many messages one call of the live reader fetches
	// at most before it checkpoints (returns to the runner, which then
	// sends its output downstream and reports its watermark).
	liveBatch = 1024
	// liveFetchWait bounds one fetch: the longest a call waits for
	// messages before it checkpoints with what it has.
	liveFetchWait = 200 * time.Millisecond
	// liveIdleResume is how soon the reader asks to be resumed after a
	// fetch that found nothing.
	liveIdleResume = 100 * time.Millisecond
	// liveIdleDefault is the idle timeout of a pipeline without a window
	// or an idleTimeout (Plan.IdleTimeout derives the others as the edge
	// engine does).
	liveIdleDefault = 30 * time.Second
)

// liveReadFn is the unbounded source of a live job: a splittable DoFn
// that follows a JetStream stream on the hub from a start sequence, for
// ever. It decodes each message with the pipeline's source (format,
// eventTime, key, the steps before the window) and emits the events with
// their event time as element timestamp and, in Rec.WM, the watermark the
// edge's window step would have had when the event arrived.
//
// The watermark is a manual estimator (liveClock) that follows the edge's
// event clock: the largest event time seen, moved forward with processing
// time once the stream has been silent for the pipeline's idle timeout, less
// the window's allowed lateness. It advances while messages flow, at every
// checkpoint (every fetch of up to liveBatch messages or liveFetchWait),
// not only on an empty fetch. The watermark a checkpoint reports is the one
// the call started with, one call behind: an event the edge keeps in a
// window (its window ends after the watermark at its arrival) is then never
// behind the watermark the runner has seen when the event reaches the
// window, so the runner drops nothing the edge keeps.
//
// The restriction is a range of stream sequences [from, ∞). It is never
// split except to checkpoint: events must be read in stream order (the
// edge's arrival order decides lateness), so one reader owns the stream.
type liveReadFn struct {
	// In is the stream to follow.
	In HubInput
	// Decode decodes messages and runs the steps before the window.
	Decode decodeFn
	// Lateness is the window's allowed lateness (ns; 0 without a window).
	Lateness int64
	// Idle is how long the stream may be silent before the event clock
	// follows processing time (ns).
	Idle int64
	// Ordered: stamp each event with the event clock at its arrival
	// instead of its event time (no window: the keyed steps then see the
	// events in stream order).
	Ordered bool

	mu    sync.Mutex
	nc    *nats.Conn
	js    jetstream.JetStream
	cons  jetstream.Consumer
	next  int64 // the sequence cons delivers next; 0: none
	last  int64 // the last sequence seen, for progress
	clock func() time.Time
	line  []byte
}

// liveClock is the live reader's watermark estimator and its state: the
// edge's event clock, restored at every resume.
type liveClock struct {
	// Max is the largest event time seen (unix ns); 0: none yet.
	Max int64
	// Clock is the event clock (unix ns): Max, or Max plus the idle time
	// once the stream has been idle for the idle timeout; it never goes
	// back.
	Clock int64
	// Arrival is the processing time of the last message (unix ns).
	Arrival int64
	// Report is the watermark reported at the next checkpoint (unix ms),
	// math.MinInt64 before any event.
	Report int64
}

// CurrentWatermark is the watermark of the events emitted so far.
func (c *liveClock) CurrentWatermark() time.Time {
	if c.Report == math.MinInt64 {
		return mtime.MinTimestamp.ToTime()
	}
	return time.UnixMilli(c.Report)
}

// windowWM is the window step's watermark for the current event clock.
func (c *liveClock) windowWM(lateness int64) int64 {
	if c.Clock == 0 {
		return math.MinInt64
	}
	return c.Clock - lateness
}

// observe advances the clock with an event at t that arrived at now.
func (c *liveClock) observe(t int64, now time.Time) {
	c.Max = max(c.Max, t)
	c.Clock = max(c.Clock, t)
	c.Arrival = now.UnixNano()
}

// idle moves the clock with processing time when nothing arrived for idle,
// as the edge engine does (max event time + idle time).
func (c *liveClock) idle(now time.Time, idle int64) {
	if c.Max == 0 || c.Arrival == 0 {
		return
	}
	if d := now.UnixNano() - c.Arrival; d >= idle {
		c.Clock = max(c.Clock, c.Max+d)
	}
}

// report sets the watermark the next checkpoint reports.
func (c *liveClock) report(wm int64) {
	if wm == math.MinInt64 {
		return
	}
	c.Report = max(c.Report, floorDiv(wm, 1e6))
}

// seqTracker claims stream sequences of [Start, End). It splits only to
// checkpoint (fraction 0, once a call has returned): the stream is read by
// one reader, in order. A split the runner asks for while a call is
// reading (prism splits long-running bundles) is refused: the call would
// stop in the middle of a fetched batch, and the watermark estimator,
// which the call updates without a lock, would be copied for the residual
// mid-update.
type seqTracker struct {
	rest    offsetrange.Restriction
	claimed int64
	stopped bool
	busy    bool // a call of ProcessElement is reading
	err     error
	end     func() int64 // estimated end, for progress
}

func (t *seqTracker) TryClaim(pos any) bool {
	p := pos.(int64)
	switch {
	case t.stopped:
		t.err = errors.New("live reader: claim after the tracker stopped")
		return false
	case p <= t.claimed || p < t.rest.Start:
		t.stopped = true
		t.err = fmt.Errorf("live reader: sequence %d claimed after %d", p, t.claimed)
		return false
	case p >= t.rest.End:
		t.stopped = true
		return false
	}
	t.claimed = p
	return true
}

func (t *seqTracker) GetError() error { return t.err }

func (t *seqTracker) TrySplit(fraction float64) (primary, residual any, err error) {
	if fraction > 0 || t.busy || t.stopped || t.IsDone() {
		return t.rest, nil, nil
	}
	residual = offsetrange.Restriction{Start: t.claimed + 1, End: t.rest.End}
	t.rest.End = t.claimed + 1
	return t.rest, residual, nil
}

func (t *seqTracker) GetProgress() (done, remaining float64) {
	done = float64(t.claimed + 1 - t.rest.Start)
	if end := t.end(); end > t.claimed {
		remaining = float64(end - t.claimed)
	}
	return done, max(remaining, 1)
}

func (t *seqTracker) IsDone() bool {
	return t.err == nil && (t.claimed+1 >= t.rest.End || t.rest.Start >= t.rest.End)
}

func (t *seqTracker) GetRestriction() any { return t.rest }

func (t *seqTracker) IsBounded() bool { return t.rest.End != math.MaxInt64 }

func (f *liveReadFn) Setup() error {
	f.clock = time.Now
	return f.Decode.Setup()
}

func (f *liveReadFn) CreateInitialRestriction(_ []byte) offsetrange.Restriction {
	return offsetrange.Restriction{Start: max(int64(f.In.From), 1), End: math.MaxInt64}
}

func (f *liveReadFn) SplitRestriction(_ []byte, rest offsetrange.Restriction) []offsetrange.Restriction {
	return []offsetrange.Restriction{rest}
}

func (f *liveReadFn) RestrictionSize(_ []byte, rest offsetrange.Restriction) float64 {
	return 1
}

func (f *liveReadFn) CreateTracker(rest offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(&seqTracker{rest: rest, claimed: rest.Start - 1, end: func() int64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.last + 1
	}})
}

// TruncateRestriction: a drained live job stops reading.
func (f *liveReadFn) TruncateRestriction(rt *sdf.LockRTracker, _ []byte) offsetrange.Restriction {
	start := rt.GetRestriction().(offsetrange.Restriction).Start
	return offsetrange.Restriction{Start: start, End: start}
}

func (f *liveReadFn) InitialWatermarkEstimatorState(_ beam.EventTime, _ offsetrange.Restriction, _ []byte) liveClock {
	return liveClock{Report: math.MinInt64}
}

func (f *liveReadFn) CreateWatermarkEstimator(st liveClock) *liveClock { return &st }

func (f *liveReadFn) WatermarkEstimatorState(c *liveClock) liveClock { return *c }

// consumer returns an ordered consumer that delivers seq next: the one of
// the previous call when that call consumed everything it fetched (f.cons
// is cleared otherwise), else a new one.
func (f *liveReadFn) consumer(ctx context.Context, seq int64) (jetstream.Consumer, error) {
	if f.cons != nil && f.next == seq {
		return f.cons, nil
	}
	if f.nc == nil {
		nc, err := nats.Connect(f.In.URL, nats.Name("eddy-beam-live"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("live input: connecting to %s: %w", f.In.URL, err)
		}
		js, err := jetstream.New(nc)
		if f.In.Domain != "" {
			js, err = jetstream.NewWithDomain(nc, f.In.Domain)
		}
		if err != nil {
			nc.Close()
			return nil, err
		}
		f.nc, f.js = nc, js
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(seq)}
	if f.In.Subject != "" {
		cfg.FilterSubjects = []string{f.In.Subject}
	}
	cons, err := f.js.OrderedConsumer(ctx, f.In.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("live input: following stream %q from sequence %d: %w", f.In.Stream, seq, err)
	}
	f.cons, f.next = cons, seq
	return cons, nil
}

// ProcessElement reads one batch from the stream and checkpoints.
func (f *liveReadFn) ProcessElement(ctx context.Context, we *liveClock, rt *sdf.LockRTracker, _ []byte, emit func(beam.EventTime, Rec)) (sdf.ProcessContinuation, error) {
	setBusy(rt, true)
	defer setBusy(rt, false)
	start := rt.GetRestriction().(offsetrange.Restriction).Start
	// The watermark this checkpoint reports: the edge's window watermark
	// before this batch (see the type's doc).
	we.report(we.windowWM(f.Lateness))
	cons, err := f.consumer(ctx, start)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Permanent: a wrong name never starts to exist by retrying.
		return sdf.StopProcessing(), fmt.Errorf("live input: the hub has no stream %q (the up stream of `eddy hub` is eddy_up): %w", f.In.Stream, err)
	case err != nil:
		// Retryable (the hub may be restarting): log and resume later.
		log.Warnf(ctx, "%v", err)
		return sdf.ResumeProcessingIn(time.Second), nil
	}
	batch, err := cons.Fetch(liveBatch, jetstream.FetchMaxWait(liveFetchWait))
	if err != nil {
		f.cons = nil
		log.Warnf(ctx, "live input: fetching from %q: %v", f.In.Stream, err)
		return sdf.ResumeProcessingIn(time.Second), nil
	}
	n := 0
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			f.cons = nil
			return sdf.StopProcessing(), err
		}
		seq := int64(meta.Sequence.Stream)
		if !rt.TryClaim(seq) {
			// The runner split the restriction before seq (prism splits
			// a long-running reader under load). The consumer has
			// delivered the rest of the batch already, so the call that
			// resumes at seq needs a new one; reusing it lost those
			// messages (TestLiveReaderSplitMidBatch).
			f.cons = nil
			return sdf.StopProcessing(), rt.GetError()
		}
		n++
		f.mu.Lock()
		f.next, f.last = seq+1, max(f.last, int64(meta.Sequence.Stream+meta.NumPending))
		f.mu.Unlock()
		rec := walexport.Record{Offset: meta.Sequence.Stream, Time: meta.Timestamp, Topic: m.Subject(), Payload: m.Data()}
		if t := m.Headers().Get(headerTopic); t != "" {
			rec.Topic = t
		}
		if ns, err := strconv.ParseInt(m.Headers().Get(headerTime), 10, 64); err == nil {
			rec.Time = time.Unix(0, ns)
		}
		if f.line, err = walexport.Append(f.line[:0], rec); err != nil {
			return sdf.StopProcessing(), err
		}
		now := f.clock()
		f.Decode.ProcessElement(ctx, string(f.line[:len(f.line)-1]), func(et beam.EventTime, r Rec) {
			we.observe(r.Time, now)
			r.WM = we.windowWM(f.Lateness)
			if f.Ordered {
				et = mtime.FromMilliseconds(floorDiv(we.Clock, 1e6))
			}
			emit(et, r)
		})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		f.cons = nil
		log.Warnf(ctx, "live input: fetching from %q: %v", f.In.Stream, err)
	}
	if n > 0 {
		return sdf.ResumeProcessingIn(0), nil
	}
	// Nothing arrived: the edge's idle rule, and the whole clock reported.
	we.idle(f.clock(), f.Idle)
	we.report(we.windowWM(f.Lateness))
	return sdf.ResumeProcessingIn(liveIdleResume), nil
}

// setBusy marks the call reading (see seqTracker), under the tracker's
// lock, through which the runner's splits go.
func setBusy(rt *sdf.LockRTracker, busy bool) {
	rt.Mu.Lock()
	defer rt.Mu.Unlock()
	if t, ok := rt.Rt.(*seqTracker); ok {
		t.busy = busy
	}
}

func (f *liveReadFn) Teardown() {
	if f.nc != nil {
		f.nc.Close()
	}
}

// liveLateFn splits off the events whose windows had all closed when they
// arrived (the edge's late events) by the watermark the reader stamped.
type liveLateFn struct {
	lateFn
}

func (f *liveLateFn) ProcessElement(ctx context.Context, et beam.EventTime, r Rec, keep func(beam.EventTime, Rec), late func(beam.EventTime, Rec)) {
	if f.isLate(r.Time, r.WM) {
		lateEvents.Inc(ctx, 1)
		late(et, r)
		return
	}
	keep(et, r)
}

// liveWindowKeyFn keys events for the combiner and drops an event from
// the sliding windows that had already closed when it arrived.
type liveWindowKeyFn struct{}

func (liveWindowKeyFn) ProcessElement(w beam.Window, r Rec, emit func(string, Rec)) {
	if iw, ok := w.(beamwindow.IntervalWindow); ok && int64(iw.End)*1e6 <= r.WM {
		return
	}
	emit(r.Key, r)
}

func init() {
	for _, t := range []any{liveReadFn{}, liveClock{}, liveLateFn{}, liveWindowKeyFn{}} {
		beam.RegisterType(reflect.TypeOf(t))
	}
}
