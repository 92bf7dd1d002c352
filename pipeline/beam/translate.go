package beam

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamwindow "github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local" // file paths without a scheme
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/eddy-edge/eddy/pipeline"
)

// BlockSize is how many consecutive log offsets one lateness block holds
// (see the package doc and lateness): the largest event time of each block
// is computed in parallel, then scanned inside the few blocks where an
// event may have arrived after its windows closed. Small blocks keep that
// bound tight (1,024 offsets at 10,000 events/s span 0.1 s of event time)
// and the side input of block maxima small (one entry per block).
const BlockSize = 1 << 10

// Options configure a translation.
type Options struct {
	// Input is a file or glob of JSON Lines written by `eddy export`, or a
	// stream on the hub: nats://HOST:PORT/STREAM?subject=...&domain=...
	// (see HubInput).
	Input string
	// OutputDir, if set, is where relative file sink paths are written;
	// default: as written in the pipeline (relative to the working
	// directory).
	OutputDir string
	// MQTTBroker is the broker mqtt sinks publish to (e.g.
	// tcp://127.0.0.1:1883). On an edge they publish to its own broker;
	// on Beam there is none, so pipelines with mqtt sinks need it.
	MQTTBroker string
	// Cloud is where cloud sinks publish: the hub's up stream,
	// nats://HOST:4222?domain=hub&node=NAME (see CloudOutput).
	Cloud string
}

// Rec is one event between Beam stages. Its Beam coder is binary
// (encodeRec), and so are its fields (Packed): a stage decodes an event
// once, with toEvent, only where an edge operator needs it.
type Rec struct {
	// Key is the partition key.
	Key string
	// Time is the event time in unix nanoseconds (Beam's element
	// timestamps have milliseconds only).
	Time int64
	// Offset is the log offset of the record (the largest of a window's
	// records for window results).
	Offset int64
	// Topic is the MQTT topic the record arrived on.
	Topic string
	// Packed is the event's fields in the binary form of packFields; use
	// toEvent, or Rec.JSON for the JSON object a sink writes. The names
	// are in map order: never hash or compare Packed.
	Packed []byte
	// WM is the watermark the edge had when the event arrived (unix ns)
	// where the lateness pass found that some of its windows had closed,
	// noWM where none had; for session windows it is the edge's event
	// clock at the event's arrival.
	WM int64
}

