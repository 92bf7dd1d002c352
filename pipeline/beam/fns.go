package beam

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	beamwindow "github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/aggregate"
	"github.com/eddy-edge/eddy/operators/alert"
	"github.com/eddy-edge/eddy/operators/dedupe"
	"github.com/eddy-edge/eddy/operators/fields"
	"github.com/eddy-edge/eddy/operators/filter"
	"github.com/eddy-edge/eddy/operators/mapfields"
	"github.com/eddy-edge/eddy/operators/throttle"
	"github.com/eddy-edge/eddy/operators/window"
	"github.com/eddy-edge/eddy/pipeline"
)

var (
	decodeErrors = beam.NewCounter("eddy", "source_errors")
	stepErrors   = beam.NewCounter("eddy", "step_errors")
	lateEvents   = beam.NewCounter("eddy", "late_events")
	encodeErrors = beam.NewCounter("eddy", "unencodable_events")
)

// compile decodes and compiles the pipeline a DoFn was built with.
func compile(spec []byte) (*pipeline.Plan, error) {
	var p pipeline.Pipeline
	if err := json.Unmarshal(spec, &p); err != nil {
		return nil, fmt.Errorf("decoding the pipeline on a Beam worker: %w", err)
	}
	return pipeline.Compile(&p)
}

// nodeID is the plan's id of step i (the edge's rule name for alerts).
func nodeID(p *pipeline.Plan, i int) string {
	for _, n := range p.Nodes {
		if n.Role == "step" && n.Index == i {
			return n.ID
		}
	}
	return fmt.Sprintf("step-%d", i)
}

// buildStep builds the edge operator of step i, as runner/engine's
// registry does.
func buildStep(p *pipeline.Plan, i int) (operators.Operator, error) {
	st := p.Spec.Steps[i]
	switch {
	case st.Filter != nil:
		return filter.New(*st.Filter, nil)
	case st.Map != nil:
		return mapfields.New(st.Map, nil)
	case st.Select != nil:
		return fields.NewSelect(st.Select), nil
	case st.Drop != nil:
		return fields.NewDrop(st.Drop), nil
	case st.Alert != nil:
		return alert.New(alert.Config{Pipeline: p.ID(), Rule: nodeID(p, i), Spec: *st.Alert})
	case st.Dedupe != nil:
		return dedupe.New(dedupe.Config{Spec: *st.Dedupe})
	case st.Throttle != nil:
		return throttle.New(throttle.Config{Spec: *st.Throttle})
	}
	return nil, fmt.Errorf("step %s does not run on Beam", nodeID(p, i))
}

// chain runs operators one after the other, as the edge's fused chain does.
type chain struct {
	ops  []operators.Operator
	emit []operators.Emitter
	out  func(ev *pipeline.Event)
}

func newChain(p *pipeline.Plan, steps []int, out func(ev *pipeline.Event)) (*chain, error) {
	c := &chain{out: out}
	for _, i := range steps {
		op, err := buildStep(p, i)
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
	}
	c.emit = make([]operators.Emitter, len(c.ops)+1)
	c.emit[len(c.ops)] = operators.EmitFunc(func(ev *pipeline.Event) { c.out(ev) })
	for i := len(c.ops) - 1; i >= 0; i-- {
		op, next := c.ops[i], c.emit[i+1]
		c.emit[i] = operators.EmitFunc(func(ev *pipeline.Event) {
			if err := op.Process(ev, next); err != nil {
				stepErrors.Inc(context.Background(), 1)
			}
		})
	}
	return c, nil
}

func (c *chain) run(ev *pipeline.Event) { c.emit[0].Emit(ev) }

// advance passes the event clock to the time-driven operators.
func (c *chain) advance(t int64) {
	for i, op := range c.ops {
		if td, ok := op.(operators.TimeDriven); ok {
			td.Advance(t, c.emit[i+1])
		}
	}
}

// decodeFn parses exported records, decodes payloads with the source's
// format, stamps event time and key and runs the steps before the window.
type decodeFn struct {
	Spec  []byte
	Steps []int

	plan    *pipeline.Plan
	chain   *chain
	vm      vm.VM
	evTime  *pipeline.Program
	key     *pipeline.Program
	format  mqtt.Format
	filter  string
	pending []Rec
}

