package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// TestProcessingTimeWindowFiresAtItsEnd: a window on processing time (no
// eventTime) is emitted when the clock passes its end plus the grace,
// without any later event and long before the periodic tick (1 minute
// here), and not before.
func TestProcessingTimeWindowFiresAtItsEnd(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := clock.NewFake(t0)
	log := wal.NewMemory(wal.MemoryOptions{Clock: clk})
	pub := &published{}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(pub, s.MQTT) })
	eng, err := New(Options{Log: log, Checkpoints: checkpoint.NewMemoryStore(), Registry: reg, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, TickInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	plans, err := pipeline.Load("p.yaml", []byte(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: w}
spec:
  source: {mqtt: {topic: "in"}}
  steps:
    - window: {tumbling: 1s}
    - aggregate: {n: "count()"}
  sinks: [{mqtt: {topic: "out"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Apply(context.Background(), plans[0]); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(100 * time.Millisecond))
	for range 3 {
		if err := log.Append(context.Background(), &wal.Record{Topic: "in", Payload: []byte(`{}`), Time: clk.Now().UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	mqtttest.WaitFor(t, "events read", func() bool {
		st, ok := eng.Status(plans[0].ID())
		return ok && st.Cursor > log.Last() && st.Steps[0].In == 3
	})
	// Just before end + grace: nothing.
	clk.Set(t0.Add(time.Second + 20*time.Millisecond))
	time.Sleep(20 * time.Millisecond) // a wrong early close would show up here
	if got := pub.get(); len(got) != 0 {
		t.Fatalf("window emitted before its end + grace: %v", got)
	}
	clk.Set(t0.Add(time.Second + 26*time.Millisecond))
	mqtttest.WaitFor(t, "the window closes on its timer", func() bool { return len(pub.get()) == 1 })
	if got := pub.get()[0]; got != `out {"key":"in","n":3,"window_end":1700000001000,"window_start":1700000000000}` {
		t.Errorf("output %s", got)
	}
}

// TestProcessingTimeGraceFollowsDelay: records that reach the pipeline
// late (stamp long before processing) stretch the grace to twice the delay.
func TestProcessingTimeGraceFollowsDelay(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := clock.NewFake(t0)
	log := wal.NewMemory(wal.MemoryOptions{Clock: clk})
	pub := &published{}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(pub, s.MQTT) })
	eng, err := New(Options{Log: log, Checkpoints: checkpoint.NewMemoryStore(), Registry: reg, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, TickInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	plans, err := pipeline.Load("p.yaml", []byte(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: w}
spec:
  source: {mqtt: {topic: "in"}}
  steps:
    - window: {tumbling: 1s}
    - aggregate: {n: "count()"}
  sinks: [{mqtt: {topic: "out"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Apply(context.Background(), plans[0]); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(300 * time.Millisecond))
	for range 3 {
		// Stamped 200ms before the pipeline sees them: a loaded machine.
		if err := log.Append(context.Background(), &wal.Record{Topic: "in", Payload: []byte(`{}`), Time: clk.Now().Add(-200 * time.Millisecond).UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	mqtttest.WaitFor(t, "events read", func() bool {
		st, ok := eng.Status(plans[0].ID())
		return ok && st.Cursor > log.Last() && st.Steps[0].In == 3
	})
	// The grace is now twice the 200ms delay: nothing at end + 390ms.
	clk.Set(t0.Add(time.Second + 390*time.Millisecond))
	time.Sleep(20 * time.Millisecond) // a wrong early close would show up here
	if got := pub.get(); len(got) != 0 {
		t.Fatalf("window emitted before its end + grace: %v", got)
	}
	clk.Set(t0.Add(time.Second + 401*time.Millisecond))
	mqtttest.WaitFor(t, "the window closes after the grown grace", func() bool { return len(pub.get()) == 1 })
	if got := pub.get()[0]; got != `out {"key":"in","n":3,"window_end":1700000001000,"window_start":1700000000000}` {
		t.Errorf("output %s", got)
	}
}
