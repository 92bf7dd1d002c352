package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

func appendN(t *testing.T, log wal.Log, topic string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := log.Append(context.Background(), &wal.Record{Topic: topic, Payload: []byte(fmt.Sprintf(`{"i":%d,"x":"y"}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharedSourceDecodesOnceForAll: members take the same decoded
// records, with the union of their fields; a member needing fields added
// later is sent back to the log for records decoded before it joined.
func TestSharedSourceDecodesOnceForAll(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	appendN(t, log, "other", 0, 2) // before the source: never in its ring
	s := newSharedSource(sourceKey{filter: "a/#", format: "json"}, log, 8)
	defer s.close()
	m1, m2 := &run{}, &run{}
	g1 := s.join(m1, memberFields{names: []string{"i"}}, make(chan struct{}, 1), nil)
	appendN(t, log, "a/b", 0, 3)
	appendN(t, log, "other", 0, 1)
	buf := make([]sharedRec, 16)
	mqtttest.WaitFor(t, "four records in the ring", func() bool {
		n, ok := s.take(3, g1, buf)
		return ok && n == 4
	})
	n, _ := s.take(3, g1, buf)
	for i, sr := range buf[:n] {
		if sr.offset != uint64(3+i) {
			t.Fatalf("record %d has offset %d", i, sr.offset)
		}
		if i < 3 {
			if !sr.match || len(sr.events) != 1 || sr.events[0].Fields["i"] != float64(i) || len(sr.events[0].Fields) != 1 {
				t.Fatalf("record %d: %+v", i, sr)
			}
		} else if sr.match || sr.events != nil {
			t.Fatalf("a record of another topic was decoded: %+v", sr)
		}
	}
	if _, ok := s.take(1, g1, buf); ok {
		t.Fatal("offsets before the ring must be read from the log")
	}
	// A second member reads x as well: older records lack it.
	g2 := s.join(m2, memberFields{names: []string{"x"}}, make(chan struct{}, 1), nil)
	if _, ok := s.take(3, g2, buf); ok {
		t.Fatal("records decoded without x served to a member that reads x")
	}
	appendN(t, log, "a/c", 10, 1)
	mqtttest.WaitFor(t, "the new record", func() bool { n, ok := s.take(7, g2, buf); return ok && n == 1 })
	if f := buf[0].events[0].Fields; f["x"] != "y" || f["i"] != float64(10) {
		t.Fatalf("fields %v, want the union of both members'", f)
	}
	// The ring holds 8: older records fall out.
	appendN(t, log, "a/b", 20, 10)
	mqtttest.WaitFor(t, "the ring moves on", func() bool { _, ok := s.take(7, g2, buf); return !ok })
	if n, ok := s.take(log.Last()-7, g2, buf); !ok || n != 8 {
		t.Fatalf("the last 8 records: n=%d ok=%v", n, ok)
	}
	if s.leave(m1) != true || s.leave(m2) != false {
		t.Fatal("leave miscounts members")
	}
}

// TestSharedSourceWakes: a member waiting on its wake channel after take
// is woken when a record arrives, even if it arrives right after take.
func TestSharedSourceWakes(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	s := newSharedSource(sourceKey{filter: "a"}, log, 64)
	defer s.close()
	wake := make(chan struct{}, 1)
	g := s.join(&run{}, memberFields{all: true}, wake, nil)
	from := log.Last() + 1
	for i := range 20 {
		n, ok := s.take(from, g, make([]sharedRec, 1))
		if !ok || n != 0 {
			t.Fatalf("round %d: n=%d ok=%v", i, n, ok)
		}
		appendN(t, log, "a", i, 1)
		select {
		case <-wake:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no wake", i)
		}
		from++
	}
}

// TestSharedSourceScreens: a member with a screen is woken at once for a
// record its screen passes (or cannot judge), and for records it drops
// only after maxDefer, or once its backlog reaches a quarter of the ring;
// closing the source wakes it too.
func TestSharedSourceScreens(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	s := newSharedSource(sourceKey{filter: "a", format: "json"}, log, 64)
	defer s.close()
	wake := make(chan struct{}, 1)
	screen := func(f map[string]any) bool {
		i, ok := f["i"].(float64)
		return !ok || i >= 1000
	}
	s.join(&run{}, memberFields{names: []string{"i"}}, wake, screen)
	woken := func(within time.Duration) bool {
		select {
		case <-wake:
			return true
		case <-time.After(within):
			return false
		}
	}
	if !woken(5 * time.Second) {
		t.Fatal("a member that joins is woken at once")
	}
	// Dropped records: no wake before maxDefer, one after.
	start := time.Now()
	appendN(t, log, "a", 0, 3)
	if woken(maxDefer / 2) {
		t.Fatal("woken for records the screen drops, before maxDefer")
	}
	if !woken(5 * time.Second) {
		t.Fatal("not woken for dropped records after maxDefer")
	}
	if d := time.Since(start); d < maxDefer {
		t.Fatalf("woken after %v, before maxDefer", d)
	}
	// A record the screen passes wakes at once, as does one it cannot
	// judge (a decoding error) and one of another topic does not.
	for _, p := range []string{`{"i":1000}`, `{broken`} {
		if err := log.Append(context.Background(), &wal.Record{Topic: "a", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
		if !woken(maxDefer / 2) {
			t.Fatalf("not woken at once for %s", p)
		}
	}
	appendN(t, log, "other", 0, 1)
	if woken(maxDefer / 2) {
		t.Fatal("woken at once for a record of another topic")
	}
	woken(5 * time.Second)
	// A backlog of a quarter of the ring wakes at once.
	appendN(t, log, "a", 0, 16)
	if !woken(maxDefer / 2) {
		t.Fatal("not woken for a backlog of a quarter of the ring")
	}
	s.close()
	if !woken(5 * time.Second) {
		t.Fatal("closing the source does not wake its members")
	}
}

// sharedSpecs are pipelines of every kind on one topic, each publishing
// under its own prefix.
var sharedSpecs = map[string]string{
	"filter": `
  steps: [{filter: "temperature > 30"}]
  sinks: [{mqtt: {topic: "filter/{{device}}"}}]`,
	"filter2": `
  steps: [{filter: "humidity < 20"}]
  sinks: [{mqtt: {topic: "filter2/x"}}]`,
	"mapsel": `
  key: device
  steps:
    - map: {temp_f: "temperature * 9 / 5 + 32", device: "'renamed-' + device"}
    - select: [device, temp_f]
  sinks: [{mqtt: {topic: "mapsel/{{device}}"}}]`,
	"window": `
  key: device
  eventTime: ts
  steps:
    - window: {tumbling: 10s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
  sinks: [{mqtt: {topic: "window/{{key}}"}}]`,
	"all": `
  steps: [{map: {seen: "true"}}]
  sinks: [{mqtt: {topic: "all/x"}}]`,
}

func sharedPayloads(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf(`{"device":"d%d","temperature":%d,"humidity":%d,"ts":%d,"extra":{"a":[%d]}}`,
			i%4, 20+i%17, i%40, 1_700_000_000_000+int64(i)*700, i))
	}
	return append(out, `{broken`, `[{"device":"arr","temperature":99,"humidity":1,"ts":1700000100000}]`)
}

// runPipelines runs the named pipelines in one engine over payloads (half
// appended before the pipelines start, half after) and returns what each
// published, by name.
func runPipelines(t *testing.T, names []string, payloads []string) (map[string][]string, bool) {
	t.Helper()
	log := wal.NewMemory(wal.MemoryOptions{})
	pub := &published{}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(pub, s.MQTT) })
	eng, err := New(Options{Log: log, Registry: reg, Clock: clock.NewFake(time.Unix(1_700_000_000, 0)),
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	half := len(payloads) / 2
	add := func(ps []string) {
		for _, p := range ps {
			if err := log.Append(context.Background(), &wal.Record{Topic: "in/t", Payload: []byte(p), Time: 1_700_000_000_000_000_000}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(payloads[:half])
	var ids []string
	for _, name := range names {
		plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: "+name+"}\nspec:\n  source: {mqtt: {topic: \"in/#\"}}"+sharedSpecs[name]+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Apply(context.Background(), plans[0]); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, plans[0].ID())
	}
	// Wait until the shared source exists and has caught up, so the second
	// half goes through it.
	shared := len(names) > 1
	if shared {
		mqtttest.WaitFor(t, "the shared source", func() bool {
			eng.mu.Lock()
			defer eng.mu.Unlock()
			for _, sh := range eng.shares {
				return sh.src.Load() != nil
			}
			return false
		})
	}
	for _, id := range ids {
		mqtttest.WaitFor(t, id+" reads the first half", func() bool {
			st, ok := eng.Status(id)
			return ok && st.Cursor > log.Last()
		})
	}
	add(payloads[half:])
	for _, id := range ids {
		mqtttest.WaitFor(t, id+" reads the log", func() bool {
			st, ok := eng.Status(id)
			return ok && st.Cursor > log.Last()
		})
	}
	var usedRing bool
	eng.mu.Lock()
	for _, sh := range eng.shares {
		if src := sh.src.Load(); src != nil {
			src.mu.Lock()
			usedRing = src.n > 0
			src.mu.Unlock()
		}
	}
	eng.mu.Unlock()
	eng.Close()
	out := map[string][]string{}
	for _, m := range pub.get() {
		name := m[:strings.IndexByte(m, '/')]
		out[name] = append(out[name], m)
	}
	return out, usedRing
}

// TestSharedSourceChangesNothing: pipelines of every kind on one topic
// give the same output together (one shared decode) as each alone, with
// some records read before the shared source existed and some through it.
func TestSharedSourceChangesNothing(t *testing.T) {
	payloads := sharedPayloads(0, 400)
	var names []string
	for n := range sharedSpecs {
		names = append(names, n)
	}
	together, usedRing := runPipelines(t, names, payloads)
	if !usedRing {
		t.Fatal("the shared source decoded nothing: the test proves nothing")
	}
	for _, name := range names {
		alone, _ := runPipelines(t, []string{name}, payloads)
		if len(alone[name]) == 0 {
			t.Fatalf("%s: no output alone", name)
		}
		if !slices.Equal(alone[name], together[name]) {
			t.Errorf("%s: %d outputs together, %d alone\nfirst together: %q\nfirst alone:    %q", name,
				len(together[name]), len(alone[name]), first(together[name]), first(alone[name]))
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// gateSink blocks every write until open is closed.
type gateSink struct {
	open chan struct{}
	n    *atomic.Int64
}

func (g gateSink) Write(ctx context.Context, ev *pipeline.Event) error {
	select {
	case <-g.open:
		g.n.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (g gateSink) Flush(context.Context) error { return nil }
func (g gateSink) Close() error                { return nil }

// TestSharedSourceSlowMemberLagsAlone: a pipeline whose sink blocks does
// not hold up another on the same source; it falls out of the ring, and
// once unblocked it reads the log itself and loses nothing.
func TestSharedSourceSlowMemberLagsAlone(t *testing.T) {
	log := wal.NewMemory(wal.MemoryOptions{})
	pub := &published{}
	gate := gateSink{open: make(chan struct{}), n: &atomic.Int64{}}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(pub, s.MQTT) })
	reg.RegisterSink("file", func(b *Build, s *pipeline.Sink) (Sink, error) { return gate, nil })
	eng, err := New(Options{Log: log, Registry: reg, Logger: slog.New(slog.DiscardHandler), SharedRing: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, y := range []string{
		"metadata: {name: slow}\nspec:\n  source: {mqtt: {topic: in}}\n  sinks: [{file: {path: /nowhere}}]\n",
		"metadata: {name: fast}\nspec:\n  source: {mqtt: {topic: in}}\n  steps: [{filter: \"i >= 0\"}]\n  sinks: [{mqtt: {topic: out}}]\n",
	} {
		plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\n"+y))
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Apply(context.Background(), plans[0]); err != nil {
			t.Fatal(err)
		}
	}
	const n = 1000
	appendN(t, log, "in", 0, n)
	mqtttest.WaitFor(t, "the fast pipeline's output while the slow one is blocked", func() bool { return len(pub.get()) == n })
	if got := gate.n.Load(); got != 0 {
		t.Fatalf("the slow sink wrote %d while closed", got)
	}
	close(gate.open)
	mqtttest.WaitFor(t, "the slow pipeline catches up from the log", func() bool { return gate.n.Load() == n })
}
