package api

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/eddy-edge/eddy/runner/engine"
)

type engineAlert struct {
	id  string
	sec int64
}

func toRecords(in []engineAlert) []engine.AlertRecord {
	var out []engine.AlertRecord
	for _, a := range in {
		out = append(out, engine.AlertRecord{Pipeline: "p", Time: time.Unix(a.sec, 0),
			Fields: map[string]any{"alert_id": a.id, "state": "firing"}})
	}
	return out
}

func TestAlertList(t *testing.T) {
	rec := func(id, state, sev string, sec int64) engine.AlertRecord {
		return engine.AlertRecord{Pipeline: "ns/p", Time: time.Unix(sec, 0),
			Fields: map[string]any{"alert_id": id, "state": state, "severity": sev}}
	}
	tests := []struct {
		name   string
		recs   []engine.AlertRecord
		firing []string
	}{
		{"empty", nil, nil},
		{"one firing", []engine.AlertRecord{rec("a", "firing", "warning", 1)}, []string{"a"}},
		{"resolved is not firing", []engine.AlertRecord{rec("a", "firing", "warning", 1), rec("a", "resolved", "warning", 2)}, nil},
		{"re-sent once", []engine.AlertRecord{rec("a", "firing", "warning", 1), rec("a", "firing", "warning", 5)}, []string{"a"}},
		{"critical first", []engine.AlertRecord{rec("w", "firing", "warning", 3), rec("c", "firing", "critical", 1), rec("i", "firing", "info", 4)},
			[]string{"c", "w", "i"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := alertList(tt.recs)
			var got []string
			for _, a := range l.Firing {
				got = append(got, a.AlertID)
			}
			if len(got) != len(tt.firing) {
				t.Fatalf("firing %v, want %v", got, tt.firing)
			}
			for i := range got {
				if got[i] != tt.firing[i] {
					t.Fatalf("firing %v, want %v", got, tt.firing)
				}
			}
			if len(l.History) != len(tt.recs) {
				t.Fatalf("history %d, want %d", len(l.History), len(tt.recs))
			}
			for i, a := range l.History {
				if want := tt.recs[len(tt.recs)-1-i]; !a.Time.Equal(want.Time) || a.AlertID != want.Fields["alert_id"] {
					t.Fatalf("history[%d] = %+v, want the %d-th newest", i, a, i)
				}
			}
		})
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h engine.Histogram
	for _, d := range []time.Duration{500 * time.Nanosecond, 3 * time.Microsecond, 3 * time.Microsecond, 2 * time.Millisecond, 200 * time.Second} {
		h.Observe(d)
	}
	m := &dtoMetric{}
	if err := latencyHistogram(h.Snapshot(), []string{"p", "s", "filter", "step"}).Write(&m.Metric); err != nil {
		t.Fatal(err)
	}
	hist := m.GetHistogram()
	if hist.GetSampleCount() != 5 {
		t.Fatalf("count %d", hist.GetSampleCount())
	}
	tests := []struct {
		le   float64
		want uint64
	}{
		{1024e-9, 1},                      // 500ns
		{4096e-9, 3},                      // + two 3µs
		{float64(1<<22) / 1e9, 4},         // + 2ms (4.19ms bound)
		{float64(uint64(1)<<36) / 1e9, 4}, // 200s is beyond the last bound (68.7s)
	}
	for _, tt := range tests {
		var found bool
		for _, b := range hist.GetBucket() {
			if b.GetUpperBound() == tt.le {
				found = true
				if b.GetCumulativeCount() != tt.want {
					t.Errorf("le=%g: %d, want %d", tt.le, b.GetCumulativeCount(), tt.want)
				}
			}
		}
		if !found {
			t.Errorf("no bucket le=%g", tt.le)
		}
	}
}

type dtoMetric struct{ dto.Metric }
