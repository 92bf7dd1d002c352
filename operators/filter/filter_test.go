package filter

import (
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

func TestFilter(t *testing.T) {
	tests := []struct {
		name, expr string
		fields     map[string]any
		pass       bool
		err        string // substring of the error, "" for none
	}{
		{"true", "temperature > 30", map[string]any{"temperature": 31.0}, true, ""},
		{"false", "temperature > 30", map[string]any{"temperature": 29.0}, false, ""},
		{"int and float", "temperature > 30", map[string]any{"temperature": int64(31)}, true, ""},
		{"nil check passes missing field", "temperature != nil && temperature > -40", map[string]any{}, false, ""},
		{"nil check", "temperature != nil && temperature > -40", map[string]any{"temperature": -10.0}, true, ""},
		{"missing field is an error and drops", "temperature > 30", map[string]any{"humidity": 1.0}, false, "invalid operation"},
		{"wrong type is an error and drops", "temperature > 30", map[string]any{"temperature": "hot"}, false, "invalid operation"},
		{"not a bool", "temperature", map[string]any{"temperature": 1.0}, false, "want true or false"},
		{"strings", "device startsWith 'th'", map[string]any{"device": "thermo-1"}, true, ""},
		{"in list", "'a' in tags", map[string]any{"tags": []any{"b", "a"}}, true, ""},
		{"nil event fields", "x == nil", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := New(tt.expr, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []*pipeline.Event
			ev := &pipeline.Event{Fields: tt.fields, Raw: []byte("{}")}
			err = op.Process(ev, operators.EmitFunc(func(e *pipeline.Event) { got = append(got, e) }))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error = %v, want %q", err, tt.err)
			}
			if (len(got) == 1) != tt.pass || len(got) > 1 {
				t.Fatalf("emitted %d events, pass = %v", len(got), tt.pass)
			}
			if tt.pass && (got[0] != ev || got[0].Raw == nil) {
				t.Errorf("filter must pass the same event unchanged (Raw kept)")
			}
		})
	}
}

func TestFilterCompileErrors(t *testing.T) {
	tests := []struct {
		expr   string
		schema pipeline.Schema
		want   string
	}{
		{"a >", nil, `filter "a >": unexpected token EOF (1:3)`},
		{"", nil, `filter "": empty expression`},
		{"avg_x > 1", pipeline.Schema{"avg_t": 0.0}, `filter "avg_x > 1": unknown name avg_x (1:1)`},
		{"avg_t > 'a'", pipeline.Schema{"avg_t": 0.0}, `filter "avg_t > 'a'": invalid operation: > (mismatched types float64 and string) (1:7)`},
	}
	for _, tt := range tests {
		_, err := New(tt.expr, tt.schema)
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%q) error = %v, want %q", tt.expr, err, tt.want)
		}
	}
}

// TestFilterKnownSchema checks a filter typed against a known schema.
func TestFilterKnownSchema(t *testing.T) {
	op, err := New("avg_t > 30 && n >= 2", pipeline.Schema{"avg_t": 0.0, "n": int64(0), "key": ""})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	emit := operators.EmitFunc(func(*pipeline.Event) { n++ })
	for _, f := range []map[string]any{
		{"avg_t": 31.0, "n": int64(2)},
		{"avg_t": 31.0, "n": int64(1)},
		{"avg_t": 29.0, "n": int64(5)},
	} {
		if err := op.Process(&pipeline.Event{Fields: f}, emit); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("passed %d events, want 1", n)
	}
}

func BenchmarkFilter(b *testing.B) {
	op, err := New("temperature != nil && temperature > 30", nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := &pipeline.Event{Fields: map[string]any{"temperature": 31.5, "device": "t1"}}
	var n int
	emit := operators.EmitFunc(func(*pipeline.Event) { n++ })
	b.ReportAllocs()
	for b.Loop() {
		_ = op.Process(ev, emit)
	}
	if n == 0 {
		b.Fatal("nothing passed")
	}
}

// TestScreen: the screen says false only where Process emits nothing and
// reports no error, and it runs beside Process on another goroutine.
func TestScreen(t *testing.T) {
	op, err := New("temperature > 30", nil)
	if err != nil {
		t.Fatal(err)
	}
	screen := op.Screen()
	for _, c := range []struct {
		fields map[string]any
		want   bool
	}{
		{map[string]any{"temperature": 31.0}, true},
		{map[string]any{"temperature": 29.0}, false},
		{map[string]any{"temperature": "hot"}, true}, // an error: Process must see it
		{map[string]any{}, true},
	} {
		if got := screen(c.fields); got != c.want {
			t.Errorf("screen(%v) = %v, want %v", c.fields, got, c.want)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			screen(map[string]any{"temperature": float64(i % 60)})
		}
	}()
	for i := range 1000 {
		op.Process(&pipeline.Event{Fields: map[string]any{"temperature": float64(i % 60)}}, operators.EmitFunc(func(*pipeline.Event) {}))
	}
	<-done
}
