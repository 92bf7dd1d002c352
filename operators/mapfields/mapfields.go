// Package mapfields implements the map step: add or overwrite fields with
// the results of expressions. Every expression sees the event as it came
// in, not the other expressions' results, so the order of entries does not
// matter. It holds no state.
package mapfields

import (
	"fmt"
	"sort"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

type assignment struct {
	field string
	prog  *pipeline.Program
}

// Operator is a compiled map step. Not safe for concurrent use.
type Operator struct {
	assign []assignment
	vals   []any
	vm     vm.VM
}

// New compiles the field: expression pairs against the input schema.
func New(fields map[string]string, schema pipeline.Schema) (*Operator, error) {
	o := &Operator{}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, err := pipeline.CompileExpr(fields[k], schema)
		if err != nil {
			return nil, fmt.Errorf("map %s: %q: %w", k, fields[k], err)
		}
		o.assign = append(o.assign, assignment{field: k, prog: p})
	}
	o.vals = make([]any, len(o.assign))
	return o, nil
}

// Process evaluates every expression on the incoming fields, then sets
// them all. If any expression fails the event is passed on unchanged
// except for the fields that succeeded, and the first error is returned.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	var firstErr error
	for i, a := range o.assign {
		v, err := a.prog.Run(&o.vm, ev.Fields)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("map %s: %w", a.field, err)
			}
			o.vals[i] = errMarker{}
			continue
		}
		o.vals[i] = v
	}
	for i, a := range o.assign {
		if _, bad := o.vals[i].(errMarker); bad {
			continue
		}
		ev.Fields[a.field] = o.vals[i]
		o.vals[i] = nil
	}
	ev.Raw = nil
	out.Emit(ev)
	return firstErr
}

type errMarker struct{}
