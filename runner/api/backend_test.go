package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// realBackend implements Backend with the runner's real parts: an
// in-memory WAL, the engine, the embedded mochi broker on a random
// loopback port (logging into the WAL) and a twin manager subscribed to
// the broker. It mirrors what *runner.Runner does, without the runner.
type realBackend struct {
	log    *wal.Memory
	broker *broker.Broker
	eng    *engine.Engine
	twins  *twin.Manager
	store  *twin.MemStore

	mu       sync.Mutex
	sources  map[string][]byte
	readOnly bool
}

type walAppender struct{ log wal.Log }

func (a walAppender) Append(ctx context.Context, msg *broker.Message, durable bool) error {
	d := wal.Buffered
	if durable {
		d = wal.Durable
	}
	return a.log.AppendWith(ctx, d, &wal.Record{Time: msg.Time.UnixNano(), Topic: msg.Topic, Payload: msg.Payload,
		QoS: msg.QoS, Retain: msg.Retain, Client: msg.Client})
}

func newRealBackend(t testing.TB) *realBackend {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	b := &realBackend{log: wal.NewMemory(wal.MemoryOptions{}), store: twin.NewMemStore(), sources: map[string][]byte{}}
	var err error
	b.broker, err = broker.New(broker.Options{Addr: "127.0.0.1:0", AllowAnonymous: true, Log: walAppender{b.log},
		LogInline: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b.twins, err = twin.New(ctx, twin.Options{Node: "edge-1", Store: b.store, Publisher: twin.PublisherFunc(b.broker.Publish), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry()
	reg.RegisterSink("mqtt", func(_ *engine.Build, s *pipeline.Sink) (engine.Sink, error) { return mqtt.NewSink(b.broker, s.MQTT) })
	b.eng, err = engine.New(engine.Options{Log: b.log, Registry: reg, Twins: b.twins, Clock: clock.Real{}, Logger: quiet,
		TickInterval: 50 * time.Millisecond, CheckpointInterval: time.Hour,
		OnAlert: func(*pipeline.Plan, *pipeline.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.broker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range twin.Subscriptions {
		unsub, err := b.broker.Subscribe(f, func(topic string, payload []byte) {
			_ = b.twins.HandleMessage(context.Background(), topic, payload)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(unsub)
	}
	t.Cleanup(func() {
		b.broker.Close()
		b.eng.Close()
		b.twins.Close()
		b.log.Close()
	})
	return b
}

func (b *realBackend) Pipelines() []engine.Status { return b.eng.List() }
func (b *realBackend) Pipeline(id string) (engine.Status, bool) {
	return b.eng.Status(id)
}
func (b *realBackend) Source(id string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sources[id]
	return s, ok
}
func (b *realBackend) Apply(ctx context.Context, plan *pipeline.Plan, src []byte) error {
	if err := b.eng.Apply(ctx, plan); err != nil {
		return err
	}
	b.mu.Lock()
	b.sources[plan.ID()] = src
	b.mu.Unlock()
	return nil
}
func (b *realBackend) Remove(ctx context.Context, id string) error {
	if err := b.eng.Remove(ctx, id); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.sources, id)
	b.mu.Unlock()
	return nil
}
func (b *realBackend) StartPipeline(ctx context.Context, id string) error {
	return b.eng.Start(ctx, id)
}
func (b *realBackend) StopPipeline(id string) error { return b.eng.Stop(id) }
func (b *realBackend) Tap(id string, buf int) (*engine.Tap, func(), error) {
	return b.eng.Tap(id, buf)
}
func (b *realBackend) Alerts() []engine.AlertRecord { return b.eng.Alerts() }
func (b *realBackend) Devices() []*twin.DeviceRecord {
	// The twin manager persists every change to its store before it
	// answers; the store's Load is a consistent copy of all devices.
	devs, err := b.store.Load()
	if err != nil {
		return nil
	}
	return devs
}
func (b *realBackend) BrokerStats() broker.Stats          { return b.broker.Stats() }
func (b *realBackend) BrokerClients() []broker.ClientInfo { return b.broker.Clients() }
func (b *realBackend) BrokerTopics() []broker.TopicInfo   { return b.broker.Topics() }
func (b *realBackend) WALStats() wal.Stats                { return b.log.Stats() }
func (b *realBackend) Link() LinkStatus                   { return LinkStatus{State: LinkNone} }
func (b *realBackend) ReadOnly() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readOnly
}
func (b *realBackend) Ready() error {
	if b.broker.Addr() == nil {
		return errors.New("broker not listening")
	}
	return nil
}

func (b *realBackend) setReadOnly(v bool) {
	b.mu.Lock()
	b.readOnly = v
	b.mu.Unlock()
}

// apply compiles YAML and applies it through the backend.
func (b *realBackend) apply(t testing.TB, src string) {
	t.Helper()
	plans, err := pipeline.Load("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		if err := b.Apply(context.Background(), p, []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
}

// publish sends messages through the broker (inline client), so they go
// through the same hook into the WAL as network clients.
func (b *realBackend) publish(t testing.TB, topic string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := b.broker.Publish(topic, []byte(p), 1, false); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	adminToken = "admin-token-0123456789"
	readToken  = "read-token-0123456789ab"
)

// testServer starts the API over a real backend.
type testServer struct {
	*realBackend
	srv  *Server
	http *httptest.Server
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	b := newRealBackend(t)
	opts.Backend = b
	if opts.Tokens.Empty() {
		opts.Tokens = Tokens{Admin: []string{adminToken}, ReadOnly: []string{readToken}}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(s.Handler())
	t.Cleanup(h.Close)
	return &testServer{realBackend: b, srv: s, http: h}
}

const thermoYAML = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot, namespace: plant}
spec:
  source:
    mqtt: {topic: "factory/+/data", format: json}
  key: device
  steps:
    - filter: "temperature > 30"
    - alert:
        when: "temperature > 30"
        severity: critical
        message: "{{key}} is hot: {{temperature}}"
  sinks:
    - mqtt: {topic: "alerts/{{key}}"}
`
