// Package window owns Eddy's fused window + aggregate operator: it groups
// each key's events into tumbling, sliding, session or count windows by event
// time, folds them with the accumulators of operators/aggregate, and emits one
// event per closed window and key. It decides when a window is complete from
// the watermark (largest event time seen minus allowed lateness), hands
// events that come too late to a callback, and snapshots all open windows.
//
// It must not read the wall clock, start goroutines or do I/O: time moves
// only through the events handed to Process and the event time handed to
// Advance, so a replay from the log gives the same output.
//
// # Semantics
//
// Windows are half-open, [start, end), in unix nanoseconds of event time.
//   - tumbling: size d, aligned to the unix epoch.
//   - sliding: size d starting every e (e divides d), aligned to the epoch;
//     each event is in d/e windows. Internally each key keeps one pane of
//     length e per non-empty slot and a window's result is the merge of its
//     panes, so an event costs one accumulator update whatever d/e is.
//   - session: an event at t opens [t, t+gap); sessions of one key that
//     overlap are merged (accumulators merged). Two events exactly gap
//     apart are in different sessions.
//   - count: every N events of a key make a window. Count windows ignore
//     event time for grouping and allowedLateness; a partial window stays
//     open (and in snapshots) until its N-th event.
//
// The watermark is max event time - allowedLateness. A time window closes
// and emits once the watermark >= end, checked both when an event raises the
// max event time (Process) and when the engine calls Advance, so the output
// does not depend on batch sizes. An event all of whose windows have closed
// is late: it is counted (Stats.Late) and passed to Config.Late, or logged
// if there is no Late callback. It is never dropped silently. An event that
// is out of order but within the lateness is counted in its windows; a
// sliding-window event some of whose windows have closed is counted in the
// others.
//
// # Output
//
// One event per closed window and key that saw at least one event (empty
// windows emit nothing), in order of window end, then key:
//
//	Key    = the key
//	Time   = window end - 1ns (the last instant inside the window, as Beam's
//	         end-of-window timestamp), so a downstream window of the same size
//	         puts it in the same window; for count windows the largest event
//	         time in the window
//	Offset = the largest log offset among the window's events
//	Fields = key (string), window_start and window_end (int64 unix
//	         milliseconds, floor; for count windows the smallest and the
//	         largest event time in the window, both inclusive) and one field
//	         per aggregate (see operators/aggregate for types).
//
// The emitted event and its Fields map are reused for the next output: a
// receiver that keeps it must Clone it (the operators.Emitter contract).
package window

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/aggregate"
	"github.com/eddy-edge/eddy/pipeline"
)

// Names of the fields every window output carries.
const (
	FieldKey         = "key"
	FieldWindowStart = "window_start"
	FieldWindowEnd   = "window_end"
)

