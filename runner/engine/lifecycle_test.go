package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

// flaky is a publisher that fails with a retryable error while down is
// set, or for payloads that contain poison.
type flaky struct {
	published
	down   atomic.Bool
	poison string
	tries  atomic.Int64
	open   atomic.Int64 // sinks built and not closed
}

func (f *flaky) Publish(topic string, payload []byte, qos byte, retain bool) error {
	f.tries.Add(1)
	if f.down.Load() || (f.poison != "" && strings.Contains(string(payload), f.poison)) {
		return errors.New("broker busy (test)")
	}
	return f.published.Publish(topic, payload, qos, retain)
}

// countedSink wraps the MQTT sink to count open instances.
type countedSink struct {
	*mqtt.Sink
	f      *flaky
	closed atomic.Bool
}

func (c *countedSink) Close() error {
	if !c.closed.Swap(true) {
		c.f.open.Add(-1)
	}
	return nil
}

func flakyHarness(t *testing.T, f *flaky) *harness {
	h := &harness{t: t}
	*h = *newHarnessWith(t, func(reg *Registry) {
		reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) {
			ms, err := mqtt.NewSink(f, s.MQTT)
			if err != nil {
				return nil, err
			}
			f.open.Add(1)
			return &countedSink{Sink: ms, f: f}, nil
		})
	})
	return h
}

const passYAML = `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: pass}
spec:
  source: {mqtt: {topic: "in/#"}}
  steps:
    - map: {r: "v / d"}
  sinks:
    - mqtt: {topic: "out/{{dev}}"}
  errors:
    - mqtt: {topic: "dead/pass"}
`

func deadLetters(t *testing.T, msgs []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range msgs {
		topic, payload, _ := strings.Cut(m, " ")
		if topic != "dead/pass" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(payload), &v); err != nil {
			t.Fatalf("dead letter %q is not JSON: %v", payload, err)
		}
		out = append(out, v)
	}
	return out
}

func outputs(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m, "out/") {
			out = append(out, m)
		}
	}
	return out
}

// Reproduction 1: a rendered topic with a wildcard, a NUL, +Inf from a
// division by zero and an undecodable payload are permanent for their
// event: each goes to the errors: sink with its reason, and the pipeline
// moves on to the next good event without retrying.
func TestPermanentErrorsGoToErrorsSinks(t *testing.T) {
	h := newHarness(t)
	h.apply(passYAML)
	h.publish("in/1",
		`{"dev":"a/+","v":1,"d":1}`,
		`{"dev":"b\u0000","v":1,"d":1}`,
		`{"dev":"c","v":1,"d":0}`,
		`{not json`,
		`{"dev":"ok","v":4,"d":2}`,
	)
	st := h.waitCursor("default/pass")
	got := h.pub.get()
	if out := outputs(got); len(out) != 1 || out[0] != `out/ok {"d":2,"dev":"ok","r":2,"v":4}` {
		t.Fatalf("outputs %q; want only the good event", out)
	}
	dl := deadLetters(t, got)
	if len(dl) != 4 {
		t.Fatalf("%d dead letters, want 4: %q", len(dl), got)
	}
	for i, want := range []struct{ step, err string }{
		{"sink-mqtt-0", "wildcard"},
		{"sink-mqtt-0", "NUL"},
		{"sink-mqtt-0", "+Inf"},
		{"source", "offset 4"},
	} {
		if dl[i]["step"] != want.step || !strings.Contains(fmt.Sprint(dl[i]["error"]), want.err) || dl[i]["pipeline"] != "default/pass" {
			t.Errorf("dead letter %d = %v; want step %s, error containing %q", i, dl[i], want.step, want.err)
		}
		if dl[i]["offset"] != float64(i+1) {
			t.Errorf("dead letter %d offset %v, want %d", i, dl[i]["offset"], i+1)
		}
	}
	if ev, _ := dl[2]["event"].(map[string]any); ev["r"] != "+Inf" {
		t.Errorf("dead letter of the +Inf event carries %v; want r as the string +Inf", dl[2]["event"])
	}
	if dl[3]["event"] != "{not json" {
		t.Errorf("dead letter of the undecodable payload carries %v; want the payload", dl[3]["event"])
	}
	if st.State != StateRunning || st.DeadLettered != 4 {
		t.Errorf("state %s, deadLettered %d; want running, 4", st.State, st.DeadLettered)
	}
}

