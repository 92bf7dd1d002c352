// Package filter implements the filter step: keep the events for which an
// expression is true. It holds no state.
package filter

import (
	"fmt"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// Operator is a compiled filter. It is not safe for concurrent use (it
// keeps one expression VM); the engine runs it on the pipeline goroutine.
type Operator struct {
	prog *pipeline.Program
	vm   vm.VM
}

// New compiles a filter expression against the schema of its input.
func New(expr string, schema pipeline.Schema) (*Operator, error) {
	p, err := pipeline.CompileExpr(expr, schema)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	return &Operator{prog: p}, nil
}

// Process emits ev if the expression is true on it. An evaluation error
// (such as comparing a missing field) drops the event and is returned so
// the engine counts it.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	ok, err := o.prog.RunBool(&o.vm, ev.Fields)
	if err != nil {
		return err
	}
	if ok {
		out.Emit(ev)
	}
	return nil
}

// Screen returns the condition with a VM of its own: it may run on
// another goroutine while Process runs. An expression error counts as
// true, so the event reaches Process, which reports it.
func (o *Operator) Screen() func(fields map[string]any) bool {
	var m vm.VM
	return func(fields map[string]any) bool {
		ok, err := o.prog.RunBool(&m, fields)
		return ok || err != nil
	}
}
