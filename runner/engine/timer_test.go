package engine

import (
	"context"
	"fmt"
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
	checkProcessingTimeWindow(t, 100*time.Millisecond, 0, time.Second+20*time.Millisecond, time.Second+26*time.Millisecond)
}

// TestProcessingTimeGraceFollowsDelay: records that reach the pipeline
// late (stamp long before processing) stretch the grace to twice the delay.
func TestProcessingTimeGraceFollowsDelay(t *testing.T) {
	// Stamped 200ms before the pipeline sees them (a loaded machine): the
	// grace is twice that, so nothing at end + 390ms.
	checkProcessingTimeWindow(t, 300*time.Millisecond, 200*time.Millisecond, time.Second+390*time.Millisecond, time.Second+401*time.Millisecond)
}

// checkProcessingTimeWindow runs a 1 s tumbling count window on processing
// time from t0, appends three records when the clock is at t0+seen, each
// stamped delay earlier, and checks that the window [t0, t0+1s) is not
// emitted at t0+quiet and is emitted on its timer by t0+fires.
func checkProcessingTimeWindow(t *testing.T, seen, delay, quiet, fires time.Duration) {
	t.Helper()
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
	clk.Set(t0.Add(seen))
	for range 3 {
		if err := log.Append(context.Background(), &wal.Record{Topic: "in", Payload: []byte(`{}`), Time: clk.Now().Add(-delay).UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	mqtttest.WaitFor(t, "events read", func() bool {
		st, ok := eng.Status(plans[0].ID())
		return ok && st.Cursor > log.Last() && st.Steps[0].In == 3
	})
	clk.Set(t0.Add(quiet))
	time.Sleep(20 * time.Millisecond) // a wrong early close would show up here
	if got := pub.get(); len(got) != 0 {
		t.Fatalf("window emitted before its end + grace (at +%v): %v", quiet, got)
	}
	clk.Set(t0.Add(fires))
	mqtttest.WaitFor(t, fmt.Sprintf("the window to close on its timer by +%v", fires), func() bool { return len(pub.get()) == 1 })
	if got := pub.get()[0]; got != `out {"key":"in","n":3,"window_end":1700000001000,"window_start":1700000000000}` {
		t.Errorf("output %s", got)
	}
}
