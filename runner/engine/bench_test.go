package engine

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

// countSink counts what reaches the end of the chain.
type countSink struct{ n int }

func (c *countSink) Write(context.Context, *pipeline.Event) error { c.n++; return nil }
func (c *countSink) Flush(context.Context) error                  { return nil }
func (c *countSink) Close() error                                 { return nil }

// benchChain builds a pipeline's fused chain without a log goroutine, so
// the benchmark measures the operators on pre-decoded events only.
func benchChain(b *testing.B, yaml string) (*run, *countSink) {
	b.Helper()
	sink := &countSink{}
	reg := NewRegistry()
	reg.RegisterSink("log", func(*Build, *pipeline.Sink) (Sink, error) { return sink, nil })
	e, err := New(Options{Log: wal.NewMemory(wal.MemoryOptions{}), Registry: reg,
		Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	plans, err := pipeline.Load("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	r, err := e.build(plans[0])
	if err != nil {
		b.Fatal(err)
	}
	return r, sink
}

// events makes n pre-decoded readings over keys devices, one millisecond
// of event time apart, temperatures cycling 15..44.
func events(n, keys int) []pipeline.Event {
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%04d", i)
	}
	evs := make([]pipeline.Event, n)
	base := int64(1_700_000_000) * int64(time.Second)
	for i := range evs {
		k := names[i%keys]
		evs[i] = pipeline.Event{Time: base + int64(i)*int64(time.Millisecond), Key: k,
			Fields: map[string]any{"device": k, "temperature": float64(15 + i%30), "humidity": 40.0}}
	}
	return evs
}

func runBench(b *testing.B, yaml string, keys int) {
	r, sink := benchChain(b, yaml)
	evs := events(1<<16, keys)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	base := evs[len(evs)-1].Time - evs[0].Time + int64(time.Millisecond)
	ev := &r.scratch // the engine reuses one Event per pipeline too
	for i := 0; i < b.N; i++ {
		j := i & (len(evs) - 1)
		*ev = evs[j]
		// Keep event time moving forward across passes over the slice.
		ev.Time += int64(i>>16) * base
		r.head.Emit(ev)
		if j == len(evs)-1 {
			r.maxEventTime = ev.Time
			r.advance(r.clock.Now())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	_ = sink.n
}

const benchHead = `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  key: device
  sinks: [{log: {}}]
  steps:
`

// BenchmarkFilter is the stateless path: one comparison per event.
func BenchmarkFilter(b *testing.B) {
	runBench(b, benchHead+`    - filter: "temperature > 30"`+"\n", 1000)
}

// BenchmarkFilterTumblingAvg1kKeys: filter then 10 s tumbling average per key.
func BenchmarkFilterTumblingAvg1kKeys(b *testing.B) {
	runBench(b, benchHead+`    - filter: "temperature > -40"
    - window: {tumbling: 10s}
    - aggregate: {avg_t: "avg(temperature)"}
`, 1000)
}

// BenchmarkSlidingAvg1kKeys: 1 min windows every 10 s (each event in 6).
func BenchmarkSlidingAvg1kKeys(b *testing.B) {
	runBench(b, benchHead+`    - window: {sliding: {size: 1m, every: 10s}}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
`, 1000)
}

// BenchmarkOverheatChain is the full example: filter, map, window,
// aggregate (avg, max, count) and alert.
func BenchmarkOverheatChain(b *testing.B) {
	runBench(b, benchHead+`    - filter: "temperature != nil && temperature > -40"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - window: {tumbling: 10s, allowedLateness: 2s}
    - aggregate: {avg_t: "avg(temperature)", max_t: "max(temperature)", n: "count()"}
    - alert:
        when: "avg_t > 30"
        for: 30s
        cooldown: 5m
        message: "{{key}} is overheating: avg {{avg_t}}"
`, 1000)
}