// Config configures an Operator.
type Config struct {
	// Name is the step name used in errors and logs (e.g. "window-1").
	Name string
	// Window says how events are grouped; exactly one kind must be set.
	Window pipeline.WindowSpec
	// Aggregates are the entries of the aggregate step that follows the
	// window, e.g. {"avg_t": "avg(temperature)"}. Ignored when Specs is set.
	Aggregates map[string]string
	// Specs are already-parsed aggregates (e.g. compiled against a known
	// schema); they take precedence over Aggregates.
	Specs []aggregate.Spec
	// Late receives each event that arrives after all its windows closed.
	// The event is only valid during the call. Nil: late events are logged.
	Late func(ev *pipeline.Event)
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Stats are the operator's counters. They may be read from any goroutine.
type Stats struct {
	// Late counts events that arrived after all their windows closed.
	Late uint64
	// Errors counts events dropped because an argument could not be
	// evaluated or was not a number for a numeric function.
	Errors uint64
	// Missing counts argument values that were nil (e.g. a missing field)
	// and so were ignored by their aggregates.
	Missing uint64
	// Emitted counts output events.
	Emitted uint64
	// Windows is the number of open windows (panes, for sliding windows).
	Windows int64
}

type kind uint8

const (
	tumbling kind = iota + 1
	sliding
	session
	count
)

func (k kind) String() string {
	return [...]string{"", "tumbling", "sliding", "session", "count"}[k]
}

// arg is one distinct argument expression; specs that share an argument
// evaluate it once per event.
type arg struct {
	field   string
	prog    *pipeline.Program
	numeric bool
	user    string // the first numeric spec using it, for errors
}

// win is one window, pane or session of one key.
type win struct {
	id     uint64 // sessions: unique id, referenced by heap entries
	start  int64
	end    int64
	n      int64
	offset uint64
	accs   []aggregate.Acc
}

type keyState struct {
	key       string
	wins      []*win // sorted by start, non-overlapping
	nextEnd   int64  // tumbling/sliding: end of the next window to emit
	scheduled bool
}

// Operator is the fused window + aggregate operator. Like every operator it
// runs on one goroutine; only Stats may be called from other goroutines.
type Operator struct {
	name                         string
	kind                         kind
	size, every, gap, lateness   int64
	countN                       int64
	specs                        []aggregate.Spec
	specArg                      []int
	args                         []arg
	vals                         []any
	nums                         []float64
	vm                           vm.VM
	keys                         map[string]*keyState
	heap                         closeHeap
	hasMax                       bool
	maxTime                      int64
	nextID                       uint64
	open                         int64
	freeWins                     []*win
	freeKeys                     []*keyState
	scratch                      []aggregate.Acc
	out                          pipeline.Event
	lateFn                       func(ev *pipeline.Event)
	log                          *slog.Logger
	fingerprint                  string
	late, errs, missing, emitted atomic.Uint64
	openStat                     atomic.Int64
}

var (
	_ operators.Operator   = (*Operator)(nil)
	_ operators.TimeDriven = (*Operator)(nil)
	_ operators.Stateful   = (*Operator)(nil)
	_ operators.Sized      = (*Operator)(nil)
)

// New validates cfg and returns an operator with no open windows.
func New(cfg Config) (*Operator, error) {
	name := cfg.Name
	if name == "" {
		name = "window"
	}
	o := &Operator{name: name, keys: map[string]*keyState{}, lateFn: cfg.Late, log: cfg.Logger}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if err := o.setWindow(cfg.Window); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	specs := cfg.Specs
	if len(specs) == 0 {
		var err error
		if specs, err = aggregate.ParseAll(cfg.Aggregates); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		specs = slices.Clone(specs)
		slices.SortFunc(specs, func(a, b aggregate.Spec) int { return strings.Compare(a.Name, b.Name) })
	}
	seen := map[string]bool{}
	for _, s := range specs {
		switch {
		case s.Name == FieldKey || s.Name == FieldWindowStart || s.Name == FieldWindowEnd:
			return nil, fmt.Errorf("%s: aggregate %q: every window output has a field of that name; choose another name", name, s.Name)
		case s.Name == "":
			return nil, fmt.Errorf("%s: aggregate %s has no output name", name, s)
		case seen[s.Name]:
			return nil, fmt.Errorf("%s: aggregate %q is defined twice", name, s.Name)
		case s.Func.Numeric() || s.Func == aggregate.First || s.Func == aggregate.Last || s.Func == aggregate.DistinctCount:
			if s.Arg == nil {
				return nil, fmt.Errorf("%s: aggregate %s: %s needs an argument, e.g. %s(temperature)", name, s.Name, s.Func, s.Func)
			}
		case s.Func != aggregate.Count:
			return nil, fmt.Errorf("%s: aggregate %s: unknown function %v", name, s.Name, s.Func)
		}
		seen[s.Name] = true
	}
	o.specs = specs
	o.specArg = make([]int, len(specs))
	byArg := map[string]int{}
	for i, s := range specs {
		if s.Arg == nil {
			o.specArg[i] = -1
			continue
		}
		j, ok := byArg[s.Arg.Source]
		if !ok {
			j = len(o.args)
			byArg[s.Arg.Source] = j
			o.args = append(o.args, arg{field: s.Field, prog: s.Arg})
		}
		if s.Func.Numeric() && !o.args[j].numeric {
			o.args[j].numeric = true
			o.args[j].user = s.Name + ": " + s.String()
		}
		o.specArg[i] = j
	}
	o.vals = make([]any, len(o.args))
	o.nums = make([]float64, len(o.args))
	o.scratch = make([]aggregate.Acc, len(specs))
	o.out.Fields = make(map[string]any, len(specs)+3)
	o.fingerprint = o.makeFingerprint()
	return o, nil
}

func (o *Operator) setWindow(w pipeline.WindowSpec) error {
	n := 0
	if w.Tumbling != nil {
		n++
		o.kind, o.size, o.every = tumbling, int64(w.Tumbling.Duration), int64(w.Tumbling.Duration)
		if o.size <= 0 {
			return fmt.Errorf("window.tumbling must be > 0, e.g. tumbling: 10s")
		}
	}
	if w.Sliding != nil {
		n++
		o.kind, o.size, o.every = sliding, int64(w.Sliding.Size.Duration), int64(w.Sliding.Every.Duration)
		switch {
		case o.size <= 0:
			return fmt.Errorf("window.sliding.size must be > 0, e.g. size: 1m")
		case o.every <= 0:
			return fmt.Errorf("window.sliding.every must be > 0, e.g. every: 10s")
		case o.every > o.size || o.size%o.every != 0:
			return fmt.Errorf("window.sliding.every %v must divide size %v, e.g. every: %v", w.Sliding.Every, w.Sliding.Size, w.Sliding.Size.Duration/6)
		}
	}
	if w.Session != nil {
		n++
		o.kind, o.gap = session, int64(w.Session.Gap.Duration)
		if o.gap <= 0 {
			return fmt.Errorf("window.session.gap must be > 0, e.g. gap: 30s")
		}
	}
	if w.Count != nil {
		n++
		o.kind, o.countN = count, int64(*w.Count)
		if o.countN <= 0 {
			return fmt.Errorf("window.count must be > 0, e.g. count: 100")
		}
	}
	if n != 1 {
		return fmt.Errorf("window: set exactly one of tumbling, sliding, session or count, e.g. window: {tumbling: 10s}")
	}
	if w.AllowedLateness != nil {
		if w.AllowedLateness.Duration < 0 {
			return fmt.Errorf("window.allowedLateness must be >= 0")
		}
		if o.kind != count {
			o.lateness = int64(w.AllowedLateness.Duration)
		}
	}
	return nil
}

// Schema returns the type sample of every output field (key, window_start,
// window_end and one per aggregate), for strict typing downstream.
func (o *Operator) Schema() pipeline.Schema {
	return aggregate.OutputSchema(o.specs).With(map[string]any{
		FieldKey: "", FieldWindowStart: int64(0), FieldWindowEnd: int64(0),
	})
}

// Stats returns the operator's counters; safe from any goroutine.
func (o *Operator) Stats() Stats {
	return Stats{Late: o.late.Load(), Errors: o.errs.Load(), Missing: o.missing.Load(),
		Emitted: o.emitted.Load(), Windows: o.openStat.Load()}
}

// StateSize returns the number of open windows (sessions, sliding panes,
// partial count windows).
func (o *Operator) StateSize() int { return int(o.open) }

// Watermark returns the current watermark (max event time - allowed
// lateness) and false before the first event.
func (o *Operator) Watermark() (int64, bool) {
	if !o.hasMax {
		return math.MinInt64, false
	}
	return o.watermark(), true
}

func (o *Operator) watermark() int64 {
	if !o.hasMax {
		return math.MinInt64
	}
	if o.maxTime < math.MinInt64+o.lateness {
		return math.MinInt64
	}
	return o.maxTime - o.lateness
}

// Process adds ev to its window(s) and emits every window that ev's event
// time completes. An error means ev was dropped (an argument failed); the
// operator stays usable.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	o.moveTo(ev.Time, out)
	switch o.kind {
	case tumbling, sliding:
		return o.addPane(ev)
	case session:
		return o.addSession(ev)
	default:
		return o.addCount(ev, out)
	}
}