func (f *decodeFn) Setup() error {
	var err error
	if f.plan, err = compile(f.Spec); err != nil {
		return err
	}
	src := f.plan.Spec.Source.MQTT
	f.format, f.filter = mqtt.Format(src.Format), src.Topic
	if e := f.plan.Spec.EventTime; e != "" {
		if f.evTime, err = pipeline.CompileExpr(e, nil); err != nil {
			return err
		}
	}
	if k := f.plan.Spec.Key; k != "" {
		if f.key, err = pipeline.CompileExpr(k, nil); err != nil {
			return err
		}
	}
	f.chain, err = newChain(f.plan, f.Steps, func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			f.pending = append(f.pending, r)
		}
	})
	return err
}

func (f *decodeFn) ProcessElement(ctx context.Context, line string, emit func(beam.EventTime, Rec)) {
	rec, err := walexport.Parse([]byte(line))
	if err != nil {
		decodeErrors.Inc(ctx, 1)
		log.Warnf(ctx, "input: %v", err)
		return
	}
	if !mqtt.MatchTopic(f.filter, rec.Topic) {
		return
	}
	f.pending = f.pending[:0]
	err = mqtt.Decode(f.format, rec.Topic, rec.Payload, func(d mqtt.Decoded) {
		ev := &pipeline.Event{Time: rec.Time.UnixNano(), Key: rec.Topic, Topic: rec.Topic, Fields: d.Fields, Offset: rec.Offset, Raw: d.Raw}
		f.stamp(ctx, ev)
		f.chain.run(ev)
	})
	if err != nil {
		decodeErrors.Inc(ctx, 1)
	}
	for _, r := range f.pending {
		emit(mtime.FromMilliseconds(floorDiv(r.Time, 1e6)), r)
	}
}

// MaxFutureSkew is how far ahead of its arrival an event time may be, as
// on the edge (runner/engine's default MaxFutureSkew): a later one (a
// device with a wrong clock) would close every window at once, so the
// arrival time is used instead and the error counted.
const MaxFutureSkew = time.Hour

// stamp sets event time and key as the edge does: a failing expression
// falls back to arrival time / topic and is counted.
func (f *decodeFn) stamp(ctx context.Context, ev *pipeline.Event) {
	if f.evTime != nil {
		v, err := f.evTime.Run(&f.vm, ev.Fields)
		if err == nil {
			var t int64
			if t, err = pipeline.EventTimeNanos(v); err == nil && t > ev.Time+int64(MaxFutureSkew) {
				err = fmt.Errorf("event time more than %v ahead of arrival", MaxFutureSkew)
			}
			if err == nil {
				ev.Time = t
			}
		}
		if err != nil {
			decodeErrors.Inc(ctx, 1)
		}
	}
	if f.key != nil {
		v, err := f.key.Run(&f.vm, ev.Fields)
		switch {
		case err != nil || v == nil:
			decodeErrors.Inc(ctx, 1)
		default:
			if s, ok := v.(string); ok {
				ev.Key = s
			} else {
				ev.Key = string(pipeline.AppendValue(nil, v))
			}
		}
	}
}

// stepsFn runs stateless steps on each event.
type stepsFn struct {
	Spec  []byte
	Steps []int

	chain *chain
	out   []Rec
}

func (f *stepsFn) Setup() error {
	plan, err := compile(f.Spec)
	if err != nil {
		return err
	}
	f.chain, err = newChain(plan, f.Steps, func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			f.out = append(f.out, r)
		}
	})
	return err
}

