package mqtt

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

func decodeAll(t *testing.T, f Format, topic, payload string) ([]Decoded, error) {
	t.Helper()
	var out []Decoded
	err := Decode(f, topic, []byte(payload), func(d Decoded) { out = append(out, d) })
	return out, err
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name, payload string
		want          []map[string]any
		raw           []string
		err           string
	}{
		{"object", `{"temperature": 21.5, "device": "t1"}`, []map[string]any{{"temperature": 21.5, "device": "t1"}},
			[]string{`{"temperature": 21.5, "device": "t1"}`}, ""},
		{"object with space", " \n{\"a\":1}\n", []map[string]any{{"a": 1.0}}, []string{`{"a":1}`}, ""},
		{"vertical tab is trimmed from raw", "\v{}\r\n", []map[string]any{{}}, []string{`{}`}, ""},
		{"nested", `{"a":{"b":[1,2]}}`, []map[string]any{{"a": map[string]any{"b": []any{1.0, 2.0}}}}, []string{`{"a":{"b":[1,2]}}`}, ""},
		{"array", `[{"a":1}, {"a":2}]`, []map[string]any{{"a": 1.0}, {"a": 2.0}}, []string{`{"a":1}`, `{"a":2}`}, ""},
		{"empty array", `[]`, nil, nil, ""},
		{"empty", "  ", nil, nil, `empty payload; want a JSON object such as {"temperature": 21.5}`},
		{"scalar", `42`, nil, nil, `payload is not a JSON object or array (starts with "42"); want e.g. {"temperature": 21.5}`},
		{"long scalar is cut", `"abcdefghijklmnopqrstuvwxyz"`, nil, nil, `payload is not a JSON object or array (starts with "\"abcdefghijklmno"); want e.g. {"temperature": 21.5}`},
		{"bad object", `{"a":}`, nil, nil, `payload is not valid JSON: invalid character '}' looking for beginning of value at byte 6`},
		{"truncated", `{"a":1`, nil, nil, `payload is not valid JSON: unexpected end of JSON input at byte 6`},
		{"array of non-objects emits nothing", `[{"a":1}, 2]`, nil, nil, `element 1 of the array is not a JSON object; want [{...}, {...}]`},
		{"array with null", `[null]`, nil, nil, `element 0 of the array is not a JSON object; want [{...}, {...}]`},
		{"bad array", `[{"a":1},]`, nil, nil, `payload is not valid JSON: invalid character ']' looking for beginning of value at byte 10`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []Format{JSON, ""} {
				got, err := decodeAll(t, f, "a/b", tt.payload)
				if errStr(err) != tt.err {
					t.Fatalf("error = %q, want %q", errStr(err), tt.err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d events, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if !reflect.DeepEqual(got[i].Fields, tt.want[i]) {
						t.Errorf("event %d = %#v, want %#v", i, got[i].Fields, tt.want[i])
					}
					if string(got[i].Raw) != tt.raw[i] {
						t.Errorf("event %d raw = %q, want %q", i, got[i].Raw, tt.raw[i])
					}
				}
			}
		})
	}
}

func errStr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDecodeRaw(t *testing.T) {
	got, err := decodeAll(t, Raw, "a", "not json {")
	if err != nil || len(got) != 1 || got[0].Fields["payload"] != "not json {" || got[0].Raw != nil {
		t.Errorf("raw: %v %+v", err, got)
	}
}

func TestDecodeUnknownFormat(t *testing.T) {
	_, err := decodeAll(t, "xml", "a", "{}")
	if errStr(err) != `unknown format "xml"; use json, kubeedge or raw` {
		t.Errorf("error = %v", err)
	}
}

