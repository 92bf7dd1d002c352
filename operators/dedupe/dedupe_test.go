package dedupe

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/operatortest"
	"github.com/eddy-edge/eddy/pipeline"
)

const sec = int64(time.Second)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

type in struct {
	at     int64 // seconds after base
	key    string
	fields map[string]any
	pass   bool
}

func mustNew(t testing.TB, key string, within time.Duration) *Operator {
	t.Helper()
	o, err := New(Config{Spec: pipeline.DedupeSpec{Key: key, Within: pipeline.D(within)}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func run(t *testing.T, o *Operator, ins []in) {
	t.Helper()
	for i, x := range ins {
		key := x.key
		if key == "" {
			key = "dev-1"
		}
		passed := false
		e := &pipeline.Event{Time: base + x.at*sec, Key: key, Fields: x.fields}
		if err := o.Process(e, operators.EmitFunc(func(got *pipeline.Event) {
			if got != e {
				t.Errorf("event %d: emitted a different event", i)
			}
			passed = true
		})); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if passed != x.pass {
			t.Errorf("event %d (t=%ds key=%s %v): passed = %v, want %v", i, x.at, key, x.fields, passed, x.pass)
		}
	}
}

func f(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestDedupe(t *testing.T) {
	id := func(v any) map[string]any { return f("id", v, "t", 20.0) }
	tests := []struct {
		name   string
		key    string
		within time.Duration
		ins    []in
	}{
		{"inside the horizon is dropped", "id", time.Minute, []in{
			{at: 0, fields: id("a"), pass: true},
			{at: 1, fields: id("a")},
			{at: 59, fields: id("a")},
			{at: 10, fields: id("b"), pass: true},
		}},
		{"exactly at the horizon passes", "id", time.Minute, []in{
			{at: 0, fields: id("a"), pass: true},
			{at: 60, fields: id("a"), pass: true},
			{at: 119, fields: id("a")},
			{at: 120, fields: id("a"), pass: true},
		}},
		{"outside the horizon passes", "id", time.Minute, []in{
			{at: 0, fields: id("a"), pass: true},
			{at: 61, fields: id("a"), pass: true},
			{at: 500, fields: id("a"), pass: true},
		}},
		{"dropped duplicates do not extend the horizon", "id", time.Minute, []in{
			{at: 0, fields: id("a"), pass: true},
			{at: 30, fields: id("a")},
			{at: 50, fields: id("a")},
			{at: 60, fields: id("a"), pass: true},
			{at: 90, fields: id("a")},
		}},
		{"out of order within the horizon is dropped", "id", time.Minute, []in{
			{at: 100, fields: id("a"), pass: true},
			{at: 41, fields: id("a")},
			{at: 40, fields: id("a"), pass: true}, // exactly W before
			{at: 150, fields: id("a")},            // 100 is still remembered
			{at: 160, fields: id("a"), pass: true},
		}},
		{"late beyond the watermark horizon passes (forgotten)", "id", time.Minute, []in{
			{at: 0, fields: id("a"), pass: true},
			{at: 100, fields: id("z"), pass: true}, // watermark 100 forgets a@0
			{at: 30, fields: id("a"), pass: true},  // |30-0| < 60, but a@0 is gone
			{at: 31, fields: id("a"), pass: true},  // a@30 was behind the horizon: not remembered
		}},
		{"scoped to the partition key", "id", time.Minute, []in{
			{at: 0, key: "dev-1", fields: id("a"), pass: true},
			{at: 1, key: "dev-2", fields: id("a"), pass: true},
			{at: 2, key: "dev-1", fields: id("a")},
		}},
		{"numbers compare by value", "id", time.Minute, []in{
			{at: 0, fields: id(1), pass: true},
			{at: 1, fields: id(1.0)},
			{at: 2, fields: id(int64(1))},
			{at: 3, fields: id(uint8(1))},
			{at: 4, fields: id("1"), pass: true},
			{at: 5, fields: id(1.5), pass: true},
			{at: 6, fields: id(true), pass: true},
		}},
		{"expression keys", "device + ':' + string(seq)", time.Minute, []in{
			{at: 0, fields: f("device", "x", "seq", 1), pass: true},
			{at: 1, fields: f("device", "x", "seq", 2), pass: true},
			{at: 2, fields: f("device", "x", "seq", 1, "extra", true)},
		}},
		{"whole event by default", "", time.Minute, []in{
			{at: 0, fields: f("t", 20.0, "h", 50), pass: true},
			{at: 1, fields: f("h", 50.0, "t", 20)},
			{at: 2, fields: f("t", 20.0, "h", 51), pass: true},
			{at: 3, fields: f("t", 20.0), pass: true},
			{at: 4, fields: f("t", 20.0, "h", 50, "x", nil), pass: true},
			{at: 5, fields: f("nested", map[string]any{"a": 1, "b": []any{1, "x"}}), pass: true},
			{at: 6, fields: f("nested", map[string]any{"b": []any{1.0, "x"}, "a": 1.0})},
			{at: 7, fields: f("nested", map[string]any{"b": []any{"x", 1.0}, "a": 1.0}), pass: true},
		}},
		{"string and field name boundaries do not collide", "", time.Minute, []in{
			{at: 0, fields: f("ab", "c"), pass: true},
			{at: 1, fields: f("a", "bc"), pass: true},
			{at: 2, fields: f("a", "b", "c", ""), pass: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run(t, mustNew(t, tc.key, tc.within), tc.ins)
		})
	}
}

func TestExpiryBoundsMemory(t *testing.T) {
	o := mustNew(t, "id", 10*time.Second)
	out := operators.EmitFunc(func(*pipeline.Event) {})
	for i := int64(0); i < 10000; i++ {
		e := &pipeline.Event{Time: base + i*sec, Key: "k", Fields: f("id", i)}
		if err := o.Process(e, out); err != nil {
			t.Fatal(err)
		}
		if o.StateSize() > 10 {
			t.Fatalf("at event %d: %d keys remembered, want <= 10 (one per second of horizon)", i, o.StateSize())
		}
	}
	if len(o.queue)-o.head > 20 {
		t.Errorf("queue holds %d entries for %d keys", len(o.queue)-o.head, o.StateSize())
	}
	o.Advance(base+10008*sec, out)
	if o.StateSize() != 1 {
		t.Errorf("after Advance, %d keys remembered, want 1", o.StateSize())
	}
	o.Advance(base+10009*sec, out)
	if o.StateSize() != 0 {
		t.Errorf("after Advance past every horizon, %d keys remembered", o.StateSize())
	}
	if s := o.Stats(); s.Expired != 10000 || s.Passed != 10000 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestKeyErrors(t *testing.T) {
	o := mustNew(t, "id", time.Minute)
	out := operators.EmitFunc(func(*pipeline.Event) { t.Error("event with a failing key passed") })
	err := o.Process(&pipeline.Event{Time: base, Key: "k", Fields: f("other", 1)}, out)
	if err == nil || !strings.Contains(err.Error(), "gave nil") {
		t.Fatalf("missing field: error = %v", err)
	}
	o2 := mustNew(t, "id + 1", time.Minute)
	err = o2.Process(&pipeline.Event{Time: base, Key: "k", Fields: f("id", "x")}, out)
	if err == nil || !strings.Contains(err.Error(), `dedupe.key "id + 1"`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("runtime error (want one line): %v", err)
	}
	if o.Stats().Errors != 1 || o.StateSize() != 0 {
		t.Errorf("stats %+v size %d", o.Stats(), o.StateSize())
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantSub string
	}{
		{Config{}, "dedupe.within: must be > 0"},
		{Config{Spec: pipeline.DedupeSpec{Key: "id +", Within: pipeline.D(time.Second)}}, `dedupe.key: "id +"`},
		{Config{Spec: pipeline.DedupeSpec{Key: "nope", Within: pipeline.D(time.Second)}, Schema: pipeline.Schema{"id": ""}}, "dedupe.key"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.wantSub) {
			t.Errorf("New(%+v) = %v, want containing %q", tc.cfg.Spec, err, tc.wantSub)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	mk := func() *Operator { return mustNew(t, "id", 30*time.Second) }
	var evs []*pipeline.Event
	for i := int64(0); i < 300; i++ {
		evs = append(evs, &pipeline.Event{Time: base + i*sec, Key: fmt.Sprint("k", i%3), Fields: f("id", (i*7)%11)})
	}
	operatortest.CheckRestore(t, mk, len(evs), 10, []int{0, 1, 17, 150, 299}, func(o *Operator, from, to int) []string {
		var out []string
		for _, e := range evs[from:to] {
			if err := o.Process(e, operators.EmitFunc(func(e *pipeline.Event) { out = append(out, fmt.Sprint(e.Time/sec)) })); err != nil {
				t.Fatal(err)
			}
		}
		return out
	})
}

func TestRestoreErrors(t *testing.T) {
	o := mustNew(t, "id", time.Minute)
	for i := int64(0); i < 3; i++ {
		_ = o.Process(&pipeline.Event{Time: base + i, Key: "k", Fields: f("id", i)}, operators.EmitFunc(func(*pipeline.Event) {}))
	}
	good, _ := o.Snapshot()
	bad := map[string][]byte{
		"version":  append([]byte{9}, good[1:]...),
		"short":    good[:1],
		"cut":      good[:len(good)-3],
		"trailing": append(append([]byte{}, good...), 0),
		"count":    append(append([]byte{}, good[:len(good)-3*(16+10)]...), 0xff, 0xff, 0xff),
	}
	for name, data := range bad {
		if err := o.Restore(data); err == nil {
			t.Errorf("%s: Restore accepted a corrupt snapshot", name)
		}
		if o.StateSize() != 3 {
			t.Errorf("%s: failed Restore changed the state", name)
		}
	}
	if err := o.Restore(nil); err != nil || o.StateSize() != 0 {
		t.Errorf("Restore(nil) = %v, size %d", err, o.StateSize())
	}
}

func FuzzRestore(f *testing.F) {
	o, _ := New(Config{Spec: pipeline.DedupeSpec{Key: "id", Within: pipeline.D(time.Minute)}})
	for i := int64(0); i < 3; i++ {
		_ = o.Process(&pipeline.Event{Time: base + i, Key: "k", Fields: map[string]any{"id": i}}, operators.EmitFunc(func(*pipeline.Event) {}))
	}
	good, _ := o.Snapshot()
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _ := New(Config{Spec: pipeline.DedupeSpec{Within: pipeline.D(time.Minute)}})
		if err := o.Restore(data); err != nil {
			return
		}
		snap, err := o.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		o2, _ := New(Config{Spec: pipeline.DedupeSpec{Within: pipeline.D(time.Minute)}})
		if err := o2.Restore(snap); err != nil {
			t.Fatalf("re-restoring a snapshot failed: %v", err)
		}
		_ = o.Process(&pipeline.Event{Time: base, Key: "k", Fields: map[string]any{"x": 1}}, operators.EmitFunc(func(*pipeline.Event) {}))
	})
}

func BenchmarkDedupeKey(b *testing.B) {
	o := mustNew(b, "msg_id", time.Minute)
	evs := make([]*pipeline.Event, 4096)
	for i := range evs {
		evs[i] = &pipeline.Event{Key: fmt.Sprint("dev-", i%100), Fields: map[string]any{"msg_id": float64(i % 2048), "t": 21.5}}
	}
	out := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)]
		e.Time = base + int64(i)*int64(time.Millisecond)
		if err := o.Process(e, out); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDedupeWholeEvent(b *testing.B) {
	o := mustNew(b, "", time.Minute)
	evs := make([]*pipeline.Event, 4096)
	for i := range evs {
		evs[i] = &pipeline.Event{Key: fmt.Sprint("dev-", i%100), Fields: map[string]any{
			"temperature": float64(i % 50), "humidity": 40.5, "status": "ok", "seq": float64(i % 1000)}}
	}
	out := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)]
		e.Time = base + int64(i)*int64(time.Millisecond)
		if err := o.Process(e, out); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
