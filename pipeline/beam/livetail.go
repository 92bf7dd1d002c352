package beam

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/state"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/timers"

	"github.com/eddy-edge/eddy/connectors/file"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/alert"
	"github.com/eddy-edge/eddy/pipeline"
)

// liveTailFn is the streaming form of the keyed steps (alert, dedupe,
// throttle and the steps after them): a stateful DoFn per key with an
// event-time timer. It reuses the edge's operators: per key, their state
// lives in Beam state as the operators' own snapshots, restored before and
// taken after each run.
//
// The edge runs these steps in a fixed order (window results by window end,
// raw events by arrival), which a runner does not keep between stages. So
// each event waits in a bag until the watermark passes its timestamp (the
// window's end for window results; for raw events the event clock at its
// arrival, which the live reader stamps and which grows with the stream
// sequence); then everything the watermark has completed runs in the edge's
// order, and a timer is set for what is left.
type liveTailFn struct {
	// Spec is the pipeline, Steps the steps this runs.
	Spec  []byte
	Steps []int
	// ByTime: the input is window results, ordered by window end; else raw
	// events, ordered by stream sequence.
	ByTime bool

	// Buf holds the key's events the watermark has not passed yet.
	Buf state.Bag[Rec]
	// Snap holds the key's operator snapshots (JSON [][]byte, one per
	// step; empty for a stateless step).
	Snap state.Value[[]byte]
	// Due fires when the watermark passes the earliest buffered event
	// (untagged), and, tagged "stale", staleAfter after the key's last
	// event while one of its alerts is pending or firing, to resolve it as
	// stale. One family with two tags: prism v2.77.0 stalls the stage of a
	// DoFn that declares a second event-time timer family.
	Due timers.EventTime

	plan  *pipeline.Plan
	stale int64 // the shortest staleAfter of the alert steps (ns); 0: never
	out   []Rec
}

// staleTag tags the Due timer that resolves stale alerts.
const staleTag = "stale"

func newLiveTailFn(spec []byte, steps []int, byTime bool) *liveTailFn {
	return &liveTailFn{Spec: spec, Steps: steps, ByTime: byTime,
		Buf: state.MakeBagState[Rec]("buf"), Snap: state.MakeValueState[[]byte]("snap"),
		Due: timers.InEventTime("due")}
}

func (f *liveTailFn) Setup() (err error) {
	if f.plan, err = compile(f.Spec); err != nil {
		return err
	}
	for _, i := range f.Steps {
		a := f.plan.Spec.Steps[i].Alert
		if a == nil {
			continue
		}
		d := int64(alert.DefaultStaleAfter)
		if a.StaleAfter != nil {
			d = int64(a.StaleAfter.Duration)
		}
		if d > 0 && (f.stale == 0 || d < f.stale) {
			f.stale = d
		}
	}
	_, err = f.newChain() // fail at setup, not at the first timer
	return err
}

// newChain builds the steps' operators. Each timer firing runs a fresh
// chain restored from the key's snapshots, so nothing an operator keeps
// outside its snapshot leaks from one key to another.
func (f *liveTailFn) newChain() (*chain, error) {
	return newChain(f.plan, f.Steps, func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			f.out = append(f.out, r)
		}
	})
}

// readyAt is the timestamp (unix ms) the watermark must pass for r to run.
func (f *liveTailFn) readyAt(r Rec) int64 {
	if f.ByTime {
		return floorDiv(r.Time, 1e6)
	}
	return floorDiv(r.WM, 1e6)
}

func (f *liveTailFn) ProcessElement(sp state.Provider, tp timers.Provider, key string, r Rec, _ func(Rec)) error {
	if err := f.Buf.Add(sp, r); err != nil {
		return err
	}
	f.Due.Set(tp, time.UnixMilli(f.readyAt(r)+1))
	return nil
}

