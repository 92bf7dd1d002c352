package engine

import (
	"fmt"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/alert"
	"github.com/eddy-edge/eddy/operators/dedupe"
	"github.com/eddy-edge/eddy/operators/enrich"
	"github.com/eddy-edge/eddy/operators/throttle"
	"github.com/eddy-edge/eddy/operators/window"
	"github.com/eddy-edge/eddy/pipeline"
)

// registerStateful adds the step kinds that keep state or read runner state.
func registerStateful(r *Registry) {
	// A window step and the aggregate step after it run as one operator
	// (built at the window node); the aggregate node passes the window's
	// output on so that both steps keep their own counters.
	r.RegisterStep("window", func(b *Build) (operators.Operator, error) {
		if b.Next == nil || b.Next.Aggregate == nil {
			return nil, fmt.Errorf("a window step must be followed by an aggregate step")
		}
		return window.New(window.Config{Name: b.Node.ID, Window: *b.Step().Window,
			Aggregates: b.Next.Aggregate, Late: b.Late, Logger: b.Logger})
	})
	r.RegisterStep("aggregate", func(b *Build) (operators.Operator, error) { return passThrough{}, nil })
	r.RegisterStep("alert", func(b *Build) (operators.Operator, error) {
		return alert.New(alert.Config{Pipeline: b.Plan.ID(), Rule: b.Node.ID, Spec: *b.Step().Alert, Logger: b.Logger})
	})
	r.RegisterStep("dedupe", func(b *Build) (operators.Operator, error) {
		return dedupe.New(dedupe.Config{Spec: *b.Step().Dedupe, Logger: b.Logger})
	})
	r.RegisterStep("throttle", func(b *Build) (operators.Operator, error) {
		return throttle.New(throttle.Config{Spec: *b.Step().Throttle, Logger: b.Logger})
	})
	r.RegisterStep("enrich", func(b *Build) (operators.Operator, error) {
		if b.Twins == nil {
			return nil, fmt.Errorf("enrich needs device twins, and this runner has none; load Device files with --devices")
		}
		return enrich.New(b.Twins, b.Step().Enrich.Twin), nil
	})
}

// passThrough emits every event unchanged.
type passThrough struct{}

func (passThrough) Process(ev *pipeline.Event, out operators.Emitter) error {
	out.Emit(ev)
	return nil
}
