package mapfields

import (
	"reflect"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

func run(t *testing.T, fields map[string]string, in map[string]any) (map[string]any, *pipeline.Event, error) {
	t.Helper()
	op, err := New(fields, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &pipeline.Event{Fields: in, Raw: []byte(`{"x":1}`)}
	var got []*pipeline.Event
	err = op.Process(ev, operators.EmitFunc(func(e *pipeline.Event) { got = append(got, e) }))
	if len(got) != 1 || got[0] != ev {
		t.Fatalf("emitted %d events; map must emit the event it got, once", len(got))
	}
	return ev.Fields, ev, err
}

func TestMap(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]string
		in     map[string]any
		want   map[string]any
		err    string
	}{
		{"adds", map[string]string{"temp_f": "temperature * 9 / 5 + 32"}, map[string]any{"temperature": 100.0},
			map[string]any{"temperature": 100.0, "temp_f": 212.0}, ""},
		{"overwrites", map[string]string{"temperature": "temperature + 1"}, map[string]any{"temperature": 1.0},
			map[string]any{"temperature": 2.0}, ""},
		// Every expression sees the input event, not the others' results:
		// a is computed from the old b, and b from the old a (a swap).
		{"expressions see the input, not each other", map[string]string{"a": "b", "b": "a", "c": "a + b"},
			map[string]any{"a": 1, "b": 2}, map[string]any{"a": 2, "b": 1, "c": 3}, ""},
		{"constant", map[string]string{"src": "'kubeedge'"}, map[string]any{}, map[string]any{"src": "kubeedge"}, ""},
		{"nil result is set", map[string]string{"x": "missing ?? nil"}, map[string]any{}, map[string]any{"x": nil}, ""},
		// A failing expression leaves its field alone; the others are set
		// and the event goes on.
		{"error keeps other fields", map[string]string{"bad": "nope * 2", "good": "t * 2", "t": "t + 1"},
			map[string]any{"t": 1, "bad": "old"}, map[string]any{"t": 2, "good": 2, "bad": "old"}, "map bad: "},
		{"first error reported", map[string]string{"a": "x * 2", "b": "y * 2"}, map[string]any{},
			map[string]any{}, "map a: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev, err := run(t, tt.fields, tt.in)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)) {
				t.Fatalf("error = %v, want prefix %q", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fields = %#v, want %#v", got, tt.want)
			}
			if ev.Raw != nil {
				t.Errorf("Raw kept after map changed the fields")
			}
		})
	}
}

// TestMapReuse checks that results of one event never leak into the next.
func TestMapReuse(t *testing.T) {
	op, err := New(map[string]string{"a": "x * 2", "b": "y * 2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	emit := operators.EmitFunc(func(*pipeline.Event) {})
	first := &pipeline.Event{Fields: map[string]any{"x": 1, "y": 1}}
	_ = op.Process(first, emit)
	second := &pipeline.Event{Fields: map[string]any{"x": 5}}
	if err := op.Process(second, emit); err == nil {
		t.Fatal("no error for missing y")
	}
	if want := map[string]any{"x": 5, "a": 10}; !reflect.DeepEqual(second.Fields, want) {
		t.Errorf("second event = %v, want %v", second.Fields, want)
	}
}

func TestMapCompileErrors(t *testing.T) {
	_, err := New(map[string]string{"ok": "1", "f": "(a"}, nil)
	if err == nil || err.Error() != `map f: "(a": unexpected token EOF (1:2)` {
		t.Errorf("error = %v", err)
	}
	_, err = New(map[string]string{"f": "avg_x"}, pipeline.Schema{"avg_t": 0.0})
	if err == nil || !strings.Contains(err.Error(), "unknown name avg_x") {
		t.Errorf("error = %v", err)
	}
}

func BenchmarkMap(b *testing.B) {
	op, err := New(map[string]string{"temp_f": "temperature * 9 / 5 + 32"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := &pipeline.Event{Fields: map[string]any{"temperature": 31.5, "device": "t1"}}
	emit := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	for b.Loop() {
		_ = op.Process(ev, emit)
	}
}