func (f *stepsFn) ProcessElement(r Rec, emit func(Rec)) error {
	ev, err := toEvent(r)
	if err != nil {
		return err
	}
	f.out = f.out[:0]
	f.chain.run(ev)
	for _, o := range f.out {
		emit(o)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func blockOf(r Rec) (int64, Rec) { return r.Offset / BlockSize, r }

func blockTime(r Rec) (int64, int64) { return r.Offset / BlockSize, r.Time }

func maxTime(a, b int64) int64 { return max(a, b) }

func recTime(r Rec) int64 { return r.Time }

func keyByKey(r Rec) (string, Rec) { return r.Key, r }

// lateFn decides which events the edge found late: it holds the window's
// geometry and lateness, and scans the marks of one block (markFn).
type lateFn struct {
	Spec   []byte
	Window int

	w                     *pipeline.WindowSpec
	size, every, lateness int64
	bounds                *bounds
}

func (f *lateFn) Setup() error {
	plan, err := compile(f.Spec)
	if err != nil {
		return err
	}
	f.w = plan.Spec.Steps[f.Window].Window
	if f.w.AllowedLateness != nil {
		f.lateness = int64(f.w.AllowedLateness.Duration)
	}
	switch {
	case f.w.Tumbling != nil:
		f.size = int64(f.w.Tumbling.Duration)
		f.every = f.size
	case f.w.Sliding != nil:
		f.size, f.every = int64(f.w.Sliding.Size.Duration), int64(f.w.Sliding.Every.Duration)
	}
	return nil
}

// ProcessElement scans the marks of one block (the events that may have
// arrived after some of their windows closed, and the events that raised
// the block's largest event time) in log order, and emits, keyed by log
// offset, the watermark at arrival of each event the edge found late
// (math.MaxInt64) or partly late (some of its sliding windows closed).
func (f *lateFn) ProcessElement(ctx context.Context, block int64, marks func(*mark) bool, spans func(*int64, *span) bool, emit func(int64, int64)) {
	if f.bounds == nil {
		f.bounds = readBounds(spans)
	}
	var all []mark
	var mk mark
	for marks(&mk) {
		all = append(all, mk)
	}
	slices.SortFunc(all, func(a, b mark) int { return cmpInt(a.Offset, b.Offset) })
	m, have := f.bounds.before(block)
	for _, mk := range all {
		if !have || mk.Time > m {
			have, m = true, mk.Time
		}
		wm := f.watermark(m)
		switch {
		case f.isLate(mk.Time, wm):
			emit(mk.Offset, math.MaxInt64)
		case f.firstEnd(mk.Time) <= wm:
			emit(mk.Offset, wm)
		}
	}
}

// watermark is the edge window's watermark when its event clock is m.
func (f *lateFn) watermark(m int64) int64 {
	if m < math.MinInt64+f.lateness {
		return math.MinInt64
	}
	return m - f.lateness
}

// mark is an event's log offset and event time, all the lateness scan
// needs of it.
type mark struct {
	Offset, Time int64
}

// span is the earliest and latest event time of one block of log offsets.
type span struct {
	Min, Max int64
}

func mergeSpan(a, b span) span { return span{Min: min(a.Min, b.Min), Max: max(a.Max, b.Max)} }

// bounds holds, per block, the largest event time of the blocks before it
// and of the blocks up to and including it (the edge's event clock at the
// arrival of any event of the block lies between the two), and the block's
// earliest event time.
type bounds struct {
	prev, upto, first map[int64]int64
}

// readBounds builds bounds from the (block, span) side input. It is read
// once per DoFn instance: the side input is in the global window of a
// bounded input, the same for every element.
func readBounds(spans func(*int64, *span) bool) *bounds {
	type bs struct {
		block int64
		span
	}
	var all []bs
	var b int64
	var sp span
	for spans(&b, &sp) {
		all = append(all, bs{b, sp})
	}
	slices.SortFunc(all, func(x, y bs) int { return cmpInt(x.block, y.block) })
	bd := &bounds{prev: make(map[int64]int64, len(all)), upto: make(map[int64]int64, len(all)), first: make(map[int64]int64, len(all))}
	have, m := false, int64(math.MinInt64)
	for _, e := range all {
		if have {
			bd.prev[e.block] = m
		}
		if !have || e.Max > m {
			have, m = true, e.Max
		}
		bd.upto[e.block] = m
		bd.first[e.block] = e.Min
	}
	return bd
}

// before returns the largest event time of the blocks before block, if
// any.
func (bd *bounds) before(block int64) (int64, bool) {
	m, ok := bd.prev[block]
	return m, ok
}

// blockSpanFn computes the span of event times of each block of log
// offsets, combined inside each bundle (the direct runner does not lift
// combiners: without it every event would be grouped).
type blockSpanFn struct {
	spans map[int64]span
}

// ProcessElement folds r into its block's span; the spans are emitted
// when the bundle finishes (emit is in the signature so that Beam's
// register package can type FinishBundle's emitter).
func (f *blockSpanFn) ProcessElement(r Rec, _ func(int64, span)) {
	if f.spans == nil {
		f.spans = make(map[int64]span)
	}
	b := r.Offset / BlockSize
	if sp, ok := f.spans[b]; ok {
		f.spans[b] = mergeSpan(sp, span{r.Time, r.Time})
	} else {
		f.spans[b] = span{r.Time, r.Time}
	}
}

func (f *blockSpanFn) FinishBundle(emit func(int64, span)) {
	for b, sp := range f.spans {
		emit(b, sp)
	}
	f.spans = nil
}

// markFn picks the events the lateness scan needs, in the blocks where an
// event may have arrived after a window of its closed (the block's
// earliest event's first window ends at or before the watermark of the
// largest event time up to the end of the block): those events
// (candidates), and the events that raise the event clock inside their
// block (the scan needs them to know the clock at each candidate). In a
// log whose blocks span less event time than allowedLateness plus the
// distance to a window end there are none: the events never leave this
// fused stage.
type markFn struct {
	lateFn
}

// ProcessElement takes an event's log offset and event time only
// (offsetTime): the direct runner holds a side input consumer's whole
// main input until the side input is complete.
func (f *markFn) ProcessElement(offset, t int64, spans func(*int64, *span) bool, emit func(int64, mark)) {
	if f.bounds == nil {
		f.bounds = readBounds(spans)
	}
	b := offset / BlockSize
	wm := f.watermark(f.bounds.upto[b])
	if f.firstEnd(f.bounds.first[b]) > wm {
		return // no event of this block can have arrived late
	}
	prev, have := f.bounds.before(b)
	if !have || t > prev || f.firstEnd(t) <= wm {
		emit(b, mark{Offset: offset, Time: t})
	}
}

// offsetTime is what markFn needs of an event.
func offsetTime(r Rec) (int64, int64) { return r.Offset, r.Time }

// splitFn sends the events the edge found late to the late sinks and
// stamps the others with the watermark they arrived at (Rec.WM) when some
// of their windows had closed, for windowKeyFn.
type splitFn struct {
	wm map[int64]int64
}

func (f *splitFn) ProcessElement(ctx context.Context, r Rec, wms func(*int64, *int64) bool, keep, late func(Rec)) {
	if f.wm == nil {
		f.wm = make(map[int64]int64)
		var off, wm int64
		for wms(&off, &wm) {
			f.wm[off] = wm
		}
	}
	wm, ok := f.wm[r.Offset]
	switch {
	case !ok:
		r.WM = noWM
	case wm == math.MaxInt64:
		lateEvents.Inc(ctx, 1)
		late(r)
		return
	default:
		r.WM = wm
	}
	keep(r)
}

// scanBlock calls fn for each record of one block in log order with m, the
// largest event time of all records up to and including it (the edge's
// event clock when the record arrived). maxes yields (block, largest event
// time) of every block.
func scanBlock(block int64, recs func(*Rec) bool, maxes func(*int64, *int64) bool, fn func(r Rec, m int64)) {
	have, m := false, int64(math.MinInt64)
	var b, t int64
	for maxes(&b, &t) {
		if b < block && (!have || t > m) {
			have, m = true, t
		}
	}
	var all []Rec
	var r Rec
	for recs(&r) {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b Rec) int { return cmpInt(a.Offset, b.Offset) })
	for _, r := range all {
		if !have || r.Time > m {
			have, m = true, r.Time
		}
		fn(r, m)
	}
}

// arrivalFn gives every record of a block the edge's event clock at its
// arrival (in Rec.WM) and keys it by partition key, for sessionFn.
type arrivalFn struct{}

func (arrivalFn) ProcessElement(block int64, recs func(*Rec) bool, maxes func(*int64, *int64) bool, emit func(string, Rec)) {
	scanBlock(block, recs, maxes, func(r Rec, m int64) {
		r.WM = m
		emit(r.Key, r)
	})
}

// sessionFn runs the edge's window operator over one key's events in log
// order, advancing it to the edge's event clock at each event's arrival:
// the same sessions as the edge, closed sessions not reopened, late events
// decided by the same code. Beam's Sessions windowing is not used: its
// merging differs from the edge's once a session has closed, and prism
// (v2.77.0) leaves overlapping sessions unmerged when a key's elements
// arrive in several bundles.
type sessionFn struct {
	Spec   []byte
	Window int

	plan *pipeline.Plan
}

func (f *sessionFn) Setup() (err error) {
	f.plan, err = compile(f.Spec)
	return err
}

func (f *sessionFn) ProcessElement(ctx context.Context, key string, recs func(*Rec) bool, emit func(Rec), late func(Rec)) error {
	var lateOut []Rec
	op, err := window.New(window.Config{Name: nodeID(f.plan, f.Window), Window: *f.plan.Spec.Steps[f.Window].Window,
		Aggregates: f.plan.Spec.Steps[f.Window+1].Aggregate,
		Late: func(ev *pipeline.Event) {
			if r, ok := toRec(ev); ok {
				lateOut = append(lateOut, r)
			}
		}})
	if err != nil {
		return err
	}
	var all []Rec
	var r Rec
	for recs(&r) {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b Rec) int { return cmpInt(a.Offset, b.Offset) })
	out := operators.EmitFunc(func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			emit(r)
		}
	})
	for _, r := range all {
		ev, err := toEvent(r)
		if err != nil {
			return err
		}
		op.Advance(r.WM, out)
		if err := op.Process(ev, out); err != nil {
			stepErrors.Inc(ctx, 1)
		}
	}
	if err := op.Flush(ctx, out); err != nil {
		return err
	}
	for _, r := range lateOut {
		lateEvents.Inc(ctx, 1)
		late(r)
	}
	return nil
}