// Advance moves the event clock to eventTime (if later than any event seen)
// and emits the windows the new watermark closes.
func (o *Operator) Advance(eventTime int64, out operators.Emitter) {
	o.moveTo(eventTime, out)
}

// NextDeadline returns the event clock value at which the earliest open
// window closes (its end plus the allowed lateness); false when no window
// is open or the windows count events instead of time. It may be earlier
// than needed (an entry for a session that has since grown); the engine
// then wakes, advances, and asks again.
func (o *Operator) NextDeadline() (int64, bool) {
	if o.kind == count || len(o.heap) == 0 {
		return 0, false
	}
	end := o.heap[0].end
	if end > math.MaxInt64-o.lateness {
		return math.MaxInt64, true
	}
	return end + o.lateness, true
}

// Flush emits every open window now, as if the watermark had jumped to
// the end of time (e.g. at the end of a bounded replay). Partial count
// windows are emitted too.
func (o *Operator) Flush(ctx context.Context, out operators.Emitter) error {
	if o.kind == count {
		keys := make([]string, 0, len(o.keys))
		for k := range o.keys {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			ks := o.keys[k]
			w := ks.wins[0]
			o.emit(out, ks.key, w.start, w.end, w.end, w.accs, w.offset)
			o.dropKey(ks)
		}
		return nil
	}
	o.closeUpTo(math.MaxInt64, out)
	return ctx.Err()
}

