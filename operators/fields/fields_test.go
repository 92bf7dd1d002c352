package fields

import (
	"reflect"
	"testing"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

func TestSelectDrop(t *testing.T) {
	in := func() map[string]any { return map[string]any{"device": "t1", "temperature": 21.5, "raw": "x"} }
	tests := []struct {
		name    string
		op      operators.Operator
		want    map[string]any
		keepRaw bool
	}{
		{"select some", NewSelect([]string{"device", "temperature"}), map[string]any{"device": "t1", "temperature": 21.5}, false},
		{"select all keeps raw", NewSelect([]string{"device", "temperature", "raw"}), in(), true},
		{"select missing names", NewSelect([]string{"device", "nope"}), map[string]any{"device": "t1"}, false},
		{"select nothing", NewSelect(nil), map[string]any{}, false},
		{"drop one", NewDrop([]string{"raw"}), map[string]any{"device": "t1", "temperature": 21.5}, false},
		{"drop absent keeps raw", NewDrop([]string{"nope"}), in(), true},
		{"drop several", NewDrop([]string{"raw", "device", "nope"}), map[string]any{"temperature": 21.5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &pipeline.Event{Fields: in(), Raw: []byte(`{"device":"t1","temperature":21.5,"raw":"x"}`)}
			var got []*pipeline.Event
			if err := tt.op.Process(ev, operators.EmitFunc(func(e *pipeline.Event) { got = append(got, e) })); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != ev {
				t.Fatalf("emitted %d events", len(got))
			}
			if !reflect.DeepEqual(ev.Fields, tt.want) {
				t.Errorf("fields = %v, want %v", ev.Fields, tt.want)
			}
			if (ev.Raw != nil) != tt.keepRaw {
				t.Errorf("Raw kept = %v, want %v (Raw must be cleared exactly when fields change)", ev.Raw != nil, tt.keepRaw)
			}
		})
	}
}

// TestDropCopiesNames checks that the operator does not alias the caller's slice.
func TestDropCopiesNames(t *testing.T) {
	names := []string{"a"}
	d := NewDrop(names)
	names[0] = "b"
	ev := &pipeline.Event{Fields: map[string]any{"a": 1, "b": 2}}
	_ = d.Process(ev, operators.EmitFunc(func(*pipeline.Event) {}))
	if _, ok := ev.Fields["a"]; ok {
		t.Errorf("drop used the caller's modified slice: %v", ev.Fields)
	}
}

func BenchmarkSelect(b *testing.B) {
	s := NewSelect([]string{"device", "temperature"})
	fields := map[string]any{"device": "t1", "temperature": 21.5}
	ev := &pipeline.Event{Fields: fields}
	emit := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Process(ev, emit)
	}
}
