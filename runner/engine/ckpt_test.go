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

// TestQuietPipelinesCheckpointLessOften: a pipeline with output
// checkpoints every interval; one whose filter drops everything only
// every quietCheckpoints intervals, and not at all when its cursor stays.
func TestQuietPipelinesCheckpointLessOften(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	log := wal.NewMemory(wal.MemoryOptions{Clock: clk})
	ckpts := checkpoint.NewMemoryStore()
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(&published{}, s.MQTT) })
	eng, err := New(Options{Log: log, Checkpoints: ckpts, Registry: reg, Clock: clk, Logger: slog.New(slog.DiscardHandler),
		CheckpointInterval: 2 * time.Second, TickInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, y := range []string{
		"metadata: {name: pass}\nspec:\n  source: {mqtt: {topic: in}}\n  steps: [{filter: \"i >= 0\"}]\n  sinks: [{mqtt: {topic: out}}]\n",
		"metadata: {name: drop}\nspec:\n  source: {mqtt: {topic: in}}\n  steps: [{filter: \"i < 0\"}]\n  sinks: [{mqtt: {topic: out}}]\n",
	} {
		plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\n"+y))
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Apply(context.Background(), plans[0]); err != nil {
			t.Fatal(err)
		}
	}
	saved := func(id string) uint64 {
		cp, _, _ := ckpts.Load(context.Background(), id)
		return cp.Offset
	}
	appendN(t, log, "in", 0, 5)
	for _, id := range []string{"default/pass", "default/drop"} {
		mqtttest.WaitFor(t, id+" reads", func() bool { st, ok := eng.Status(id); return ok && st.Cursor == 6 })
	}
	clk.Advance(2 * time.Second)
	mqtttest.WaitFor(t, "the pipeline with output checkpoints", func() bool { return saved("default/pass") == 6 })
	if got := saved("default/drop"); got != 1 {
		t.Fatalf("the dropping pipeline checkpointed offset %d after one interval", got)
	}
	for range quietCheckpoints {
		clk.Advance(2 * time.Second)
	}
	mqtttest.WaitFor(t, "the dropping pipeline checkpoints after quietCheckpoints intervals", func() bool { return saved("default/drop") == 6 })
}
