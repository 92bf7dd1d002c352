package walexport

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 123456789, time.UTC)
	for _, p := range [][]byte{[]byte(`{"a": 1, "b": [1, 2]}`), []byte("plain text"), {0, 0xff}, nil, []byte(` [1,2] `)} {
		b, err := Append(nil, Record{Offset: 7, Time: t0, Topic: "a/b", Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte("\n")) != 1 {
			t.Fatalf("not one line: %q", b)
		}
		r, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		want := p
		if json := bytes.TrimSpace(p); len(json) > 0 && (json[0] == '{' || json[0] == '[') {
			want = []byte(strings.ReplaceAll(string(json), " ", ""))
		}
		if r.Offset != 7 || !r.Time.Equal(t0) || r.Topic != "a/b" || !bytes.Equal(r.Payload, want) {
			t.Fatalf("%q came back as %+v", p, r)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for line, want := range map[string]string{
		`{"offset":1}`: "time",
		`{"offset":1,"time":"yesterday","topic":"t"}`:                                  "not RFC 3339",
		`{"offset":1,"time":"2026-11-30T10:00:00Z"}`:                                   "no topic",
		`{"offset":1,"time":"2026-11-30T10:00:00Z","topic":"t","x":1}`:                 "not an exported WAL record",
		`{"offset":1,"time":"2026-11-30T10:00:00Z","topic":"t","payload_base64":"!!"}`: "payload_base64",
		`not json`: "not an exported WAL record",
	} {
		if _, err := Parse([]byte(line)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", line, err, want)
		}
	}
}

// FuzzParse: any line either parses into a record that round-trips, or is
// refused with an error; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"offset":1,"time":"2026-11-30T10:00:00Z","topic":"t","payload":{"a":1}}`))
	f.Add([]byte(`{"offset":2,"time":"2026-11-30T10:00:00.5Z","topic":"t","payload_base64":"AP8="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Append(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(out)
		if err != nil || r2.Offset != r.Offset || !r2.Time.Equal(r.Time) || r2.Topic != r.Topic {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", r, out, r2, err)
		}
	})
}