func (o *Operator) moveTo(t int64, out operators.Emitter) {
	if o.hasMax && t <= o.maxTime {
		return
	}
	o.hasMax, o.maxTime = true, t
	if o.kind != count {
		o.closeUpTo(o.watermark(), out)
	}
}

// eval computes every argument for ev into o.vals / o.nums.
func (o *Operator) eval(ev *pipeline.Event) error {
	for i := range o.args {
		a := &o.args[i]
		var v any
		if a.field != "" {
			v = ev.Fields[a.field]
		} else {
			var err error
			v, err = a.prog.Run(&o.vm, ev.Fields)
			if err != nil {
				o.errs.Add(1)
				msg, _, _ := strings.Cut(err.Error(), "\n")
				return fmt.Errorf("%s: %s: %s", o.name, a.prog.Source, msg)
			}
		}
		o.vals[i] = v
		if v == nil {
			o.missing.Add(1)
			continue
		}
		if a.numeric {
			x, ok := aggregate.ToFloat(v)
			if !ok {
				o.errs.Add(1)
				return fmt.Errorf("%s: aggregate %s: %s is %T %v, want a finite number", o.name, a.user, a.prog.Source, v, v)
			}
			o.nums[i] = x
		}
	}
	return nil
}

// apply adds the evaluated event to w.
func (o *Operator) apply(w *win, ev *pipeline.Event) {
	for i := range o.specs {
		a := &w.accs[i]
		j := o.specArg[i]
		if j < 0 {
			a.AddEvent()
			continue
		}
		v := o.vals[j]
		if v == nil {
			continue
		}
		f := o.specs[i].Func
		if o.args[j].numeric && f.Numeric() {
			a.AddNumber(f, o.nums[j])
		} else {
			a.AddValue(f, v, ev.Time)
		}
	}
	w.n++
	if ev.Offset > w.offset {
		w.offset = ev.Offset
	}
}

func (o *Operator) lateEvent(ev *pipeline.Event) error {
	n := o.late.Add(1)
	if o.lateFn != nil {
		o.lateFn(ev)
		return nil
	}
	if n&(n-1) == 0 { // 1, 2, 4, 8, ...: visible but not flooding
		o.log.Warn("late event dropped: all its windows already closed; add a late sink or raise allowedLateness",
			"step", o.name, "key", ev.Key, "event_time", ev.Time, "watermark", o.watermark(), "late_total", n)
	}
	return nil
}

func (o *Operator) keyState(key string) *keyState {
	ks := o.keys[key]
	if ks == nil {
		if n := len(o.freeKeys); n > 0 {
			ks = o.freeKeys[n-1]
			o.freeKeys = o.freeKeys[:n-1]
		} else {
			ks = &keyState{}
		}
		ks.key = key
		o.keys[key] = ks
	}
	return ks
}

func (o *Operator) dropKey(ks *keyState) {
	for _, w := range ks.wins {
		o.freeWin(w)
	}
	delete(o.keys, ks.key)
	ks.wins = ks.wins[:0]
	ks.scheduled = false
	ks.nextEnd = 0
	o.freeKeys = append(o.freeKeys, ks)
}