// Support says why a plan cannot run on Beam, or nil when it can.
func Support(p *pipeline.Plan) error {
	var errs []string
	add := func(path, why string) { errs = append(errs, path+": "+why) }
	if p.Spec.Source.MQTT == nil {
		add("spec.source", "only mqtt sources can be replayed on Beam (stream sources such as twin are not exported)")
	}
	seenWindow := false
	for i, st := range p.Spec.Steps {
		path := fmt.Sprintf("spec.steps[%d]", i)
		switch {
		case st.Window != nil:
			if st.Window.Count != nil {
				add(path+".window.count", "count windows are not supported on Beam (Beam windows are event-time intervals); use tumbling, sliding or session")
			}
			if seenWindow {
				add(path+".window", "a second window is not supported on Beam yet")
			}
			seenWindow = true
		case st.Enrich != nil:
			add(path+".enrich", "enrich reads the edge's device twins, which do not exist on Beam")
		case (st.Alert != nil || st.Dedupe != nil || st.Throttle != nil) && !seenWindow && hasWindowAfter(p.Spec.Steps[i:]):
			add(path, "alert, dedupe and throttle before a window are not supported on Beam; move them after the aggregate")
		}
	}
	for i, s := range append(append([]pipeline.Sink{}, p.Spec.Sinks...), p.Spec.Late...) {
		if s.File == nil && s.Log == nil && s.MQTT == nil && s.Cloud == nil {
			add(fmt.Sprintf("sink %d (%s)", i, sinkKind(s)), "only file, log, mqtt and cloud sinks run on Beam")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pipeline %s cannot run on Beam:\n  %s", p.ID(), strings.Join(errs, "\n  "))
	}
	return nil
}

func hasWindowAfter(steps []pipeline.Step) bool {
	for _, st := range steps {
		if st.Window != nil {
			return true
		}
	}
	return false
}

func sinkKind(s pipeline.Sink) string {
	switch {
	case s.MQTT != nil:
		return "mqtt"
	case s.File != nil:
		return "file"
	case s.Log != nil:
		return "log"
	case s.Cloud != nil:
		return "cloud"
	case s.Action != nil:
		return "action"
	}
	return "unknown"
}

// Translate adds the pipeline to a new Beam pipeline and returns it. It
// fails, before anything runs, when the plan uses something Beam cannot
// run (Support).
func Translate(p *pipeline.Plan, opts Options) (*beam.Pipeline, error) {
	if err := Support(p); err != nil {
		return nil, err
	}
	if opts.Input == "" {
		return nil, fmt.Errorf("no input: give the JSON Lines files `eddy export` wrote (--input)")
	}
	doc := pipeline.Pipeline{APIVersion: pipeline.APIVersion, Kind: pipeline.Kind,
		Metadata: pipeline.ObjectMeta{Name: p.Name, Namespace: p.Namespace}, Spec: p.Spec}
	spec, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding the plan for Beam workers: %w", err)
	}
	bp, s := beam.NewPipelineWithRoot()
	s = s.Scope(p.ID())
	parts := split(p)

	var lines beam.PCollection
	if hub, ok, err := ParseHubInput(opts.Input); err != nil {
		return nil, err
	} else if ok && hub.Live {
		if err := translateLive(s, p, spec, parts, hub, opts); err != nil {
			return nil, err
		}
		return bp, nil
	} else if ok {
		lines = beam.ParDo(s, &hubReadFn{In: hub}, beam.Impulse(s))
	} else {
		lines = textio.Read(s, opts.Input)
	}
	recs := beam.ParDo(s, &decodeFn{Spec: spec, Steps: parts.pre}, lines)
	var late beam.PCollection
	out := recs
	switch {
	case parts.window >= 0 && p.Spec.Steps[parts.window].Window.Session != nil:
		results, lt := sessions(s.Scope("sessions"), spec, parts.window, recs)
		late, out = lt, results
	case parts.window >= 0:
		w := p.Spec.Steps[parts.window].Window
		keep, lt := lateness(s.Scope("lateness"), spec, parts.window, recs)
		late = lt
		win := beam.WindowInto(s, windowFn(w), keep)
		keyed := beam.ParDo(s, &windowKeyFn{}, win)
		accs := beam.CombinePerKey(s, &aggregateFn{Spec: spec, Window: parts.window}, keyed)
		results := beam.ParDo(s, &extractFn{Spec: spec, Window: parts.window}, accs)
		out = beam.WindowInto(s, beamwindow.NewGlobalWindows(), results)
	}
	if len(parts.post) > 0 {
		out = beam.ParDo(s, &stepsFn{Spec: spec, Steps: parts.post}, out)
	}
	if len(parts.tail) > 0 {
		keyed := beam.ParDo(s, keyByKey, out)
		grouped := beam.GroupByKey(s, keyed)
		end := beam.Combine(s, maxTime, beam.ParDo(s, recTime, out))
		out = beam.ParDo(s, &tailFn{Spec: spec, Steps: parts.tail, ByTime: parts.window >= 0}, grouped, beam.SideInput{Input: end})
	}
	if err := sinks(s, p.Spec.Sinks, out, opts); err != nil {
		return nil, err
	}
	if late.IsValid() && len(p.Spec.Late) > 0 {
		if err := sinks(s.Scope("late"), p.Spec.Late, late, opts); err != nil {
			return nil, err
		}
	}
	return bp, nil
}

// parts says which steps run where on Beam.
type parts struct {
	pre    []int // stateless steps before the window (or all, without window and state)
	window int   // index of the window step (-1: none); the aggregate follows it
	post   []int // stateless steps after the aggregate, before any keyed state
	tail   []int // from the first alert/dedupe/throttle to the end, run per key in order
}

