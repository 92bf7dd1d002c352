package beam

import (
	"fmt"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamwindow "github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"

	"github.com/eddy-edge/eddy/pipeline"
)

// liveSupport says why a plan cannot run as a live job (on top of
// Support).
func liveSupport(p *pipeline.Plan, in HubInput, opts Options) error {
	var errs []string
	for i, st := range p.Spec.Steps {
		if st.Window != nil && st.Window.Session != nil {
			errs = append(errs, fmt.Sprintf("spec.steps[%d].window.session: session windows do not run on a live input yet (the edge's session merging needs its operator per key); replay the stream instead (drop live=true) or use tumbling/sliding windows", i))
		}
	}
	for i, s := range append(append([]pipeline.Sink{}, p.Spec.Sinks...), p.Spec.Late...) {
		if s.Cloud == nil || opts.Cloud == "" {
			continue
		}
		out, err := ParseCloudOutput(opts.Cloud)
		if err != nil {
			return err
		}
		if subj := out.sampleSubject(s.Cloud.Subject); in.Subject == "" || subjectMatches(in.Subject, subj) {
			errs = append(errs, fmt.Sprintf("sink %d (cloud) publishes to %s, which this live job reads (%s): it would read its own output for ever; narrow the input's subject or publish under another node (--cloud ...&node=NAME)", i, subj, orAll(in.Subject)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pipeline %s cannot run live on Beam:\n  %s", p.ID(), strings.Join(errs, "\n  "))
	}
	return nil
}

func orAll(s string) string {
	if s == "" {
		return "the whole stream"
	}
	return s
}

// translateLive builds the streaming form of a plan over a live hub
// input: the unbounded reader (liveReadFn), Beam windowing that fires at the
// watermark, and the keyed steps as a stateful DoFn with event-time timers
// (liveTailFn).
func translateLive(s beam.Scope, p *pipeline.Plan, spec []byte, parts parts, in HubInput, opts Options) error {
	if err := liveSupport(p, in, opts); err != nil {
		return err
	}
	read := &liveReadFn{In: in, Decode: decodeFn{Spec: spec, Steps: parts.pre}, Idle: int64(p.IdleTimeout(liveIdleDefault)), Ordered: parts.window < 0}
	if parts.window >= 0 {
		if l := p.Spec.Steps[parts.window].Window.AllowedLateness; l != nil {
			read.Lateness = int64(l.Duration)
		}
	}
	recs := beam.ParDo(s, read, beam.Impulse(s))
	out := recs
	var late beam.PCollection
	if parts.window >= 0 {
		w := p.Spec.Steps[parts.window].Window
		keep, lt := beam.ParDo2(s, &liveLateFn{lateFn{Spec: spec, Window: parts.window}}, recs)
		late = lt
		win := beam.WindowInto(s, windowFn(w), keep)
		keyed := beam.ParDo(s, liveWindowKeyFn{}, win)
		accs := beam.CombinePerKey(s, &aggregateFn{Spec: spec, Window: parts.window}, keyed)
		results := beam.ParDo(s, &extractFn{Spec: spec, Window: parts.window}, accs)
		out = beam.WindowInto(s, beamwindow.NewGlobalWindows(), results)
	}
	if len(parts.post) > 0 {
		out = beam.ParDo(s, &stepsFn{Spec: spec, Steps: parts.post}, out)
	}
	if len(parts.tail) > 0 {
		keyed := beam.ParDo(s, keyByKey, out)
		out = beam.ParDo(s, newLiveTailFn(spec, parts.tail, parts.window >= 0), keyed)
	}
	if err := liveSinks(s, p, p.Spec.Sinks, out, opts); err != nil {
		return err
	}
	if late.IsValid() && len(p.Spec.Late) > 0 {
		return liveSinks(s.Scope("late"), p, p.Spec.Late, late, opts)
	}
	return nil
}

// liveSinks writes an unbounded collection: every sink writes each event as
// it comes (file sinks append, flushing at the end of every bundle).
func liveSinks(s beam.Scope, p *pipeline.Plan, list []pipeline.Sink, col beam.PCollection, opts Options) error {
	for i, sk := range list {
		switch {
		case sk.File != nil:
			beam.ParDo0(s, &liveFileSinkFn{Path: sinkPath(sk.File.Path, opts)}, col)
		case sk.Log != nil:
			beam.ParDo0(s, printLine, beam.ParDo(s, toLine, col))
		case sk.MQTT != nil, sk.Cloud != nil:
			if err := sinks(s, []pipeline.Sink{sk}, col, opts); err != nil {
				return fmt.Errorf("sink %d: %w", i, err)
			}
		default:
			return fmt.Errorf("sink %d: %s sinks do not run on Beam", i, sinkKind(sk))
		}
	}
	return nil
}