func (o *Operator) newWin(start, end int64) *win {
	var w *win
	if n := len(o.freeWins); n > 0 {
		w = o.freeWins[n-1]
		o.freeWins = o.freeWins[:n-1]
	} else {
		w = &win{accs: make([]aggregate.Acc, len(o.specs))}
	}
	w.start, w.end, w.n, w.offset, w.id = start, end, 0, 0, 0
	o.open++
	o.openStat.Store(o.open)
	return w
}

func (o *Operator) freeWin(w *win) {
	for i := range w.accs {
		w.accs[i].Reset()
	}
	o.open--
	o.openStat.Store(o.open)
	o.freeWins = append(o.freeWins, w)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// addPane handles tumbling and sliding windows: ev goes into the pane
// [p, p+every) of its key; the pane is part of the windows ending at
// p+every ... p+size.
func (o *Operator) addPane(ev *pipeline.Event) error {
	p := floorDiv(ev.Time, o.every) * o.every
	wm := o.watermark()
	if p+o.size <= wm {
		return o.lateEvent(ev)
	}
	if err := o.eval(ev); err != nil {
		return err
	}
	ks := o.keyState(ev.Key)
	var w *win
	i := len(ks.wins) - 1
	for ; i >= 0; i-- { // newest pane first: in-order events hit at once
		if ks.wins[i].start <= p {
			break
		}
	}
	if i >= 0 && ks.wins[i].start == p {
		w = ks.wins[i]
	} else {
		w = o.newWin(p, p+o.every)
		ks.wins = slices.Insert(ks.wins, i+1, w)
	}
	o.apply(w, ev)
	// The first window of this pane that is still open: the pane's own
	// end, or the first window end after the watermark.
	first := p + o.every
	if wm >= first {
		first = floorDiv(wm, o.every)*o.every + o.every
	}
	if !ks.scheduled || first < ks.nextEnd {
		ks.scheduled, ks.nextEnd = true, first
		o.heap.push(entry{end: first, key: ks.key, ks: ks})
	}
	return nil
}

// addSession puts ev into its key's session, merging sessions it connects.
func (o *Operator) addSession(ev *pipeline.Event) error {
	t := ev.Time
	end := t + o.gap
	if end < t { // overflow at the end of time
		end = math.MaxInt64
	}
	ks := o.keys[ev.Key]
	var i, j int
	if ks != nil {
		// Sessions are sorted and disjoint, so their ends are sorted too.
		i, _ = slices.BinarySearchFunc(ks.wins, t, func(w *win, t int64) int {
			if w.end <= t {
				return -1
			}
			return 1
		})
		j, _ = slices.BinarySearchFunc(ks.wins, end, func(w *win, e int64) int {
			if w.start < e {
				return -1
			}
			return 1
		})
	}
	if i == j && end <= o.watermark() {
		return o.lateEvent(ev)
	}
	if err := o.eval(ev); err != nil {
		return err
	}
	if ks == nil {
		ks = o.keyState(ev.Key)
	}
	var w *win
	if i == j {
		w = o.newWin(t, end)
		o.nextID++
		w.id = o.nextID
		ks.wins = slices.Insert(ks.wins, i, w)
		o.heap.push(entry{end: end, key: ks.key, ks: ks, id: w.id})
	} else {
		w = ks.wins[i]
		for _, x := range ks.wins[i+1 : j] {
			for k := range w.accs {
				w.accs[k].Merge(o.specs[k].Func, &x.accs[k])
			}
			w.n += x.n
			w.offset = max(w.offset, x.offset)
			w.end = max(w.end, x.end)
			o.freeWin(x)
		}
		ks.wins = slices.Delete(ks.wins, i+1, j)
		w.start = min(w.start, t)
		w.end = max(w.end, end)
	}
	o.apply(w, ev)
	return nil
}

// addCount adds ev to its key's count window and emits it when full.
func (o *Operator) addCount(ev *pipeline.Event, out operators.Emitter) error {
	if err := o.eval(ev); err != nil {
		return err
	}
	ks := o.keyState(ev.Key)
	if len(ks.wins) == 0 {
		ks.wins = append(ks.wins, o.newWin(ev.Time, ev.Time))
	}
	w := ks.wins[0]
	w.start, w.end = min(w.start, ev.Time), max(w.end, ev.Time)
	o.apply(w, ev)
	if w.n >= o.countN {
		o.emit(out, ks.key, w.start, w.end, w.end, w.accs, w.offset)
		o.dropKey(ks)
	}
	return nil
}

// closeUpTo emits every window whose end is <= wm, in (end, key) order.
func (o *Operator) closeUpTo(wm int64, out operators.Emitter) {
	for len(o.heap) > 0 && o.heap[0].end <= wm {
		e := o.heap.pop()
		ks := e.ks
		if ks.key != e.key || o.keys[ks.key] != ks {
			continue // stale: the key's state was dropped
		}
		if o.kind == session {
			o.closeSession(ks, e, out)
			continue
		}
		if !ks.scheduled || ks.nextEnd != e.end {
			continue // stale: rescheduled earlier or later
		}
		o.emitPanes(ks, e.end, out)
	}
}

func (o *Operator) closeSession(ks *keyState, e entry, out operators.Emitter) {
	k := slices.IndexFunc(ks.wins, func(w *win) bool { return w.id == e.id })
	if k < 0 {
		return // merged into another session
	}
	w := ks.wins[k]
	if w.end != e.end {
		if w.end > e.end { // the session grew: close it at its new end
			o.heap.push(entry{end: w.end, key: ks.key, ks: ks, id: w.id})
		}
		return
	}
	o.emit(out, ks.key, w.start, w.end, w.end-1, w.accs, w.offset)
	ks.wins = slices.Delete(ks.wins, k, k+1)
	o.freeWin(w)
	if len(ks.wins) == 0 {
		o.dropKey(ks)
	}
}

// emitPanes emits the window [end-size, end) of ks and drops the panes no
// later window needs.
func (o *Operator) emitPanes(ks *keyState, end int64, out operators.Emitter) {
	lo := end - o.size
	var only *win
	n := 0
	for _, w := range ks.wins {
		if w.start >= lo && w.start < end {
			only = w
			n++
		}
	}
	switch {
	case n == 1:
		o.emit(out, ks.key, lo, end, end-1, only.accs, only.offset)
	case n > 1:
		var off uint64
		for i := range o.scratch {
			o.scratch[i].Reset()
		}
		for _, w := range ks.wins {
			if w.start >= lo && w.start < end {
				for i := range o.scratch {
					o.scratch[i].Merge(o.specs[i].Func, &w.accs[i])
				}
				off = max(off, w.offset)
			}
		}
		o.emit(out, ks.key, lo, end, end-1, o.scratch, off)
	}
	k := 0
	for k < len(ks.wins) && ks.wins[k].start+o.size <= end {
		o.freeWin(ks.wins[k])
		k++
	}
	if k == len(ks.wins) {
		ks.wins = ks.wins[:0]
		o.dropKey(ks)
		return
	}
	ks.wins = slices.Delete(ks.wins, 0, k)
	next := max(end, ks.wins[0].start) + o.every
	ks.nextEnd = next
	o.heap.push(entry{end: next, key: ks.key, ks: ks})
}

func (o *Operator) emit(out operators.Emitter, key string, start, end, t int64, accs []aggregate.Acc, offset uint64) {
	f := o.out.Fields
	clear(f)
	f[FieldKey] = key
	f[FieldWindowStart] = floorDiv(start, 1e6)
	f[FieldWindowEnd] = floorDiv(end, 1e6)
	for i := range o.specs {
		f[o.specs[i].Name] = accs[i].Result(o.specs[i].Func)
	}
	o.out = pipeline.Event{Time: t, Key: key, Fields: f, Offset: offset}
	o.emitted.Add(1)
	out.Emit(&o.out)
}

func (o *Operator) makeFingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s size=%d every=%d gap=%d count=%d lateness=%d;", o.kind, o.size, o.every, o.gap, o.countN, o.lateness)
	for _, s := range o.specs {
		fmt.Fprintf(&b, " %s=%s", s.Name, s)
	}
	return b.String()
}
