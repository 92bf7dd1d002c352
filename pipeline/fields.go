package pipeline

import (
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// SourceFields returns the top-level payload fields this pipeline can ever
// read, so the engine decodes only those (see connectors/mqtt.Projection).
// all is true when the pipeline may need every field: a log sink, an alert
// (its notification carries the event's values), dedupe on the whole
// event, a sink that encodes changed fields, or an expression that reads
// $env.
//
// It is a backward liveness analysis over the steps before the first window
// (a window's output has fields of its own): a filter adds the names its
// condition reads, map removes the names it defines and adds what its
// expressions read, select narrows, drop and enrich remove what they
// replace. Sinks reached by events whose fields are unchanged forward the
// original bytes and need only their topic's template fields.
// Over-inclusion (a builtin function's name, say) is harmless; leaving out
// a field a step reads would change results, so unknown shapes give all.
func (s *Spec) SourceFields() (names []string, all bool) {
	need := fieldSet{}
	end := len(s.Steps)
	for i := range s.Steps {
		if s.Steps[i].Window != nil {
			end = i
			break
		}
	}
	// What the first window (or the sinks, without one) needs.
	intact := rawIntact(s.Steps[:end])
	if end < len(s.Steps) {
		if end+1 < len(s.Steps) {
			for _, src := range s.Steps[end+1].Aggregate {
				if _, arg, err := ParseAggregate(src); err != nil {
					need.all = true
				} else if arg != "" {
					need.expr(arg)
				}
			}
		}
		for i := range s.Late {
			need.sink(&s.Late[i], intact)
		}
	} else {
		for i := range s.Sinks {
			need.sink(&s.Sinks[i], intact)
		}
	}
	for i := end - 1; i >= 0; i-- {
		need.step(&s.Steps[i])
	}
	if s.EventTime != "" {
		need.expr(s.EventTime)
	}
	if s.Key != "" {
		need.expr(s.Key)
	}
	if need.all {
		return nil, true
	}
	names = make([]string, 0, len(need.names))
	for n := range need.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, false
}

// rawIntact reports whether events leave steps with their fields unchanged,
// so sinks forward the original payload (Event.Raw).
func rawIntact(steps []Step) bool {
	for i := range steps {
		st := &steps[i]
		if st.Map != nil || st.Select != nil || st.Drop != nil || st.Enrich != nil || st.Alert != nil {
			return false
		}
	}
	return true
}

// fieldSet is a set of field names, or all of them.
type fieldSet struct {
	names map[string]struct{}
	all   bool
}

func (f *fieldSet) add(name string) {
	if f.names == nil {
		f.names = map[string]struct{}{}
	}
	f.names[name] = struct{}{}
}

// template adds the fields a {{field}} template reads; {{a.b}} reads a.
func (f *fieldSet) template(src string) {
	t, err := ParseTemplate(src)
	if err != nil {
		f.all = true
		return
	}
	for _, n := range t.Fields() {
		f.add(n)
		if i := strings.IndexByte(n, '.'); i > 0 {
			f.add(n[:i])
		}
	}
}

// sink adds what a sink reads from the events that reach it.
func (f *fieldSet) sink(s *Sink, intact bool) {
	switch {
	case s.Log != nil || !intact:
		f.all = true // logs every field / encodes the changed fields
	case s.MQTT != nil:
		f.template(s.MQTT.Topic)
	}
}

// expr adds the identifiers an expression reads.
func (f *fieldSet) expr(src string) {
	tree, err := parser.Parse(src)
	if err != nil {
		f.all = true
		return
	}
	v := identVisitor{set: f}
	ast.Walk(&tree.Node, &v)
}

type identVisitor struct{ set *fieldSet }

func (v *identVisitor) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok {
		if id.Value == "$env" {
			v.set.all = true
			return
		}
		v.set.add(id.Value)
	}
}

// step moves the set from a step's output to its input.
func (f *fieldSet) step(st *Step) {
	switch {
	case st.Filter != nil:
		f.expr(*st.Filter)
	case st.Map != nil:
		if !f.all {
			for k := range st.Map {
				delete(f.names, k)
			}
		}
		for _, e := range st.Map {
			f.expr(e)
		}
	case st.Select != nil:
		keep := fieldSet{}
		for _, n := range st.Select {
			if f.all || f.has(n) {
				keep.add(n)
			}
		}
		f.names, f.all = keep.names, false
	case st.Drop != nil:
		if !f.all {
			for _, n := range st.Drop {
				delete(f.names, n)
			}
		}
	case st.Enrich != nil:
		if !f.all {
			for _, p := range st.Enrich.Twin {
				delete(f.names, "twin_"+p)
			}
		}
	case st.Alert != nil:
		f.all = true // the notification carries the event's values
	case st.Dedupe != nil:
		if st.Dedupe.Key == "" {
			f.all = true // duplicates are whole events
		} else {
			f.expr(st.Dedupe.Key)
		}
	case st.Throttle != nil:
	default:
		f.all = true // a step this analysis does not know
	}
}

func (f *fieldSet) has(n string) bool {
	_, ok := f.names[n]
	return ok
}

// ChangesFields reports whether a step changes an event's fields in place
// (map, select, drop, enrich), so that a pipeline must copy fields it
// shares with other pipelines before its steps run.
func (s *Spec) ChangesFields() bool {
	for i := range s.Steps {
		st := &s.Steps[i]
		if st.Map != nil || st.Select != nil || st.Drop != nil || st.Enrich != nil {
			return true
		}
	}
	return false
}