// Without an errors: sink a permanent failure is counted and the pipeline
// moves on (no retry, no stall).
func TestPermanentErrorWithoutErrorsSinkMovesOn(t *testing.T) {
	f := &flaky{}
	h := flakyHarness(t, f)
	h.apply(strings.Replace(passYAML, "  errors:\n    - mqtt: {topic: \"dead/pass\"}\n", "", 1))
	h.publish("in/1", `{"dev":"a/#","v":1,"d":1}`, `{"dev":"ok","v":1,"d":1}`)
	st := h.waitCursor("default/pass")
	if got := f.get(); len(got) != 1 || !strings.HasPrefix(got[0], "out/ok ") {
		t.Fatalf("published %q; want only out/ok", got)
	}
	if st.DeadLettered != 1 || st.State != StateRunning || st.Lag != 0 {
		t.Fatalf("status %+v; want running, lag 0, 1 dead-lettered", st)
	}
	if n := f.tries.Load(); n != 1 {
		t.Fatalf("the publisher was called %d times; a permanent error must not be retried (the invalid topic is refused before publishing)", n)
	}
}

// A retryable error degrades the pipeline: the cursor waits on the record,
// lag grows, the status carries the error; when the sink comes back the
// output is delivered once and the pipeline is running again.
func TestRetryableErrorDegradesThenRecovers(t *testing.T) {
	f := &flaky{}
	h := flakyHarness(t, f)
	h.apply(passYAML)
	f.down.Store(true)
	h.publish("in/1", `{"dev":"a","v":1,"d":1}`)
	var st Status
	mqtttest.WaitFor(t, "the pipeline to be degraded", func() bool {
		st, _ = h.eng.Status("default/pass")
		return st.State == StateDegraded
	})
	if !strings.Contains(st.Error, "broker busy") || st.BlockedAt != 1 {
		t.Fatalf("degraded status %+v; want the sink's error and blockedAt 1", st)
	}
	h.publish("in/1", `{"dev":"b","v":1,"d":1}`, `{"dev":"c","v":1,"d":1}`)
	mqtttest.WaitFor(t, "lag to show the records behind", func() bool {
		st, _ = h.eng.Status("default/pass")
		return st.Lag >= 3
	})
	f.down.Store(false)
	// Retries wait on the injected clock.
	mqtttest.WaitFor(t, "the retry to deliver", func() bool {
		h.clock.Advance(5 * time.Second)
		return len(f.get()) == 3
	})
	st = h.waitCursor("default/pass")
	if st.State != StateRunning || st.Error != "" {
		t.Fatalf("after recovery: %+v; want running without error", st)
	}
	want := []string{`out/a {"d":1,"dev":"a","r":1,"v":1}`, `out/b {"d":1,"dev":"b","r":1,"v":1}`, `out/c {"d":1,"dev":"c","r":1,"v":1}`}
	if got := f.get(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("published %q; want each once, in order: %q", got, want)
	}
}

// Reproduction 2: Stop, Apply (replace) and Remove of a pipeline stuck
// retrying a sink return promptly; the stuck record is not checkpointed
// as done, its sinks are closed, and Remove releases the WAL consumer.
func TestStopReplaceRemoveEndStuckRetries(t *testing.T) {
	f := &flaky{}
	h := flakyHarness(t, f)
	h.apply(passYAML)
	h.publish("in/1", `{"dev":"a","v":1,"d":1}`)
	h.waitCursor("default/pass")
	f.down.Store(true)
	h.publish("in/1", `{"dev":"b","v":1,"d":1}`)
	waitState := func(s State) {
		mqtttest.WaitFor(t, "state "+string(s), func() bool {
			st, _ := h.eng.Status("default/pass")
			return st.State == s
		})
	}
	waitState(StateDegraded)
	within(t, "Stop of a stuck pipeline", func() error { return h.eng.Stop("default/pass") })
	st, _ := h.eng.Status("default/pass")
	if st.State != StateStopped || st.Committed > 2 || f.open.Load() != 0 {
		t.Fatalf("after Stop: state %s committed %d open sinks %d; want stopped, committed at most 2 (record 2 not done), 0 open", st.State, st.Committed, f.open.Load())
	}
	within(t, "Start", func() error { return h.eng.Start(context.Background(), "default/pass") })
	waitState(StateDegraded)
	within(t, "replace of a stuck pipeline", func() error {
		return h.eng.Apply(context.Background(), load(t, strings.Replace(passYAML, "dead/pass", "dead/pass2", 1)))
	})
	waitState(StateDegraded)
	if n := f.open.Load(); n != 2 {
		t.Fatalf("%d sinks open after a replace; want the new run's 2", n)
	}
	within(t, "Remove of a stuck pipeline", func() error { return h.eng.Remove(context.Background(), "default/pass") })
	if n := f.open.Load(); n != 0 {
		t.Fatalf("%d sinks open after Remove", n)
	}
	if _, ok := h.log.Stats().Consumers["default/pass"]; ok {
		t.Fatal("Remove left the WAL consumer holding retention")
	}
	if _, ok, _ := h.ckpt.Load(context.Background(), "default/pass"); ok {
		t.Fatal("Remove left the checkpoint")
	}
	tries := f.tries.Load()
	h.clock.Advance(time.Minute)
	if f.tries.Load() != tries {
		t.Fatal("the removed pipeline is still retrying")
	}
}

