package engine

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// enrichTwins builds a real twin manager with keys devices, each with a
// desired limit and a reported location.
func enrichTwins(b *testing.B, keys int) (*twin.Manager, []string) {
	b.Helper()
	ctx := context.Background()
	m, err := twin.New(ctx, twin.Options{Node: "edge-a", Clock: clock.NewFake(time.Unix(1_700_000_000, 0))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	ids := make([]string, keys)
	specs := make([]twin.DeviceSpec, keys)
	for i := range ids {
		ids[i] = fmt.Sprintf("default/dev-%04d", i)
		specs[i] = twin.DeviceSpec{ID: ids[i], Properties: []twin.PropertySpec{
			{Name: "limit", Type: "INT", Desired: "30"}, {Name: "location", Type: "STRING"}, {Name: "firmware", Type: "STRING", Desired: "1.2.3"}}}
	}
	if err := m.SetDevices(ctx, specs); err != nil {
		b.Fatal(err)
	}
	for i, id := range ids {
		msg := fmt.Sprintf(`{"timestamp":1700000000000,"twin":{"location":{"actual":{"value":"hall-%d"}}}}`, i%7)
		if err := m.HandleMessage(ctx, kubeedge.DeviceTopic(id, kubeedge.TwinUpdate), []byte(msg)); err != nil {
			b.Fatal(err)
		}
	}
	return m, ids
}

// runEnrichBench pushes pre-decoded events through a chain built over a
// real twin manager, like runBench.
func runEnrichBench(b *testing.B, steps string, keys int) {
	twins, ids := enrichTwins(b, keys)
	sink := &countSink{}
	reg := NewRegistry()
	reg.RegisterSink("log", func(*Build, *pipeline.Sink) (Sink, error) { return sink, nil })
	e, err := New(Options{Log: wal.NewMemory(wal.MemoryOptions{}), Registry: reg, Twins: twins,
		Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	plans, err := pipeline.Load("bench.yaml", []byte(benchHead+steps))
	if err != nil {
		b.Fatal(err)
	}
	r, err := e.build(plans[0])
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]pipeline.Event, 1<<16)
	for i := range evs {
		k := ids[i%keys]
		evs[i] = pipeline.Event{Time: int64(i) * int64(time.Millisecond), Key: k,
			Fields: map[string]any{"device_id": k, "temperature": float64(15 + i%30)}}
	}
	// Each event carries its own fields map, as decoded events do; the
	// first pass adds the twin keys, later passes overwrite them (the
	// steady state of a map reused per event).
	ev := &r.scratch
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		*ev = evs[i&(len(evs)-1)]
		r.head.Emit(ev)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	_ = sink.n
}

// BenchmarkEnrichBaseline is the chain of BenchmarkEnrichTwin without the
// enrich step (the limit is a constant): the difference is enrich's cost.
func BenchmarkEnrichBaseline(b *testing.B) {
	runEnrichBench(b, `    - filter: "temperature > -40"
    - filter: "temperature > 30"
`, 1000)
}

// BenchmarkEnrichTwin adds one twin property per event from a real twin
// manager (1000 devices) and filters on it.
func BenchmarkEnrichTwin(b *testing.B) {
	runEnrichBench(b, `    - enrich: {twin: [limit]}
    - filter: "twin_limit != nil && temperature > twin_limit"
`, 1000)
}

// BenchmarkEnrichTwinAll adds all three twin properties per event.
func BenchmarkEnrichTwinAll(b *testing.B) {
	runEnrichBench(b, `    - enrich: {twin: [limit, location, firmware]}
    - filter: "twin_limit != nil && temperature > twin_limit"
`, 1000)
}