// firstEnd is the end of the earliest window that holds an event at t.
func (f *lateFn) firstEnd(t int64) int64 {
	return floorDiv(t, f.every)*f.every + f.every
}

// isLate is the edge window operator's test (operators/window): an event
// all of whose windows have closed.
func (f *lateFn) isLate(t, wm int64) bool {
	p := floorDiv(t, f.every) * f.every
	return p+f.size <= wm
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// windowKeyFn keys events for the combiner, dropping an event from the
// sliding windows that had already closed when it arrived (Rec.WM, set by
// splitFn).
type windowKeyFn struct{}

func (windowKeyFn) ProcessElement(w beam.Window, r Rec, emit func(string, Rec)) {
	if r.WM != noWM {
		if iw, ok := w.(beamwindow.IntervalWindow); ok && int64(iw.End)*1e6 <= r.WM {
			return
		}
	}
	emit(r.Key, r)
}

// accum is a window's accumulators: the edge's aggregate.Acc values, so
// the combiner and the edge share one implementation of every aggregate.
type accum struct {
	Funcs  []aggregate.Func
	Accs   []aggregate.Acc
	Offset uint64
}

func encodeAccum(a *accum) ([]byte, error) {
	b := []byte{byte(len(a.Funcs))}
	b = binary.AppendUvarint(b, a.Offset)
	for i, fn := range a.Funcs {
		b = append(b, byte(fn))
		b = a.Accs[i].AppendBinary(fn, b)
	}
	return b, nil
}

func decodeAccum(b []byte) (*accum, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty accumulator")
	}
	n := int(b[0])
	r := aggregate.NewReader(b[1:])
	a := &accum{Funcs: make([]aggregate.Func, n), Accs: make([]aggregate.Acc, n), Offset: r.Uvarint()}
	rest := r.Rest()
	for i := 0; i < n; i++ {
		if len(rest) == 0 {
			return nil, fmt.Errorf("accumulator truncated at %d of %d", i, n)
		}
		a.Funcs[i] = aggregate.Func(rest[0])
		var err error
		if rest, err = a.Accs[i].DecodeBinary(a.Funcs[i], rest[1:]); err != nil {
			return nil, err
		}
	}
	return a, r.Err()
}

