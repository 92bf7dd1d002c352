package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/runner/wal"
)

// TestExport writes a real file WAL, exports ranges of it by offset, time
// and topic, and reads the lines back with the Beam input parser.
func TestExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	ctx := context.Background()
	l, err := wal.Open(ctx, dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		topic := "factory/m1/data"
		if i%2 == 1 {
			topic = "other/x"
		}
		payload := []byte(`{"i":` + string(rune('0'+i)) + `}`)
		if i == 4 {
			payload = []byte{0xff, 0x00, 'x'} // not JSON: base64
		}
		if err := l.Append(ctx, &wal.Record{Topic: topic, Payload: payload, Time: t0.Add(time.Duration(i) * time.Second).UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		topic   string
		r       exportRange
		offsets []uint64
	}{
		{"all", "#", exportRange{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"topic", "factory/+/data", exportRange{}, []uint64{1, 3, 5, 7, 9}},
		{"offsets", "#", exportRange{fromOff: 3, toOff: 5}, []uint64{3, 4, 5}},
		{"times", "factory/#", exportRange{fromTime: t0.Add(2 * time.Second), toTime: t0.Add(6 * time.Second)}, []uint64{3, 5, 7}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := exportLog(ctx, slog.New(slog.DiscardHandler), dir, c.topic, c.r, &out)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if n != len(c.offsets) || len(lines) != n {
				t.Fatalf("exported %d records in %d lines, want %d:\n%s", n, len(lines), len(c.offsets), out.String())
			}
			for i, line := range lines {
				rec, err := walexport.Parse([]byte(line))
				if err != nil {
					t.Fatal(err)
				}
				if rec.Offset != c.offsets[i] || !rec.Time.Equal(t0.Add(time.Duration(rec.Offset-1)*time.Second)) {
					t.Fatalf("line %d: %+v, want offset %d", i, rec, c.offsets[i])
				}
				if rec.Offset == 5 && !bytes.Equal(rec.Payload, []byte{0xff, 0x00, 'x'}) {
					t.Fatalf("binary payload came back as %q", rec.Payload)
				}
			}
		})
	}
	if _, err := exportLog(ctx, slog.New(slog.DiscardHandler), filepath.Join(t.TempDir(), "none"), "#", exportRange{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("missing log: %v", err)
	}
	if _, err := exportLog(ctx, slog.New(slog.DiscardHandler), dir, "a/#/b", exportRange{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an invalid topic filter was accepted")
	}
}