func split(p *pipeline.Plan) parts {
	pt := parts{window: -1}
	steps := p.Spec.Steps
	stateful := func(st pipeline.Step) bool { return st.Alert != nil || st.Dedupe != nil || st.Throttle != nil }
	i := 0
	for ; i < len(steps) && steps[i].Window == nil && !stateful(steps[i]); i++ {
		pt.pre = append(pt.pre, i)
	}
	if i < len(steps) && steps[i].Window != nil {
		pt.window = i
		i += 2 // the window and its aggregate
		for ; i < len(steps) && !stateful(steps[i]); i++ {
			pt.post = append(pt.post, i)
		}
	}
	for ; i < len(steps); i++ {
		pt.tail = append(pt.tail, i)
	}
	return pt
}

func windowFn(w *pipeline.WindowSpec) *beamwindow.Fn {
	if w.Tumbling != nil {
		return beamwindow.NewFixedWindows(w.Tumbling.Duration)
	}
	return beamwindow.NewSlidingWindows(w.Sliding.Every.Duration, w.Sliding.Size.Duration)
}

// lateness finds the events the edge saw after (some of) their windows had
// closed (see the package doc) without regrouping the events:
//
//  1. the earliest and latest event time of each block of BlockSize log
//     offsets (blockSpanFn, combined per bundle, then across bundles);
//  2. with those as a side input, each event's event clock at arrival is
//     bounded by the largest time of the blocks before its block and of
//     the blocks up to it. In the blocks where an event may have arrived
//     after its first window closed, markFn keeps (offset, time) of those
//     events and of the events that raise the clock inside the block (the
//     scan needs them); everywhere else it keeps nothing;
//  3. lateFn scans each block's marks in log order: the exact event clock
//     at each arrival, as the edge had it, and the watermarks of the late
//     and partly late events (few: a side input);
//  4. splitFn sends the late events to keep's complement, late, and
//     stamps the partly late ones with their watermark (Rec.WM).
//
// The main input keeps its timestamps: a grouping in the global window
// would move every timestamp to the end of time and make the windowed
// data late on runners that track watermarks (prism).
func lateness(s beam.Scope, spec []byte, win int, recs beam.PCollection) (keep, late beam.PCollection) {
	spans := beam.CombinePerKey(s, mergeSpan, beam.ParDo(s, &blockSpanFn{}, recs))
	marks := beam.ParDo(s, &markFn{lateFn{Spec: spec, Window: win}}, beam.ParDo(s, offsetTime, recs), beam.SideInput{Input: spans})
	wms := beam.ParDo(s, &lateFn{Spec: spec, Window: win}, beam.GroupByKey(s, marks), beam.SideInput{Input: spans})
	return beam.ParDo2(s, &splitFn{}, recs, beam.SideInput{Input: wms})
}

// sessions runs session windows per key with the edge's own operator (see
// sessionFn), fed with each event's arrival event clock.
func sessions(s beam.Scope, spec []byte, win int, recs beam.PCollection) (results, late beam.PCollection) {
	byBlock := beam.ParDo(s, blockOf, recs)
	blockMax := beam.CombinePerKey(s, maxTime, beam.ParDo(s, blockTime, recs))
	keyed := beam.ParDo(s, &arrivalFn{}, beam.GroupByKey(s, byBlock), beam.SideInput{Input: blockMax})
	return beam.ParDo2(s, &sessionFn{Spec: spec, Window: win}, beam.GroupByKey(s, keyed))
}