// aggregateFn is the CombineFn of a window's aggregates.
type aggregateFn struct {
	Spec   []byte
	Window int

	folder *window.Folder
}

func (f *aggregateFn) Setup() (err error) {
	f.folder, err = newFolder(f.Spec, f.Window)
	return err
}

// newFolder builds the window step's Folder (its aggregate follows it).
func newFolder(spec []byte, win int) (*window.Folder, error) {
	plan, err := compile(spec)
	if err != nil {
		return nil, err
	}
	return window.NewFolder(window.Config{Name: nodeID(plan, win), Window: *plan.Spec.Steps[win].Window,
		Aggregates: plan.Spec.Steps[win+1].Aggregate})
}

func (f *aggregateFn) CreateAccumulator() *accum {
	a := &accum{Accs: f.folder.NewAccs()}
	for _, s := range f.folder.Specs() {
		a.Funcs = append(a.Funcs, s.Func)
	}
	return a
}

func (f *aggregateFn) AddInput(a *accum, r Rec) (*accum, error) {
	ev, err := toEvent(r)
	if err != nil {
		return a, err
	}
	if err := f.folder.Add(a.Accs, ev); err != nil {
		stepErrors.Inc(context.Background(), 1)
		return a, nil
	}
	a.Offset = max(a.Offset, uint64(r.Offset))
	return a, nil
}

