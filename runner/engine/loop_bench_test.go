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

// BenchmarkLoopTrickle measures the pipeline goroutine's cost per wake-up:
// a producer appends records one at a time, so most batches hold one or a
// few records and the wait between them dominates (the path that used to
// start a goroutine and a context per batch). Reported: records/s through
// a filter pipeline, producer and pipeline running at once.
func BenchmarkLoopTrickle(b *testing.B) {
	sink := &countSink{}
	reg := NewRegistry()
	reg.RegisterSink("log", func(*Build, *pipeline.Sink) (Sink, error) { return sink, nil })
	log := wal.NewMemory(wal.MemoryOptions{})
	e, err := New(Options{Log: log, Registry: reg, Clock: clock.Real{}, Logger: slog.New(slog.DiscardHandler),
		CheckpointInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	plans, err := pipeline.Load("bench.yaml", []byte(benchHead+`    - filter: "temperature > 30"`))
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Apply(context.Background(), plans[0]); err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"device":"dev-%d","temperature":%d}`, i, 15+i%30))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := log.Append(context.Background(), &wal.Record{Topic: "factory/a/data", Payload: payloads[i%64]}); err != nil {
			b.Fatal(err)
		}
	}
	for {
		st, _ := e.Status(plans[0].ID())
		if st.Cursor > log.Last() {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
