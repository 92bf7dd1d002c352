package mqtt

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestDecoderProjection(t *testing.T) {
	tests := []struct {
		name, payload string
		fields        []string
		want          []map[string]any
	}{
		{"one field", `{"temperature": 21.5, "device": "t1", "humidity": 40}`, []string{"temperature"},
			[]map[string]any{{"temperature": 21.5}}},
		{"missing field stays missing", `{"a": 1}`, []string{"b"}, []map[string]any{{}}},
		{"nested value is decoded whole", `{"a": {"b": [1, "x", null, true]}, "c": 2}`, []string{"a"},
			[]map[string]any{{"a": map[string]any{"b": []any{1.0, "x", nil, true}}}}},
		{"escaped key", `{"te\u006dp": 3, "other": {"deep": [1,2,{"x":"y"}]}}`, []string{"temp"}, []map[string]any{{"temp": 3.0}}},
		{"escaped value", `{"s": "a\"b\\c\u00e9\ud83d\ude00\n"}`, []string{"s"}, []map[string]any{{"s": "a\"b\\c\u00e9\U0001F600\n"}}},
		{"lone surrogate", `{"s": "\ud83dx"}`, []string{"s"}, []map[string]any{{"s": "\uFFFDx"}}},
		{"duplicate key: last wins", `{"a": 1, "a": 2}`, []string{"a"}, []map[string]any{{"a": 2.0}}},
		{"array", `[{"a":1,"b":2}, {"a":3}]`, []string{"a"}, []map[string]any{{"a": 1.0}, {"a": 3.0}}},
		{"empty projection validates only", `{"a":[1,2,{"b":null}]}`, nil, []map[string]any{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decoder{Fields: NewProjection(tt.fields)}
			var got []map[string]any
			err := d.Decode("a/b", []byte(tt.payload), func(d Decoded) { got = append(got, d.Fields) })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestDecoderReuse: with Reuse, single objects fill one map, cleared each
// time (no field of the previous payload stays); nested objects and
// arrays of objects still get their own maps; a payload the scanner
// rejects falls back with a new map. Every result equals the one without
// Reuse.
func TestDecoderReuse(t *testing.T) {
	payloads := []string{
		`{"a": 1, "b": {"c": 2}}`,
		`{"a": 3}`,
		`{"b": {"c": 4}, "x": 5}`,
		`[{"a": 6}, {"a": 7}]`,
		`{"a": 8, "a": 9}`,
		` {"a": 1e400} `, // the scanner refuses; encoding/json decides
		`{"a": 10}`,
	}
	reuse := Decoder{Fields: NewProjection([]string{"a", "b"}), Reuse: true}
	fresh := Decoder{Fields: NewProjection([]string{"a", "b"})}
	var first uintptr
	for i, p := range payloads {
		var want []map[string]any
		werr := fresh.Decode("t", []byte(p), func(d Decoded) { want = append(want, maps.Clone(d.Fields)) })
		var got []map[string]any
		var ptrs []uintptr
		gerr := reuse.Decode("t", []byte(p), func(d Decoded) {
			got = append(got, maps.Clone(d.Fields)) // the receiver copies what it keeps
			ptrs = append(ptrs, reflect.ValueOf(d.Fields).Pointer())
			if b, ok := d.Fields["b"].(map[string]any); ok && reflect.ValueOf(b).Pointer() == reflect.ValueOf(d.Fields).Pointer() {
				t.Fatalf("payload %d: a nested object shares the reused map", i)
			}
		})
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("payload %d %s: reuse gave %v, %v; without: %v, %v", i, p, got, gerr, want, werr)
		}
		switch {
		case i == 0:
			first = ptrs[0]
		case strings.HasPrefix(p, "["):
			if ptrs[0] == first || ptrs[1] == first || ptrs[0] == ptrs[1] {
				t.Fatalf("payload %d: array elements must get their own maps", i)
			}
		case strings.Contains(p, "1e400"):
			// the fallback path: its own map, whatever it decided
		default:
			if ptrs[0] != first {
				t.Fatalf("payload %d: a new map, want the reused one", i)
			}
		}
	}
}

// TestDecoderErrorsAreDecodes: every payload the reference decoder rejects
// gets the same message through a projection.
func TestDecoderErrorsAreDecodes(t *testing.T) {
	for _, p := range []string{`{"a":}`, `{"a":1`, `[{"a":1}, 2]`, `[null]`, `[{"a":1},]`, `42`, "  ",
		`{"a": 1e999}`, `{"skipped": 1e999, "a": 1}`, `{"a": "\x01"}`, `{"a": tru}`, `{"a": 01}`, `{"a":1}x`,
		`{"a": "\uZZZZ"}`, "\xef\xbb\xbf{}"} {
		want := Decode(JSON, "t", []byte(p), func(Decoded) { t.Fatalf("%q: reference emitted", p) })
		d := Decoder{Fields: NewProjection([]string{"a"})}
		got := d.Decode("t", []byte(p), func(Decoded) { t.Fatalf("%q: projection emitted", p) })
		if errStr(got) != errStr(want) || want == nil {
			t.Errorf("%q: error %q, reference %q", p, errStr(got), errStr(want))
		}
	}
}

// FuzzDecoder checks the projecting scanner against encoding/json: the same
// error (or none), the same number of events with the same raw bytes, and
// the fields of the full decode restricted to the projection.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		`{"temperature": 21.5, "device": "t1"}`, `[{"a":1},{"a":2}]`, `{"a":{"b":[1,2]}}`, `{"a": 1e999}`,
		`{"te\u006dp": "\ud83d\ude00", "a": [true, false, null, -0.5e-3]}`, `{"a":1,"a":2}`, `[ {"a" : 1} , {} ]`,
		`{"\u0061": "\xff"}`, `{"a":"\ud800\u0041"}`, `{"n": 12345678901234567890123}`,
	} {
		f.Add([]byte(s), "a,temp,temperature")
	}
	f.Fuzz(func(t *testing.T, payload []byte, names string) {
		type ev struct {
			fields map[string]any
			raw    string
		}
		var want []ev
		wantErr := Decode(JSON, "t", payload, func(d Decoded) { want = append(want, ev{d.Fields, string(d.Raw)}) })
		proj := strings.Split(names, ",")
		var got []ev
		d := Decoder{Fields: NewProjection(proj)}
		gotErr := d.Decode("t", payload, func(d Decoded) { got = append(got, ev{d.Fields, string(d.Raw)}) })
		if errStr(gotErr) != errStr(wantErr) {
			t.Fatalf("error %q, encoding/json %q", errStr(gotErr), errStr(wantErr))
		}
		if len(got) != len(want) {
			t.Fatalf("%d events, encoding/json %d", len(got), len(want))
		}
		for i := range want {
			if got[i].raw != want[i].raw {
				t.Fatalf("event %d raw %q, encoding/json %q", i, got[i].raw, want[i].raw)
			}
			restricted := maps.Clone(want[i].fields)
			maps.DeleteFunc(restricted, func(k string, _ any) bool { return !contains(proj, k) })
			if !reflect.DeepEqual(got[i].fields, restricted) {
				g, _ := json.Marshal(got[i].fields)
				w, _ := json.Marshal(restricted)
				t.Fatalf("event %d fields %s, encoding/json %s", i, g, w)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