func (f *aggregateFn) MergeAccumulators(a, b *accum) *accum {
	f.folder.Merge(a.Accs, b.Accs)
	a.Offset = max(a.Offset, b.Offset)
	return a
}

// extractFn turns a key's accumulators and its window into the edge's
// window output event.
type extractFn struct {
	Spec   []byte
	Window int

	folder *window.Folder
	out    []Rec
}

func (f *extractFn) Setup() (err error) {
	f.folder, err = newFolder(f.Spec, f.Window)
	return err
}

func (f *extractFn) ProcessElement(w beam.Window, key string, a *accum, emit func(Rec)) error {
	iw, ok := w.(beamwindow.IntervalWindow)
	if !ok {
		return fmt.Errorf("window result in a %T, want an interval window", w)
	}
	f.out = f.out[:0]
	f.folder.Emit(operators.EmitFunc(func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			f.out = append(f.out, r)
		}
	}), key, int64(iw.Start)*1e6, int64(iw.End)*1e6, a.Accs, a.Offset)
	for _, r := range f.out {
		emit(r)
	}
	return nil
}

// tailFn runs the keyed, ordered steps (alert, dedupe, throttle and what
// follows them) over one key's events in the order the edge sees them.
type tailFn struct {
	Spec   []byte
	Steps  []int
	ByTime bool // window results: order by window end; else by log offset

	plan *pipeline.Plan
	out  []Rec
}

func (f *tailFn) Setup() (err error) {
	f.plan, err = compile(f.Spec)
	return err
}

// end yields the largest event time of the input: one value, read as an
// iterable so that a runner which has not materialised the singleton for
// this bundle (prism was seen doing so under load) cannot fail the job; the
// key's own last event time is used then.
func (f *tailFn) ProcessElement(key string, recs func(*Rec) bool, end func(*int64) bool, emit func(Rec)) error {
	c, err := newChain(f.plan, f.Steps, func(ev *pipeline.Event) {
		if r, ok := toRec(ev); ok {
			f.out = append(f.out, r)
		}
	})
	if err != nil {
		return err
	}
	var all []Rec
	var r Rec
	for recs(&r) {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b Rec) int {
		if f.ByTime && a.Time != b.Time {
			return cmpInt(a.Time, b.Time)
		}
		return cmpInt(a.Offset, b.Offset)
	})
	f.out = f.out[:0]
	for _, r := range all {
		ev, err := toEvent(r)
		if err != nil {
			return err
		}
		c.advance(ev.Time)
		c.run(ev)
	}
	last := int64(math.MinInt64)
	var t int64
	for end(&t) {
		last = max(last, t)
	}
	if len(all) > 0 {
		last = max(last, all[len(all)-1].Time)
	}
	c.advance(last)
	for _, o := range f.out {
		emit(o)
	}
	return nil
}

func printLine(ctx context.Context, line string) { log.Info(ctx, line) }