func (f *liveTailFn) OnTimer(ctx context.Context, ts beam.EventTime, sp state.Provider, tp timers.Provider, key string, timer timers.Context, emit func(Rec)) error {
	fire := int64(ts)
	if timer.Tag == staleTag {
		return f.run(sp, tp, key, nil, fire*1e6, emit)
	}
	buf, _, err := f.Buf.Read(sp)
	if err != nil {
		return err
	}
	var ready, wait []Rec
	next := int64(math.MaxInt64)
	for _, r := range buf {
		if at := f.readyAt(r); at < fire {
			ready = append(ready, r)
		} else {
			wait = append(wait, r)
			next = min(next, at)
		}
	}
	if len(wait) > 0 {
		f.Due.Set(tp, time.UnixMilli(next+1))
	}
	if len(ready) == 0 {
		return nil
	}
	if err := f.Buf.Clear(sp); err != nil {
		return err
	}
	for _, r := range wait {
		if err := f.Buf.Add(sp, r); err != nil {
			return err
		}
	}
	slices.SortFunc(ready, func(a, b Rec) int {
		if f.ByTime && a.Time != b.Time {
			return cmpInt(a.Time, b.Time)
		}
		return cmpInt(a.Offset, b.Offset)
	})
	return f.run(sp, tp, key, ready, math.MinInt64, emit)
}

// run restores the key's operators, runs ready (in order) through them,
// advances them to advance (the stale timer), saves them and emits.
func (f *liveTailFn) run(sp state.Provider, tp timers.Provider, key string, ready []Rec, advance int64, emit func(Rec)) error {
	c, err := f.newChain()
	if err != nil {
		return err
	}
	if err := f.restore(c, sp); err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	f.out = f.out[:0]
	last := int64(math.MinInt64)
	for _, r := range ready {
		ev, err := toEvent(r)
		if err != nil {
			return err
		}
		c.advance(ev.Time)
		c.run(ev)
		last = max(last, ev.Time)
	}
	if advance != math.MinInt64 {
		c.advance(advance)
	}
	if err := f.save(c, sp); err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	if f.stale > 0 && last != math.MinInt64 && holdsState(c) {
		f.Due.Set(tp, time.UnixMilli(floorDiv(last+f.stale, 1e6)+1), timers.WithTag(staleTag))
	}
	for _, o := range f.out {
		emit(o)
	}
	return nil
}

// holdsState reports whether an operator of c keeps state for the key.
func holdsState(c *chain) bool {
	for _, op := range c.ops {
		if s, ok := op.(operators.Sized); ok && s.StateSize() > 0 {
			return true
		}
	}
	return false
}

// restore loads the key's operator state (empty for a new key).
func (f *liveTailFn) restore(c *chain, sp state.Provider) error {
	b, ok, err := f.Snap.Read(sp)
	if err != nil {
		return err
	}
	var snaps [][]byte
	if ok && len(b) > 0 {
		if err := json.Unmarshal(b, &snaps); err != nil {
			return fmt.Errorf("operator state: %w", err)
		}
	}
	for i, op := range c.ops {
		if st, ok := op.(operators.Stateful); ok {
			var data []byte
			if i < len(snaps) {
				data = snaps[i]
			}
			if err := st.Restore(data); err != nil {
				return err
			}
		}
	}
	return nil
}

// save stores the key's operator state.
func (f *liveTailFn) save(c *chain, sp state.Provider) error {
	snaps := make([][]byte, len(c.ops))
	for i, op := range c.ops {
		if st, ok := op.(operators.Stateful); ok {
			b, err := st.Snapshot()
			if err != nil {
				return err
			}
			snaps[i] = b
		}
	}
	b, err := json.Marshal(snaps)
	if err != nil {
		return err
	}
	return f.Snap.Write(sp, b)
}

// liveFileSinkFn appends each event to a file with the edge's file sink
// (connectors/file: one JSON line per event, flushed and synced at the end
// of every bundle). Each worker instance opens the file for appending;
// every flush is one write of whole lines, so instances never interleave
// inside a line.
type liveFileSinkFn struct {
	Path string

	sink *file.Sink
}

func (f *liveFileSinkFn) Setup() (err error) {
	f.sink, err = file.Open(f.Path)
	return err
}

func (f *liveFileSinkFn) ProcessElement(ctx context.Context, r Rec) error {
	ev, err := toEvent(r)
	if err != nil {
		return err
	}
	return f.sink.Write(ctx, ev)
}

func (f *liveFileSinkFn) FinishBundle(ctx context.Context) error { return f.sink.Flush(ctx) }

func (f *liveFileSinkFn) Teardown() {
	if f.sink != nil {
		f.sink.Close()
	}
}

func init() {
	for _, t := range []any{liveTailFn{}, liveFileSinkFn{}} {
		beam.RegisterType(reflect.TypeOf(t))
	}
}
