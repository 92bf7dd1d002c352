// Package fields implements the select and drop steps, which keep or remove
// named fields. They hold no state.
package fields

import (
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// Select keeps only the listed fields.
type Select struct {
	keep map[string]struct{}
}

// NewSelect returns a select step for the given field names.
func NewSelect(names []string) *Select {
	s := &Select{keep: make(map[string]struct{}, len(names))}
	for _, n := range names {
		s.keep[n] = struct{}{}
	}
	return s
}

// Process deletes every field not in the list and emits the event.
func (s *Select) Process(ev *pipeline.Event, out operators.Emitter) error {
	for k := range ev.Fields {
		if _, ok := s.keep[k]; !ok {
			delete(ev.Fields, k)
			ev.Raw = nil
		}
	}
	out.Emit(ev)
	return nil
}

// Drop removes the listed fields.
type Drop struct {
	names []string
}

// NewDrop returns a drop step for the given field names.
func NewDrop(names []string) *Drop { return &Drop{names: append([]string(nil), names...)} }

// Process deletes the listed fields and emits the event.
func (d *Drop) Process(ev *pipeline.Event, out operators.Emitter) error {
	for _, n := range d.names {
		if _, ok := ev.Fields[n]; ok {
			delete(ev.Fields, n)
			ev.Raw = nil
		}
	}
	out.Emit(ev)
	return nil
}
