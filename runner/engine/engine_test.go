package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// published records what the MQTT sink publishes, as a broker would see it.
type published struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (p *published) Publish(topic string, payload []byte, qos byte, retain bool) error {
	p.mu.Lock()
	p.msgs = append(p.msgs, topic+" "+string(payload))
	p.mu.Unlock()
	return nil
}

func (p *published) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

type harness struct {
	t        *testing.T
	log      *wal.Memory
	ckpt     *checkpoint.MemoryStore
	clock    *clock.Fake
	pub      *published
	eng      *Engine
	register func(*Registry)
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith lets register replace the sinks.
func newHarnessWith(t *testing.T, register func(*Registry)) *harness {
	h := &harness{t: t, log: wal.NewMemory(wal.MemoryOptions{}), ckpt: checkpoint.NewMemoryStore(),
		clock: clock.NewFake(time.Unix(1_700_000_000, 0)), pub: &published{}, register: register}
	h.start()
	t.Cleanup(func() { h.eng.Close() })
	return h
}

func (h *harness) start() {
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(h.pub, s.MQTT) })
	if h.register != nil {
		h.register(reg)
	}
	eng, err := New(Options{Log: h.log, Checkpoints: h.ckpt, Registry: reg, Clock: h.clock,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
}

func (h *harness) apply(yaml string) *pipeline.Plan {
	h.t.Helper()
	plans, err := pipeline.Load("test.yaml", []byte(yaml))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.eng.Apply(context.Background(), plans[0]); err != nil {
		h.t.Fatal(err)
	}
	return plans[0]
}

func (h *harness) publish(topic string, payloads ...string) {
	h.t.Helper()
	for _, p := range payloads {
		if err := h.log.Append(context.Background(), &wal.Record{Topic: topic, Payload: []byte(p), Time: h.clock.Now().UnixNano()}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// waitCursor waits until the pipeline has processed everything in the log.
// The cursor and the counters are published together after each batch, so
// the status it returns has every counter of that work.
func (h *harness) waitCursor(id string) Status {
	h.t.Helper()
	var st Status
	mqtttest.WaitFor(h.t, "pipeline "+id+" to read the whole log", func() bool {
		var ok bool
		st, ok = h.eng.Status(id)
		return ok && st.Cursor > h.log.Last()
	})
	return st
}

const filterYAML = `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  key: device
  steps:
    - filter: "temperature > 30"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - select: [device, temp_f]
  sinks:
    - mqtt: {topic: "hot/{{device}}"}
`

func TestFilterMapSelect(t *testing.T) {
	h := newHarness(t)
	h.apply(filterYAML)
	h.publish("factory/a/data", `{"device":"a","temperature":25}`, `{"device":"a","temperature":35,"x":1}`)
	h.publish("other/topic", `{"device":"z","temperature":99}`)
	h.publish("factory/b/data", `{"device":"b"}`, `{not json`, `[{"device":"c","temperature":40},{"device":"d","temperature":1}]`)
	mqtttest.WaitFor(t, "two outputs", func() bool { return len(h.pub.get()) == 2 })
	st := h.waitCursor("default/hot")
	want := []string{`hot/a {"device":"a","temp_f":95}`, `hot/c {"device":"c","temp_f":104}`}
	if got := h.pub.get(); !slices.Equal(got, want) {
		t.Fatalf("published:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// 6 matching messages: 1 undecodable (source error), 6 events decoded
	// (the array holds two); the event without temperature is a filter error.
	if st.Source.In != 5 || st.Source.Out != 5 || st.Source.Errors != 1 {
		t.Errorf("source in/out/errors = %d/%d/%d, want 5/5/1", st.Source.In, st.Source.Out, st.Source.Errors)
	}
	if !strings.Contains(st.Source.LastError, "not valid JSON") {
		t.Errorf("source last error %q does not explain the JSON problem", st.Source.LastError)
	}
	f := st.Steps[0]
	if f.ID != "filter-0" || f.In != 5 || f.Out != 2 || f.Errors != 1 {
		t.Errorf("filter stats %+v, want in 5 out 2 errors 1", f)
	}
	if st.Sinks[0].Out != 2 {
		t.Errorf("sink out = %d, want 2", st.Sinks[0].Out)
	}
}

func TestRawPassThroughKeepsPayloadBytes(t *testing.T) {
	h := newHarness(t)
	h.apply(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: pass}
spec:
  source: {mqtt: {topic: "in"}}
  steps: [{filter: "v > 1"}]
  sinks: [{mqtt: {topic: "out"}}]
`)
	h.publish("in", `{"v": 2,   "z": "kept as sent"}`)
	mqtttest.WaitFor(t, "output", func() bool { return len(h.pub.get()) == 1 })
	if got, want := h.pub.get()[0], `out {"v": 2,   "z": "kept as sent"}`; got != want {
		t.Fatalf("got %q, want the original bytes %q", got, want)
	}
}

// overheat is the example from the issue with event time from the payload.
const overheatYAML = `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  steps:
    - filter: "temperature != nil && temperature > -40"
    - window: {tumbling: 10s, allowedLateness: 2s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
    - alert:
        when: "avg_t > 30"
        for: 20s
        severity: warning
        message: "{{key}} is overheating: avg {{avg_t}}"
  sinks:
    - mqtt: {topic: "alerts/{{key}}"}
`

const t0 = int64(1_700_000_000_000) // ms, a multiple of 10 s

func reading(dev string, tsMS int64, temp float64) string {
	return fmt.Sprintf(`{"device":%q,"ts":%d,"temperature":%g}`, dev, tsMS, temp)
}

func decodeAlerts(t *testing.T, msgs []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range msgs {
		_, payload, _ := strings.Cut(m, " ")
		var f map[string]any
		if err := json.Unmarshal([]byte(payload), &f); err != nil {
			t.Fatalf("alert payload %q: %v", payload, err)
		}
		out = append(out, f)
	}
	return out
}

func TestOverheatFiresAndResolves(t *testing.T) {
	h := newHarness(t)
	h.apply(overheatYAML)
	// d1 is hot for 50 s, then cool; one reading a second.
	for s := int64(0); s < 80; s++ {
		temp := 35.0
		if s >= 50 {
			temp = 20
		}
		h.publish("factory/d1/data", reading("d1", t0+s*1000, temp))
	}
	mqtttest.WaitFor(t, "firing and resolved", func() bool { return len(h.pub.get()) >= 2 })
	h.waitCursor("default/overheat")
	alerts := decodeAlerts(t, h.pub.get())
	if len(alerts) != 2 {
		t.Fatalf("got %d alerts, want firing + resolved: %v", len(alerts), h.pub.get())
	}
	fire, res := alerts[0], alerts[1]
	if fire["state"] != "firing" || res["state"] != "resolved" {
		t.Fatalf("states %v, %v; want firing then resolved", fire["state"], res["state"])
	}
	if fire["alert_id"] != res["alert_id"] || fire["alert_id"] == "" {
		t.Errorf("alert ids %v / %v must be equal and set", fire["alert_id"], res["alert_id"])
	}
	if fire["message"] != "d1 is overheating: avg 35" || fire["severity"] != "warning" {
		t.Errorf("firing alert %v", fire)
	}
	if !strings.HasPrefix(h.pub.get()[0], "alerts/d1 ") {
		t.Errorf("topic of %q, want alerts/d1", h.pub.get()[0])
	}
}

func TestCheckpointResumeNoLossNoRepeat(t *testing.T) {
	h := newHarness(t)
	h.apply(filterYAML)
	h.publish("factory/a/data", `{"device":"a","temperature":31}`)
	mqtttest.WaitFor(t, "first output", func() bool { return len(h.pub.get()) == 1 })
	h.eng.Close() // checkpoints
	h.publish("factory/a/data", `{"device":"a","temperature":32}`)
	h.start()
	h.apply(filterYAML)
	mqtttest.WaitFor(t, "second output", func() bool { return len(h.pub.get()) == 2 })
	h.waitCursor("default/hot")
	want := []string{`hot/a {"device":"a","temp_f":87.8}`, `hot/a {"device":"a","temp_f":89.6}`}
	if got := h.pub.get(); !slices.Equal(got, want) {
		t.Fatalf("after restart published %q, want %q (no loss, no repeat after a clean stop)", got, want)
	}
}

func TestWindowStateSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.apply(overheatYAML)
	for s := int64(0); s < 25; s++ {
		h.publish("factory/d1/data", reading("d1", t0+s*1000, 35))
	}
	h.waitCursor("default/overheat")
	h.eng.Close()
	// The alert was pending (held 10 s of the 20 s it needs) and window
	// [20,30) was open: both must continue after the restart.
	h.start()
	h.apply(overheatYAML)
	for s := int64(25); s < 45; s++ {
		h.publish("factory/d1/data", reading("d1", t0+s*1000, 35))
	}
	mqtttest.WaitFor(t, "firing alert", func() bool { return len(h.pub.get()) >= 1 })
	h.waitCursor("default/overheat")
	alerts := decodeAlerts(t, h.pub.get())
	if len(alerts) != 1 || alerts[0]["state"] != "firing" {
		t.Fatalf("alerts %v, want exactly one firing", h.pub.get())
	}
	st, _ := h.eng.Status("default/overheat")
	if st.Steps[1].Out != 2 {
		t.Errorf("window emitted %d windows after restart, want 2 ([20,30) restored + [30,40))", st.Steps[1].Out)
	}
}

func TestIdleKeysCloseOnProcessingTime(t *testing.T) {
	h := newHarness(t)
	h.apply(strings.Replace(overheatYAML, "for: 20s", "for: 0s", 1))
	// One window's worth of hot readings, then silence.
	for s := int64(0); s < 5; s++ {
		h.publish("factory/d1/data", reading("d1", t0+s*1000, 35))
	}
	h.waitCursor("default/overheat")
	if n := len(h.pub.get()); n != 0 {
		t.Fatalf("alerts before the window could close: %v", h.pub.get())
	}
	// idleTimeout defaults to size+lateness = 12 s. Step the processing
	// clock past it: the event clock follows and the window closes.
	// After each step, wait until the pipeline has woken for it.
	for i := 0; i < 14 && len(h.pub.get()) == 0; i++ {
		h.clock.Advance(time.Second)
		now := h.clock.Now()
		mqtttest.WaitFor(t, "the pipeline to wake for the tick", func() bool {
			st, _ := h.eng.Status("default/overheat")
			return !st.Heartbeat.Before(now)
		})
	}
	mqtttest.WaitFor(t, "alert from the idle window", func() bool { return len(h.pub.get()) == 1 })
}

func TestHotReplaceLeavesOtherPipelines(t *testing.T) {
	h := newHarness(t)
	h.apply(overheatYAML)
	h.apply(filterYAML)
	for s := int64(0); s < 15; s++ {
		h.publish("factory/d1/data", reading("d1", t0+s*1000, 35))
	}
	h.waitCursor("default/overheat")
	before, _ := h.eng.Status("default/overheat")
	// Replace the filter pipeline with a changed one.
	h.apply(strings.Replace(filterYAML, "temperature > 30", "temperature > 34", 1))
	after, _ := h.eng.Status("default/overheat")
	if after.Started != before.Started || after.Steps[1].StateSize != before.Steps[1].StateSize {
		t.Fatalf("overheat pipeline was disturbed by replacing another: before %+v after %+v", before, after)
	}
	hot, _ := h.eng.Status("default/hot")
	if !strings.Contains(*hot.Plan.Spec.Steps[0].Filter, "34") {
		t.Fatalf("hot pipeline was not replaced: %s", *hot.Plan.Spec.Steps[0].Filter)
	}
	// Applying the same plan again is a no-op.
	h.apply(strings.Replace(filterYAML, "temperature > 30", "temperature > 34", 1))
	again, _ := h.eng.Status("default/hot")
	if again.Started != hot.Started {
		t.Fatal("re-applying an identical plan restarted the pipeline")
	}
}

func TestToUnixNano(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want int64
	}{
		{float64(1_700_000_000), 1_700_000_000 * 1e9},
		{float64(1_700_000_000_123), 1_700_000_000_123 * 1e6},
		{int64(1_700_000_000_123_456), 1_700_000_000_123_456 * 1e3},
		{int64(1_700_000_000_123_456_789), 1_700_000_000_123_456_789},
		{"2023-11-14T22:13:20Z", 1_700_000_000 * 1e9},
		{"2023-11-14T22:13:20.5+00:00", 1_700_000_000_500_000_000},
		{"1700000000", 1_700_000_000 * 1e9},
	} {
		got, err := pipeline.EventTimeNanos(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("pipeline.EventTimeNanos(%v) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{nil, "yesterday", true} {
		if _, err := pipeline.EventTimeNanos(bad); err == nil {
			t.Errorf("pipeline.EventTimeNanos(%v) gave no error", bad)
		}
	}
}

func TestLateEventsGoToLateSink(t *testing.T) {
	h := newHarness(t)
	h.apply(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: late}
spec:
  source: {mqtt: {topic: "in"}}
  eventTime: ts
  key: device
  steps:
    - window: {tumbling: 10s, allowedLateness: 1s}
    - aggregate: {n: "count()"}
  sinks: [{mqtt: {topic: "out/{{key}}"}}]
  late: [{mqtt: {topic: "late/{{device}}"}}]
`)
	h.publish("in",
		reading("a", t0+1000, 1),  // window [0,10)
		reading("a", t0+12000, 1), // watermark 11 s: closes [0,10)
		reading("a", t0+9500, 1),  // late: its window closed
		reading("a", t0+10500, 1), // within lateness for [10,20)
	)
	mqtttest.WaitFor(t, "window and late outputs", func() bool { return len(h.pub.get()) == 2 })
	st := h.waitCursor("default/late")
	got := h.pub.get()
	want := []string{
		fmt.Sprintf(`out/a {"key":"a","n":1,"window_end":%d,"window_start":%d}`, t0+10000, t0),
		`late/a {"device":"a","ts":1700000009500,"temperature":1}`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if st.Late != 1 {
		t.Errorf("late counter = %d, want 1", st.Late)
	}
}

func TestStreamSourceReadsInternalTopic(t *testing.T) {
	h := newHarness(t)
	h.apply(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: twins}
spec:
  source: {stream: {name: twin}}
  key: device
  steps: [{filter: "property == 'limit'"}]
  sinks: [{mqtt: {topic: "twin/{{device}}"}}]
`)
	h.publish(StreamTopic("twin"), `{"device":"default/t1","property":"limit","actual":30}`, `{"device":"default/t1","property":"x","actual":1}`)
	h.publish("factory/t1/data", `{"device":"default/t1","property":"limit"}`)
	mqtttest.WaitFor(t, "stream output", func() bool { return len(h.pub.get()) == 1 })
	h.waitCursor("default/twins")
	if got := h.pub.get(); got[0] != `twin/default/t1 {"device":"default/t1","property":"limit","actual":30}` {
		t.Fatalf("got %q", got)
	}
}

func TestReadsFollowsPipelines(t *testing.T) {
	h := newHarness(t)
	if h.eng.Reads("factory/a/data") {
		t.Fatal("no pipelines, yet Reads is true")
	}
	h.apply(filterYAML)
	if !h.eng.Reads("factory/a/data") || h.eng.Reads("hot/a") {
		t.Fatal("Reads does not match the pipeline's source filter factory/+/data")
	}
	if err := h.eng.Remove(context.Background(), "default/hot"); err != nil {
		t.Fatal(err)
	}
	if h.eng.Reads("factory/a/data") {
		t.Fatal("Reads still true after the pipeline was removed")
	}
}

// A timestamp far in the future would close every window at once and make
// all later events late; it is counted and replaced by the arrival time.
func TestFutureEventTimeIsRejected(t *testing.T) {
	h := newHarness(t) // processing clock: 2023-11-14T22:13:20Z = t0
	h.apply(overheatYAML)
	h.publish("factory/d1/data",
		reading("d1", t0+2*3600*1000, 35), // two hours ahead: rejected
		reading("d1", t0+1000, 35))
	st := h.waitCursor("default/overheat")
	if st.Source.Errors != 1 || !strings.Contains(st.Source.LastError, "ahead of this runner's clock") {
		t.Fatalf("source errors %d, last %q; want the future timestamp reported", st.Source.Errors, st.Source.LastError)
	}
	if st.Late != 0 {
		t.Fatalf("%d late events: the future timestamp moved the watermark", st.Late)
	}
}

// TestMalformedPlanIsAnError: a plan whose nodes point past its spec (built
// by hand, or decoded from JSON) is refused with an error, not a panic.
func TestMalformedPlanIsAnError(t *testing.T) {
	h := newHarness(t)
	plans, err := pipeline.Load("test.yaml", []byte(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: m}
spec:
  source: {mqtt: {topic: "in"}}
  steps: [{filter: "x > 1"}]
  sinks: [{mqtt: {topic: out}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []pipeline.NodeRole{pipeline.RoleStep, pipeline.RoleSink} {
		p := *plans[0]
		p.Nodes = slices.Clone(p.Nodes)
		for i := range p.Nodes {
			if p.Nodes[i].Role == role {
				p.Nodes[i].Index = 7
			}
		}
		err := h.eng.Apply(context.Background(), &p)
		if err == nil || !strings.Contains(err.Error(), "index 7 is not in the plan's spec") {
			t.Errorf("%s index 7: Apply = %v, want the malformed-plan error", role, err)
		}
	}
}
