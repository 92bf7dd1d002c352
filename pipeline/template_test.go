package pipeline

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	ev := &Event{
		Key: "thermo-1",
		Fields: map[string]any{
			"avg_t":    31.25,
			"count":    int64(12),
			"n":        7,
			"ok":       true,
			"name":     "hall",
			"nothing":  nil,
			"big":      1e22,
			"small":    0.00001,
			"whole":    30.0,
			"values":   map[string]any{"t": 21.5, "inner": map[string]any{"x": "y"}},
			"list":     []any{1.0, "a"},
			"a.b":      "dotted-field",
			"temp/°C":  5,
			"when":     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			"nan":      math.NaN(),
			"unsigned": uint16(9),
			"err":      errors.New("boom"),
		},
	}
	tests := []struct {
		name, tmpl, want string
	}{
		{"literal only", "plain text", "plain text"},
		{"empty", "", ""},
		{"key", "{{key}} is hot", "thermo-1 is hot"},
		{"spaces inside", "{{ key }}/{{  name  }}", "thermo-1/hall"},
		{"float", "avg {{avg_t}}", "avg 31.25"},
		{"whole float has no exponent or dot", "{{whole}}", "30"},
		{"big float uses exponent", "{{big}}", "1e+22"},
		{"small float uses exponent", "{{small}}", "1e-05"},
		{"int64 and int", "{{count}}-{{n}}", "12-7"},
		{"uint", "{{unsigned}}", "9"},
		{"bool", "{{ok}}", "true"},
		{"nil renders empty", "[{{nothing}}]", "[]"},
		{"missing renders empty", "[{{missing}}]", "[]"},
		{"nested path", "{{values.t}}", "21.5"},
		{"nested missing", "[{{values.nope}}]", "[]"},
		{"path through non-object", "[{{name.x}}]", "[]"},
		{"dotted field wins over path", "{{a.b}}", "dotted-field"},
		{"empty segment is only a field name", "[{{values..t}}]", "[]"},
		{"odd characters in a field name", "{{temp/°C}}", "5"},
		{"object as JSON", "{{values.inner}}", `{"x":"y"}`},
		{"array as JSON", "{{list}}", `[1,"a"]`},
		{"time as RFC 3339", "{{when}}", "2026-01-02T03:04:05Z"},
		{"NaN", "{{nan}}", "NaN"},
		{"error", "{{err}}", "boom"},
		{"lone closing braces are literal", "a}}b{{key}}", "a}}bthermo-1"},
		{"adjacent refs", "{{key}}{{name}}", "thermo-1hall"},
		{"unicode literal", "température {{avg_t}} °C", "température 31.25 °C"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := ParseTemplate(tc.tmpl)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tc.tmpl, err)
			}
			if got := string(tp.Append(nil, ev)); got != tc.want {
				t.Errorf("Render = %q, want %q", got, tc.want)
			}
			if got := tp.Render(ev); got != tc.want {
				t.Errorf("RenderString = %q, want %q", got, tc.want)
			}
			if tp.String() != tc.tmpl {
				t.Errorf("String = %q, want %q", tp.String(), tc.tmpl)
			}
		})
	}
}

func TestKeyFallsBackToField(t *testing.T) {
	tp, err := ParseTemplate("{{key}}")
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Fields: map[string]any{"key": "from-field"}}
	if got := tp.Render(ev); got != "from-field" {
		t.Errorf("got %q, want from-field", got)
	}
	ev.Key = "partition"
	if got := tp.Render(ev); got != "partition" {
		t.Errorf("got %q, want partition", got)
	}
}

func TestRenderAppends(t *testing.T) {
	tp, err := ParseTemplate("/{{key}}")
	if err != nil {
		t.Fatal(err)
	}
	got := tp.Append([]byte("alerts"), &Event{Key: "k"})
	if string(got) != "alerts/k" {
		t.Errorf("got %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		tmpl    string
		wantSub string
	}{
		{"{{key", `"{{" at byte 0 is not closed`},
		{"abc {{key}} {{x", `at byte 12 is not closed`},
		{"{{}}", "empty field name"},
		{"{{   }}", "empty field name"},
		{"{{a b}}", `character ' ' at 1 is not allowed`},
		{"{{a{b}}", `character '{' at 1 is not allowed`},
		{"{{{{key}}}}", `character '{' at 0 is not allowed`},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			_, err := ParseTemplate(tc.tmpl)
			if err == nil {
				t.Fatalf("ParseTemplate(%q) succeeded, want error containing %q", tc.tmpl, tc.wantSub)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("error %q does not contain %q", err, tc.wantSub)
			}
		})
	}
}

