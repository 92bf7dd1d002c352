package window

import (
	"fmt"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// benchEvents returns pre-decoded events for nKeys keys, round robin.
func benchEvents(nKeys int) []*pipeline.Event {
	evs := make([]*pipeline.Event, nKeys)
	for i := range evs {
		evs[i] = &pipeline.Event{Key: fmt.Sprintf("device-%04d", i), Fields: map[string]any{
			"temperature": 20 + float64(i%17)/3, "humidity": 40.0,
		}}
	}
	return evs
}

// benchRun feeds b.N events, spaced step apart in event time, with an
// Advance every 1000 events as the engine does after a batch, and a pause of
// pause every 100k events (0: none).
func benchRun(b *testing.B, o *Operator, nKeys int, step, pause time.Duration) {
	evs := benchEvents(nKeys)
	var emitted int
	out := operators.EmitFunc(func(*pipeline.Event) { emitted++ })
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	// Warm up the free lists and maps so that the measured loop is steady.
	for i := 0; i < 20*nKeys; i++ {
		ev := evs[i%nKeys]
		t += int64(step)
		ev.Time = t
		_ = o.Process(ev, out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%nKeys]
		t += int64(step)
		if i%100000 == 99999 {
			t += int64(pause)
		}
		ev.Time = t
		if err := o.Process(ev, out); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			o.Advance(t, out)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if emitted == 0 && b.N > 100000 {
		b.Fatal("no windows emitted")
	}
}

// 1k keys, 10s tumbling windows, avg; about 100 events per key and window.
func BenchmarkTumblingAvg1kKeys(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(10 * time.Second), AllowedLateness: dur(time.Second)},
		Aggregates: map[string]string{"avg_t": "avg(temperature)"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 100*time.Microsecond, 0)
}

// 1k keys, tumbling, five aggregates over two fields (shared arguments are
// evaluated once).
func BenchmarkTumblingFiveAggs1kKeys(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(10 * time.Second)},
		Aggregates: map[string]string{"avg_t": "avg(temperature)", "max_t": "max(temperature)", "min_t": "min(temperature)",
			"n": "count()", "h": "avg(humidity)"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 100*time.Microsecond, 0)
}

// 1k keys, tumbling, avg of an expression (runs the expr VM per event).
func BenchmarkTumblingAvgExpr1kKeys(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(10 * time.Second)},
		Aggregates: map[string]string{"avg_f": "avg(temperature * 9 / 5 + 32)"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 100*time.Microsecond, 0)
}

// 1k keys, 1m windows every 10s (6 windows per event, one pane update).
func BenchmarkSlidingAvg(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(time.Minute), Every: pipeline.D(10 * time.Second)}},
		Aggregates: map[string]string{"avg_t": "avg(temperature)"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 100*time.Microsecond, 0)
}

// 1k keys, 30s gap; each key sends every ~2s so its session grows, plus a
// pause every 100k events that closes all sessions.
func BenchmarkSession(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(30 * time.Second)}},
		Aggregates: map[string]string{"avg_t": "avg(temperature)", "n": "count()"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 2*time.Millisecond, time.Minute)
}

// 1k keys, p95 over tumbling windows of ~1000 events per key (sketch mode).
func BenchmarkTumblingP95(b *testing.B) {
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(10 * time.Second)},
		Aggregates: map[string]string{"p95_t": "p95(temperature)"}})
	if err != nil {
		b.Fatal(err)
	}
	benchRun(b, o, 1000, 10*time.Microsecond, 0)
}
