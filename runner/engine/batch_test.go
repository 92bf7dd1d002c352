package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
)

// batchPub is a publisher that holds what the MQTT sink publishes until
// the batch is flushed (mqtt.Batcher), as the edge broker holds deliveries
// in subscribers' buffers.
type batchPub struct {
	published
	mu     sync.Mutex
	held   []string
	failOn atomic.Value // string: payloads containing it fail (retryable)
}

func (p *batchPub) NewPublishBatch() mqtt.PublishBatch { return (*pubBatch)(p) }

type pubBatch batchPub

func (b *pubBatch) PublishFrozen(_ context.Context, topic string, payload []byte, _ byte, _ bool) error {
	if f, _ := b.failOn.Load().(string); f != "" && strings.Contains(string(payload), f) {
		return errors.New("subscribers congested")
	}
	b.mu.Lock()
	b.held = append(b.held, topic+" "+string(payload))
	b.mu.Unlock()
	return nil
}

func (b *pubBatch) Flush() {
	b.mu.Lock()
	held := b.held
	b.held = nil
	b.mu.Unlock()
	for _, m := range held {
		topic, payload, _ := strings.Cut(m, " ")
		_ = b.published.Publish(topic, []byte(payload), 0, false)
	}
}

const forwardYAML = `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: fwd}
spec:
  source: {mqtt: {topic: "in/#"}}
  sinks:
    - mqtt: {topic: "out"}
`

func newBatchHarness(t *testing.T) (*harness, *batchPub) {
	bp := &batchPub{}
	h := newHarnessWith(t, func(reg *Registry) {
		reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(bp, s.MQTT) })
	})
	return h, bp
}

// The engine ends every batch: a batching sink's output leaves without
// waiting for more records.
func TestBatchingSinkFlushedAtBatchEnd(t *testing.T) {
	h, bp := newBatchHarness(t)
	h.apply(forwardYAML)
	for i := range 50 {
		h.publish("in/a", fmt.Sprintf(`{"n":%d}`, i))
	}
	mqtttest.WaitFor(t, "50 outputs flushed", func() bool { return len(bp.get()) == 50 })
	h.waitCursor("default/fwd")
	got := bp.get()
	for i, m := range got {
		if want := fmt.Sprintf(`out {"n":%d}`, i); m != want {
			t.Fatalf("output %d is %q, want %q", i, m, want)
		}
	}
}

// While a sink fails and the run backs off, the batch's earlier outputs
// have left: they do not wait for the failing one.
func TestBatchingSinkFlushedBeforeBackoff(t *testing.T) {
	h, bp := newBatchHarness(t)
	bp.failOn.Store(`"n":3`)
	h.publish("in/a", `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	h.apply(forwardYAML)
	want := []string{`out {"n":1}`, `out {"n":2}`}
	// The fake clock never moves here: the run is in its first backoff.
	mqtttest.WaitFor(t, "the outputs before the failing one to leave", func() bool { return slices.Equal(bp.get(), want) })
	bp.failOn.Store("")
	mqtttest.WaitFor(t, "the rest after the backoff", func() bool {
		h.clock.Advance(10_000_000) // 10ms
		return len(bp.get()) == 4
	})
}