// TestDecodeKubeEdge uses the payload shapes of the KubeEdge mapper
// (data/update) and of edgecore's device twin (twin/update).
func TestDecodeKubeEdge(t *testing.T) {
	tests := []struct {
		name, topic, payload string
		want                 map[string]any
		err                  string
	}{
		{
			name:  "mapper data/update",
			topic: "$ke/events/device/default/thermo-1/data/update",
			payload: `{"event_id":"","timestamp":1700000000123,"data":{
				"temperature":{"value":"21","metadata":{"type":"int","timestamp":1700000000100}},
				"humidity":{"value":"40.5","metadata":{"type":"float","timestamp":1700000000100}},
				"pressure":{"value":"1013.25","metadata":{"type":"double"}},
				"on":{"value":"true","metadata":{"type":"boolean"}},
				"label":{"value":"room 1","metadata":{"type":"string"}}}}`,
			want: map[string]any{"device": "thermo-1", "namespace": "default", "device_id": "default/thermo-1", "timestamp": int64(1700000000123),
				"temperature": int64(21), "humidity": 40.5, "pressure": 1013.25, "on": true, "label": "room 1"},
		},
		{
			name:  "twin/update with actual and expected",
			topic: "$hw/events/device/plant-1/valve-7/twin/update",
			payload: `{"event_id":"e1","timestamp":1700000000000,"twin":{
				"position":{"actual":{"value":"42","metadata":{"timestamp":1700000000000}},"expected":{"value":"50"},"metadata":{"type":"int"}},
				"mode":{"expected":{"value":"auto"},"metadata":{"type":"string"}},
				"empty":{"metadata":{"type":"string"}}}}`,
			want: map[string]any{"device": "valve-7", "namespace": "plant-1", "device_id": "plant-1/valve-7", "timestamp": int64(1700000000000),
				"position": int64(42), "mode": "auto"},
		},
		{
			name:    "mapper twin shape (empty event_id, type in twin metadata)",
			topic:   "$hw/events/device/default/thermo-1/twin/update",
			payload: `{"event_id":"","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"21.7"},"metadata":{"type":"float"}}}}`,
			want: map[string]any{"device": "thermo-1", "namespace": "default", "device_id": "default/thermo-1", "timestamp": int64(1700000000000),
				"temperature": 21.7},
		},
		{
			name:    "old-style topic with a bare device id",
			topic:   "$hw/events/device/thermo-1/twin/update",
			payload: `{"twin":{"t":{"actual":{"value":"1"},"metadata":{"type":"int"}}}}`,
			want:    map[string]any{"device": "thermo-1", "namespace": "default", "device_id": "default/thermo-1", "t": int64(1)},
		},
		{
			name:    "non-device topic has no device fields",
			topic:   "factory/line-1/data",
			payload: `{"data":{"t":{"value":"1.5","metadata":{"type":"int"}}}}`,
			want:    map[string]any{"t": int64(1)},
		},
		{
			name:    "non-string values are kept",
			topic:   "x",
			payload: `{"data":{"n":{"value":7,"metadata":{"type":"int"}},"b":{"value":true},"z":{"value":null}}}`,
			want:    map[string]any{"n": 7.0, "b": true, "z": nil},
		},
		{
			name:    "type names are case-insensitive",
			topic:   "x",
			payload: `{"data":{"n":{"value":" 7 ","metadata":{"type":"INT"}},"f":{"value":"2","metadata":{"type":"FLOAT"}},"b":{"value":"false","metadata":{"type":"BOOLEAN"}}}}`,
			want:    map[string]any{"n": int64(7), "f": 2.0, "b": false},
		},
		{name: "bad int", topic: "x", payload: `{"data":{"t":{"value":"warm","metadata":{"type":"int"}}}}`, err: `data.t: value "warm" is not an int`},
		{name: "bad float", topic: "x", payload: `{"data":{"t":{"value":"x","metadata":{"type":"double"}}}}`, err: `data.t: value "x" is not a double`},
		{name: "bad bool", topic: "x", payload: `{"twin":{"on":{"actual":{"value":"maybe"},"metadata":{"type":"boolean"}}}}`, err: `twin.on: value "maybe" is not a boolean`},
		{name: "neither data nor twin", topic: "x", payload: `{"timestamp":1}`,
			err: `KubeEdge message has neither "data" nor "twin"; want {"timestamp": ..., "data": {"temperature": {"value": "21", "metadata": {"type": "int"}}}}`},
		{name: "not JSON", topic: "x", payload: `{"data":`, err: `payload is not a KubeEdge data/update or twin/update message: unexpected end of JSON input at byte 8`},
		{name: "wrong shape", topic: "x", payload: `{"data":[1]}`, err: `payload is not a KubeEdge data/update or twin/update message: data is a JSON array at byte 9; want e.g. {"data": {"temperature": {"value": "21", "metadata": {"type": "int"}}}}`},
		{name: "wrong value shape", topic: "x", payload: `{"twin":{"t":{"actual":"21"}}}`, err: `payload is not a KubeEdge data/update or twin/update message: twin.actual is a JSON string at byte 27; want e.g. {"data": {"temperature": {"value": "21", "metadata": {"type": "int"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, KubeEdge, tt.topic, tt.payload)
			if errStr(err) != tt.err {
				t.Fatalf("error = %q, want %q", errStr(err), tt.err)
			}
			if tt.err != "" {
				if len(got) != 0 {
					t.Errorf("emitted %d events with an error", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d events, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0].Fields, tt.want) {
				t.Errorf("fields = %#v\nwant     %#v", got[0].Fields, tt.want)
			}
			if got[0].Raw != nil {
				t.Errorf("Raw = %q; converted fields must not forward the original payload", got[0].Raw)
			}
		})
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+/b", "a/b", true},
		{"+/+", "a/b", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"factory/+/data", "factory/t1/data", true},
		{"factory/+/data", "factory/t1/state", false},
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true}, // # also matches the parent level
		{"a/#", "a/b", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"/a", "/a", true},
		{"+/a", "/a", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		// $-topics are not matched by a leading wildcard (MQTT 4.7.2).
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"+/+/device/#", "$hw/events/device/x", false},
		{"$SYS/#", "$SYS/broker", true},
		{"$hw/events/device/+/+/twin/+", "$hw/events/device/default/t1/twin/update", true},
		{"$ke/events/device/+/+/data/update", "$ke/events/device/default/t1/data/update", true},
		{"$ke/events/device/+/data/update", "$ke/events/device/default/t1/data/update", false},
		{"a/$b", "a/$b", true},
		{"a/+", "a/$b", true}, // only the first level is special
	}
	for _, tt := range tests {
		if got := MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// matchNaive is MatchTopic written the obvious way, to check it against.
func matchNaive(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range f {
		if l == "#" {
			return i == len(f)-1
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

// validFilter reports whether + and # are whole levels and # is last.
func validFilter(f string) bool {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) || strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// FuzzDecode checks that no payload makes Decode panic, in any format, and
// what every successful decode promises: JSON events carry their original
// bytes (valid JSON that decodes to the same fields), kubeedge gives one
// event, raw keeps the payload.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"temperature": 21.5}`, "\v{}", "#/", `[{"a":1},{"a":2}]`, `[]`, `42`, `{"a":}`,
		`{"timestamp":1700000000123,"data":{"temperature":{"value":"21","metadata":{"type":"int"}}}}`,
		`{"twin":{"p":{"actual":{"value":"42"},"expected":{"value":"50"},"metadata":{"type":"int"}}}}`,
		`{"data":{"n":{"value":7},"b":{"value":"x","metadata":{"type":"boolean"}}}}`,
	} {
		for _, topic := range []string{"$ke/events/device/default/t1/data/update", "$hw/events/device/t1/twin/update", "a/b"} {
			f.Add(topic, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		var n int
		err := Decode(JSON, topic, payload, func(d Decoded) {
			n++
			if d.Fields == nil || !json.Valid(d.Raw) {
				t.Fatalf("json event with fields %v raw %q", d.Fields, d.Raw)
			}
			var again map[string]any
			if err := json.Unmarshal(d.Raw, &again); err != nil || !reflect.DeepEqual(again, d.Fields) {
				t.Fatalf("raw %q does not decode to the fields %v", d.Raw, d.Fields)
			}
		})
		if err != nil && n > 0 {
			t.Fatalf("json: %d events and error %v", n, err)
		}
		n = 0
		err = Decode(KubeEdge, topic, payload, func(d Decoded) {
			n++
			if d.Fields == nil {
				t.Fatal("kubeedge event without fields")
			}
		})
		if (err == nil) != (n == 1) {
			t.Fatalf("kubeedge: %d events, error %v", n, err)
		}
		err = Decode(Raw, topic, payload, func(d Decoded) {
			if d.Fields["payload"] != string(payload) {
				t.Fatal("raw payload changed")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		kubeedge.DeviceOf(topic)
		for _, filter := range []string{"#", "+/+", "a/#", topic, "$ke/events/device/+/+/data/update"} {
			if !validFilter(filter) {
				continue // filters are validated when a pipeline compiles
			}
			if got, want := MatchTopic(filter, topic), matchNaive(filter, topic); got != want {
				t.Fatalf("MatchTopic(%q, %q) = %v, naive %v", filter, topic, got, want)
			}
		}
	})
}