func TestNamesAndStatic(t *testing.T) {
	tp, err := ParseTemplate("{{key}}: {{avg_t}} {{key}} {{values.t}}")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(tp.Fields(), ",")
	if got != "key,avg_t,values.t" {
		t.Errorf("Names = %q", got)
	}
	if tp.Static() {
		t.Error("Static = true for a template with references")
	}
	st, _ := ParseTemplate("no refs")
	if !st.Static() {
		t.Error("Static = false for a literal template")
	}
}

func TestCheck(t *testing.T) {
	schema := Schema{"avg_t": 0.0, "values": map[string]any{}}
	tests := []struct {
		tmpl    string
		schema  Schema
		wantErr string
	}{
		{"{{key}} {{avg_t}}", schema, ""},
		{"{{values.t}}", schema, ""},
		{"{{avg_tt}}", schema, `{{avg_tt}} is not a field of the event at this step`},
		{"{{a}} {{b}}", schema, `{{a}}, {{b}} are not fields`},
		{"{{anything}}", nil, ""},
		{"{{avg}}", schema, "known fields: key, avg_t, values"},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			tp, err := ParseTemplate(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			err = tp.Check(tc.schema)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check error = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRenderDoesNotAllocate(t *testing.T) {
	tp, err := ParseTemplate("{{key}} is overheating: avg {{avg_t}} n={{n}} ok={{ok}}")
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Key: "thermo-1", Fields: map[string]any{"avg_t": 31.25, "n": int64(3), "ok": true}}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() { buf = tp.Append(buf[:0], ev) })
	if allocs != 0 {
		t.Errorf("Render allocates %v times per call, want 0", allocs)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{{key}}", "{{ key }} is {{avg_t}}", "{{", "}}", "{{}}", "{{a.b.c}}",
		"{{a..b}}", "x{{y}}z{{", "{{{{key}}}}", "{{é}}", "alerts/{{severity}}/{{key}}",
	} {
		f.Add(s)
	}
	ev := &Event{Key: "k", Fields: map[string]any{"key": "f", "a": map[string]any{"b": 1.5}, "y": "Y"}}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTemplate(s)
		if err != nil {
			if !strings.Contains(s, "{{") {
				t.Fatalf("ParseTemplate(%q) failed without any {{: %v", s, err)
			}
			return
		}
		if tp.String() != s {
			t.Fatalf("String() = %q, want %q", tp.String(), s)
		}
		out := tp.Render(ev)
		if tp.Static() && out != s {
			t.Fatalf("static template %q rendered as %q", s, out)
		}
		// Literal text must survive: rendering with no fields yields the
		// template minus its references, which is never longer than s.
		empty := tp.Render(&Event{})
		if len(empty) > len(s) {
			t.Fatalf("rendering %q without fields gave longer text %q", s, empty)
		}
		_ = tp.Check(Schema{"a": 0})
	})
}

func BenchmarkRender(b *testing.B) {
	tp, err := ParseTemplate("{{key}} is overheating: avg {{avg_t}}")
	if err != nil {
		b.Fatal(err)
	}
	ev := &Event{Key: "thermo-1", Fields: map[string]any{"avg_t": 31.25}}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = tp.Append(buf[:0], ev)
	}
}

func TestFloatNoiseIsHidden(t *testing.T) {
	tp, err := ParseTemplate("{{a}} {{b}} {{c}} {{d}}")
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Fields: map[string]any{"a": 34.175000000000004, "b": 0.1 + 0.2, "c": 1795326100000.0, "d": 2.5}}
	if got, want := tp.Render(ev), "34.175 0.3 1795326100000 2.5"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