// within runs fn and fails the test if it takes more than 5 s (the stop
// grace is 1 s) or returns an error.
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s hangs", what)
	}
}

func load(t *testing.T, yaml string) *pipeline.Plan {
	t.Helper()
	plans, err := pipeline.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return plans[0]
}

// Reproduction 3 (part): a replace whose plan fails to build keeps the old
// run going and says why.
func TestFailedReplaceKeepsOldRun(t *testing.T) {
	h := newHarness(t)
	h.apply(passYAML)
	before, _ := h.eng.Status("default/pass")
	bad := load(t, strings.Replace(passYAML, "- mqtt: {topic: \"dead/pass\"}", "- file: {path: /tmp/x}", 1))
	err := h.eng.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `kind "file" is not available`) {
		t.Fatalf("Apply of an unbuildable plan: %v", err)
	}
	after, ok := h.eng.Status("default/pass")
	if !ok || after.State != StateRunning || after.Hash != before.Hash || !after.Started.Equal(before.Started) {
		t.Fatalf("old run disturbed: %+v", after)
	}
	h.publish("in/1", `{"dev":"a","v":1,"d":1}`)
	mqtttest.WaitFor(t, "the old run's output", func() bool { return len(outputs(h.pub.get())) == 1 })
}

// Reproduction 3: many concurrent replaces and removes of one pipeline end
// with exactly one run or none; later events are written once; no sink or
// goroutine is left behind.
func TestConcurrentApplyRemoveOneOwner(t *testing.T) {
	f := &flaky{}
	h := flakyHarness(t, f)
	baseGoroutines := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(2)
		plan := load(t, strings.Replace(passYAML, "dead/pass", fmt.Sprintf("dead/p%d", i), 1))
		go func() {
			defer wg.Done()
			if err := h.eng.Apply(context.Background(), plan); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			var nf *NotFoundError
			if err := h.eng.Remove(context.Background(), "default/pass"); err != nil && !errors.As(err, &nf) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_, exists := h.eng.Status("default/pass")
	if want := int64(0); exists {
		want = 2
		if n := f.open.Load(); n != want {
			t.Fatalf("%d sinks open with one run; want %d", n, want)
		}
	} else if n := f.open.Load(); n != want {
		t.Fatalf("%d sinks open with no run", n)
	}
	h.apply(passYAML) // one run for sure now
	h.publish("in/1", `{"dev":"x","v":1,"d":1}`)
	h.waitCursor("default/pass")
	if out := outputs(f.get()); len(out) != 1 {
		t.Fatalf("one event written %d times: %q", len(out), out)
	}
	if err := h.eng.Remove(context.Background(), "default/pass"); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseGoroutines })
}

// Skip drops the output a degraded pipeline is stuck on, checkpoints past
// it and goes on; Seek moves the cursor back and the records replay.
func TestSkipAndSeek(t *testing.T) {
	f := &flaky{poison: `"dev":"poison"`}
	h := flakyHarness(t, f)
	h.apply(passYAML)
	if _, err := h.eng.Skip(context.Background(), "default/pass"); !errors.Is(err, ErrNotBlocked) {
		t.Fatalf("Skip of a running pipeline: %v; want ErrNotBlocked", err)
	}
	h.publish("in/1", `{"dev":"a","v":1,"d":1}`, `{"dev":"poison","v":1,"d":1}`, `{"dev":"c","v":1,"d":1}`)
	mqtttest.WaitFor(t, "degraded on the poison record", func() bool {
		st, _ := h.eng.Status("default/pass")
		return st.State == StateDegraded && st.BlockedAt == 2
	})
	res, err := h.eng.Skip(context.Background(), "default/pass")
	if err != nil || res.Skipped != 2 || res.Resume != 3 {
		t.Fatalf("Skip = %+v, %v; want skipped 2, resume 3", res, err)
	}
	st := h.waitCursor("default/pass")
	if out := outputs(f.get()); len(out) != 2 || !strings.HasPrefix(out[1], "out/c ") || st.State != StateRunning {
		t.Fatalf("after skip: outputs %q, state %s; want a and c, running", out, st.State)
	}
	f.poison = "nothing matches"
	if _, err := h.eng.Seek(context.Background(), "default/pass", 99); err == nil || !strings.Contains(err.Error(), "outside the log") {
		t.Fatalf("Seek beyond the log: %v", err)
	}
	res2, err := h.eng.Seek(context.Background(), "default/pass", 1)
	if err != nil || res2.From != 4 || res2.To != 1 {
		t.Fatalf("Seek = %+v, %v; want from 4 to 1", res2, err)
	}
	mqtttest.WaitFor(t, "the replay", func() bool { return len(outputs(f.get())) == 5 })
}

