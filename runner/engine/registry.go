package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/fields"
	"github.com/eddy-edge/eddy/operators/filter"
	"github.com/eddy-edge/eddy/operators/mapfields"
	"github.com/eddy-edge/eddy/pipeline"
)

// Sink receives a pipeline's output events.
type Sink interface {
	// Write delivers one event. The event is only valid during the call.
	// An error makes the engine retry the same event with backoff, so a
	// sink sees at-least-once delivery.
	Write(ctx context.Context, ev *pipeline.Event) error
	// Flush makes everything written so far durable; the engine calls it
	// before it checkpoints the pipeline's cursor.
	Flush(ctx context.Context) error
	// Close releases the sink.
	Close() error
}

// BatchEnder is a Sink that may hold back part of what it was given until
// the end of the batch of records being processed (the MQTT sink holds
// deliveries to subscribers so that each gets one write per batch). The
// engine calls EndBatch after every batch, before it waits for more
// records, backs off a failing sink, or stops.
type BatchEnder interface {
	EndBatch()
}

// TwinLookup gives the enrich step the current twin values of a device.
type TwinLookup interface {
	// Values adds twin_<prop> fields for the device's properties to dst.
	Values(device string, props []string, dst map[string]any)
}

// Build is what a step or sink factory gets to build from.
type Build struct {
	Plan   *pipeline.Plan
	Node   pipeline.Node
	Logger *slog.Logger
	Clock  clock.Clock
	// Next is the step after this one (the aggregate after a window).
	Next *pipeline.Step
	// Late receives events that arrived after their window closed.
	Late func(ev *pipeline.Event)
	// Twins answers enrich lookups; nil when the runner has no twins.
	Twins TwinLookup
}

// Step returns the node's step spec.
func (b *Build) Step() *pipeline.Step { return b.Plan.Step(b.Node) }

// StepFactory builds an operator for a step node.
type StepFactory func(b *Build) (operators.Operator, error)

// SinkFactory builds a sink for a sink node.
type SinkFactory func(b *Build, spec *pipeline.Sink) (Sink, error)

// Registry is the explicit list of step and sink kinds an engine can
// build. It is a value handed to the engine, not a global.
type Registry struct {
	steps map[string]StepFactory
	sinks map[string]SinkFactory
}

// NewRegistry returns a registry with every built-in step kind and no
// sinks (sinks need the runner's broker and files; the runner registers
// them).
func NewRegistry() *Registry {
	r := &Registry{steps: map[string]StepFactory{}, sinks: map[string]SinkFactory{}}
	r.RegisterStep("filter", func(b *Build) (operators.Operator, error) {
		return filter.New(*b.Step().Filter, nil)
	})
	r.RegisterStep("map", func(b *Build) (operators.Operator, error) {
		return mapfields.New(b.Step().Map, nil)
	})
	r.RegisterStep("select", func(b *Build) (operators.Operator, error) {
		return fields.NewSelect(b.Step().Select), nil
	})
	r.RegisterStep("drop", func(b *Build) (operators.Operator, error) {
		return fields.NewDrop(b.Step().Drop), nil
	})
	registerStateful(r)
	return r
}

// RegisterStep adds or replaces a step kind.
func (r *Registry) RegisterStep(kind string, f StepFactory) { r.steps[kind] = f }

// RegisterSink adds or replaces a sink kind.
func (r *Registry) RegisterSink(kind string, f SinkFactory) { r.sinks[kind] = f }

// StepKinds lists the registered step kinds.
func (r *Registry) StepKinds() []string { return keys(r.steps) }

// SinkKinds lists the registered sink kinds.
func (r *Registry) SinkKinds() []string { return keys(r.sinks) }

func (r *Registry) step(b *Build) (operators.Operator, error) {
	f, ok := r.steps[b.Node.Kind]
	if !ok {
		return nil, fmt.Errorf("step %s: kind %q is not available in this runner (have %v)", b.Node.ID, b.Node.Kind, r.StepKinds())
	}
	if b.Step() == nil {
		return nil, malformed(b)
	}
	op, err := f(b)
	if err != nil {
		return nil, fmt.Errorf("step %s: %w", b.Node.ID, err)
	}
	return op, nil
}

func (r *Registry) sink(b *Build) (Sink, error) {
	f, ok := r.sinks[b.Node.Kind]
	if !ok {
		return nil, fmt.Errorf("sink %s: kind %q is not available in this runner (have %v)", b.Node.ID, b.Node.Kind, r.SinkKinds())
	}
	spec := b.Plan.Sink(b.Node)
	if spec == nil {
		return nil, malformed(b)
	}
	s, err := f(b, spec)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", b.Node.ID, err)
	}
	return s, nil
}

// malformed is the error for a node that points past its plan's spec: a
// plan built by hand or decoded from JSON, not by pipeline.Load.
func malformed(b *Build) error {
	sp := b.Plan.Spec
	return fmt.Errorf("%s node %s: index %d is not in the plan's spec (%d steps, %d sinks, %d late, %d errors); "+
		"the plan is malformed: build plans with pipeline.Load or pipeline.Compile", b.Node.Role, b.Node.ID, b.Node.Index,
		len(sp.Steps), len(sp.Sinks), len(sp.Late), len(sp.Errors))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