func sinks(s beam.Scope, list []pipeline.Sink, col beam.PCollection, opts Options) error {
	for i, sk := range list {
		lines := beam.ParDo(s, toLine, col)
		switch {
		case sk.File != nil:
			path := sk.File.Path
			if opts.OutputDir != "" && !strings.HasPrefix(path, "/") {
				path = strings.TrimSuffix(opts.OutputDir, "/") + "/" + path
			}
			textio.Write(s.Scope(fmt.Sprintf("sink-%d", i)), path, lines)
		case sk.Log != nil:
			beam.ParDo0(s, printLine, lines)
		case sk.Cloud != nil:
			if err := cloudSink(s, sk.Cloud, col, opts); err != nil {
				return fmt.Errorf("sink %d: %w", i, err)
			}
		case sk.MQTT != nil:
			if opts.MQTTBroker == "" {
				return fmt.Errorf("sink %d publishes to MQTT topic %q: give the broker to publish to (--mqtt-broker tcp://HOST:1883)", i, sk.MQTT.Topic)
			}
			spec, err := json.Marshal(sk.MQTT)
			if err != nil {
				return err
			}
			beam.ParDo0(s, &mqttSinkFn{Broker: opts.MQTTBroker, Sink: spec}, col)
		default:
			return fmt.Errorf("sink %d: %s sinks do not run on Beam", i, sinkKind(sk))
		}
	}
	return nil
}

// init registers the DoFns, their emitters and iterators with Beam's
// register package, so that workers call them directly instead of through
// reflection (reflect.Value.Call was most of a direct run's CPU), and
// gives Rec its binary coder.
func init() {
	beam.RegisterCoder(reflect.TypeOf(Rec{}), encodeRec, decodeRec)
	beam.RegisterType(reflect.TypeOf(mark{}))
	beam.RegisterType(reflect.TypeOf(span{}))
	beam.RegisterType(reflect.TypeOf((*accum)(nil)).Elem())
	beam.RegisterCoder(reflect.TypeOf((*accum)(nil)), encodeAccum, decodeAccum)

	register.DoFn3x0[context.Context, string, func(beam.EventTime, Rec)](&decodeFn{})
	register.DoFn2x1[Rec, func(Rec), error](&stepsFn{})
	register.DoFn2x0[Rec, func(int64, span)](&blockSpanFn{})
	register.DoFn4x0[int64, int64, func(*int64, *span) bool, func(int64, mark)](&markFn{})
	register.DoFn5x0[context.Context, int64, func(*mark) bool, func(*int64, *span) bool, func(int64, int64)](&lateFn{})
	register.DoFn5x0[context.Context, Rec, func(*int64, *int64) bool, func(Rec), func(Rec)](&splitFn{})
	register.DoFn3x0[beam.Window, Rec, func(string, Rec)](&windowKeyFn{})
	register.DoFn4x1[beam.Window, string, *accum, func(Rec), error](&extractFn{})
	register.DoFn4x0[int64, func(*Rec) bool, func(*int64, *int64) bool, func(string, Rec)](&arrivalFn{})
	register.DoFn5x1[context.Context, string, func(*Rec) bool, func(Rec), func(Rec), error](&sessionFn{})
	register.DoFn4x1[string, func(*Rec) bool, func(*int64) bool, func(Rec), error](&tailFn{})
	register.DoFn2x1[context.Context, Rec, error](&mqttSinkFn{})
	register.DoFn3x1[context.Context, []byte, func(string), error](&hubReadFn{})
	register.Combiner2[*accum, Rec](&aggregateFn{})

	register.Function3x0(toLine)
	register.Function2x0(printLine)
	register.Function1x2(blockOf)
	register.Function1x2(blockTime)
	register.Function2x1(maxTime)
	register.Function2x1(mergeSpan)
	register.Function1x2(keyByKey)
	register.Function1x1(recTime)
	register.Function1x2(offsetTime)

	register.Emitter1[Rec]()
	register.Emitter1[string]()
	register.Emitter2[beam.EventTime, Rec]()
	register.Emitter2[string, Rec]()
	register.Emitter2[int64, int64]()
	register.Emitter2[int64, mark]()
	register.Emitter2[int64, span]()
	register.Iter1[Rec]()
	register.Iter1[mark]()
	register.Iter1[int64]()
	register.Iter2[int64, int64]()
	register.Iter2[int64, span]()
}