// Reproduction 6: pipelines that feed each other in a cycle are refused
// when the cycle closes, naming the loop; allowLoop lets it be.
func TestCrossPipelineCycleRefused(t *testing.T) {
	h := newHarness(t)
	a := `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: a}
spec:
  source: {mqtt: {topic: "x/#"}}
  sinks: [{mqtt: {topic: "y/{{key}}"}}]
`
	b := strings.NewReplacer("name: a", "name: b", `"x/#"`, `"y/#"`, `"y/{{key}}"`, `"x/out"`).Replace(a)
	h.apply(a)
	err := h.eng.Apply(context.Background(), load(t, b))
	if err == nil || !strings.Contains(err.Error(), `default/a -[spec.sinks[0] "y/{{key}}"]-> default/b -[spec.sinks[0] "x/out"]-> default/a`) {
		t.Fatalf("closing a cycle: %v", err)
	}
	if _, ok := h.eng.Status("default/b"); ok {
		t.Fatal("the refused pipeline exists")
	}
	h.apply(strings.Replace(b, `"x/out"}`, `"x/out", allowLoop: true}`, 1))
}

// hungSink blocks in Write until released, ignoring its context (a sink
// stuck in a syscall).
type hungSink struct {
	entered chan struct{}
	release chan struct{}
}

func (h *hungSink) Write(context.Context, *pipeline.Event) error {
	h.entered <- struct{}{}
	<-h.release
	return nil
}
func (h *hungSink) Flush(context.Context) error { return nil }
func (h *hungSink) Close() error                { return nil }

// Shutdown is bounded: a pipeline whose sink hangs is abandoned when the
// context ends, and the error names it; the others stop cleanly.
func TestShutdownNamesWhatItAbandoned(t *testing.T) {
	hung := &hungSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(hung.release)
	h := newHarnessWith(t, func(reg *Registry) {
		reg.RegisterSink("log", func(*Build, *pipeline.Sink) (Sink, error) { return hung, nil })
	})
	h.apply(passYAML)
	h.apply(strings.NewReplacer("name: pass", "name: hang", "in/#", "hang/#", `- mqtt: {topic: "out/{{dev}}"}`, "- log: {}").Replace(passYAML))
	h.publish("hang/1", `{"dev":"a","v":1,"d":1}`)
	select {
	case <-hung.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the sink was never written to")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := h.eng.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "abandoned 1 pipeline(s)") || !strings.Contains(err.Error(), "default/hang") || strings.Contains(err.Error(), "default/pass") {
		t.Fatalf("Shutdown: %v; want default/hang named as abandoned", err)
	}
	if st, _ := h.eng.Status("default/pass"); st.State != StateStopped {
		t.Fatalf("the healthy pipeline is %s after Shutdown", st.State)
	}
	if err := h.eng.Apply(context.Background(), load(t, passYAML)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Shutdown: %v", err)
	}
}

// Reproduction 1 (retention): under a size bound with the block policy, a
// poison event no longer holds the log; the pipeline's consumer moves past
// it, retention frees space and publishes keep being accepted.
func TestPoisonDoesNotFillTheLog(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{RetentionOptions: wal.RetentionOptions{MaxBytes: 4096, Interval: time.Hour}})
	f := &flaky{}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(f, s.MQTT) })
	e, err := New(Options{Log: log, Registry: reg, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Apply(context.Background(), load(t, passYAML)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := []byte(`{"dev":"a/+","v":1,"d":1,"pad":"` + strings.Repeat("x", 200) + `"}`)
	for i := 0; i < 60; i++ { // ~15 KB through a 4 KB log: only if retention keeps up
		if err := log.Append(ctx, &wal.Record{Topic: "in/1", Payload: payload}); err != nil {
			t.Fatalf("append %d refused: %v", i, err)
		}
		mqtttest.WaitFor(t, "the pipeline to checkpoint past the record", func() bool {
			return log.Stats().Consumers["default/pass"] > log.Last()
		})
		if _, err := log.Retain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := e.Status("default/pass")
	if st.DeadLettered != 60 || st.State != StateRunning {
		t.Fatalf("status %+v; want 60 dead-lettered, running", st)
	}
}

// A tap (the API's live output) stays attached across a replace.
func TestTapSurvivesReplace(t *testing.T) {
	h := newHarness(t)
	h.apply(passYAML)
	tap, detach, err := h.eng.Tap("default/pass", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	h.apply(strings.Replace(passYAML, "dead/pass", "dead/other", 1))
	h.publish("in/1", `{"dev":"a","v":1,"d":1}`)
	select {
	case b := <-tap.C():
		if !strings.Contains(string(b), `"dev":"a"`) {
			t.Fatalf("tap got %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tap went silent after a replace")
	}
}
