package throttle

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

// base is aligned to a minute, so intervals of 1m start at base + k*60s.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

type in struct {
	at   int64 // milliseconds after base
	key  string
	pass bool
}

func mustNew(t testing.TB, max int, per, lateness time.Duration) *Operator {
	t.Helper()
	o, err := New(Config{Spec: pipeline.ThrottleSpec{Max: max, Per: pipeline.D(per)}, Lateness: lateness})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func process(t *testing.T, o *Operator, ins []in) {
	t.Helper()
	for i, x := range ins {
		key := x.key
		if key == "" {
			key = "a"
		}
		passed := false
		e := &pipeline.Event{Time: base + x.at*int64(time.Millisecond), Key: key}
		if err := o.Process(e, operators.EmitFunc(func(got *pipeline.Event) { passed = got == e })); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if passed != x.pass {
			t.Errorf("event %d (t=%dms key=%s): passed = %v, want %v", i, x.at, key, passed, x.pass)
		}
	}
}

func TestThrottle(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		per      time.Duration
		lateness time.Duration
		ins      []in
		want     Stats
	}{
		{"max per interval", 2, time.Minute, 0, []in{
			{at: 0, pass: true},
			{at: 1000, pass: true},
			{at: 2000},
			{at: 59999},
		}, Stats{Passed: 2, Dropped: 2}},
		{"interval boundary is aligned to the epoch and half-open", 1, time.Minute, 0, []in{
			{at: 30000, pass: true},
			{at: 59999},
			{at: 60000, pass: true}, // new interval, not 60s after the first event
			{at: 89999},
			{at: 120000, pass: true},
		}, Stats{Passed: 3, Dropped: 2}},
		{"keys are independent", 1, time.Minute, 0, []in{
			{at: 0, key: "a", pass: true},
			{at: 1, key: "b", pass: true},
			{at: 2, key: "a"},
			{at: 3, key: "c", pass: true},
			{at: 4, key: "b"},
		}, Stats{Passed: 3, Dropped: 2}},
		{"skipped intervals reset the count", 1, time.Second, 0, []in{
			{at: 0, pass: true},
			{at: 10500, pass: true},
			{at: 10900},
		}, Stats{Passed: 2, Dropped: 1}},
		{"earlier interval of the same key is late", 5, time.Minute, 0, []in{
			{at: 61000, pass: true},
			{at: 59000},             // previous interval: dropped as late
			{at: 62000, pass: true}, // current interval still counts
		}, Stats{Passed: 2, Dropped: 1, Late: 1}},
		{"out of order inside the interval is counted", 2, time.Minute, 0, []in{
			{at: 30000, pass: true},
			{at: 10000, pass: true},
			{at: 20000},
		}, Stats{Passed: 2, Dropped: 1}},
		{"other keys' late events within lateness are counted", 1, time.Minute, time.Minute, []in{
			{at: 61000, key: "a", pass: true},
			{at: 59000, key: "b", pass: true}, // 2s behind the watermark
			{at: 59500, key: "b"},
		}, Stats{Passed: 2, Dropped: 1}},
		{"events older than the lateness are dropped", 1, time.Minute, time.Minute, []in{
			{at: 180000, key: "a", pass: true},
			{at: 119999, key: "b"}, // interval [60s,120s) ended 60s before the watermark
			{at: 120000, key: "b", pass: true},
		}, Stats{Passed: 2, Dropped: 1, Late: 1}},
		{"lateness is at least one interval", 1, time.Hour, time.Second, []in{
			{at: 3600_000, key: "a", pass: true},
			{at: 1000, key: "b", pass: true},
		}, Stats{Passed: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := mustNew(t, tc.max, tc.per, tc.lateness)
			process(t, o, tc.ins)
			if got := o.Stats(); got != tc.want {
				t.Errorf("Stats = %+v, want %+v", got, tc.want)
			}
			if o.Dropped() != tc.want.Dropped {
				t.Errorf("Dropped = %d, want %d", o.Dropped(), tc.want.Dropped)
			}
		})
	}
}

func TestNegativeTimesAlign(t *testing.T) {
	o := mustNew(t, 1, time.Minute, 0)
	pass := 0
	out := operators.EmitFunc(func(*pipeline.Event) { pass++ })
	// -30s and -1s are both in [-60s, 0); 0 starts a new interval.
	for _, at := range []int64{-30 * sec, -sec, 0} {
		if err := o.Process(&pipeline.Event{Time: at, Key: "k"}, out); err != nil {
			t.Fatal(err)
		}
	}
	if pass != 2 {
		t.Errorf("passed %d, want 2", pass)
	}
}

func TestKeyExpiry(t *testing.T) {
	o := mustNew(t, 1, time.Minute, time.Minute)
	out := operators.EmitFunc(func(*pipeline.Event) {})
	for i := 0; i < 100; i++ {
		if err := o.Process(&pipeline.Event{Time: base, Key: fmt.Sprint("k", i)}, out); err != nil {
			t.Fatal(err)
		}
	}
	if o.StateSize() != 100 {
		t.Fatalf("StateSize = %d, want 100", o.StateSize())
	}
	// Interval [0,60s) ends at 60s; it is forgotten once the watermark is
	// past 60s + lateness and a sweep runs.
	o.Advance(base+119*sec, out)
	if o.StateSize() != 100 {
		t.Errorf("keys forgotten too early: StateSize = %d", o.StateSize())
	}
	o.Advance(base+3*60*sec, out)
	if o.StateSize() != 0 {
		t.Errorf("after the watermark passed the lateness, StateSize = %d, want 0", o.StateSize())
	}
	if o.Stats().Expired != 100 {
		t.Errorf("Expired = %d, want 100", o.Stats().Expired)
	}
	// A forgotten key's old interval cannot be refilled.
	passed := false
	if err := o.Process(&pipeline.Event{Time: base + sec, Key: "k1"}, operators.EmitFunc(func(*pipeline.Event) { passed = true })); err != nil {
		t.Fatal(err)
	}
	if passed {
		t.Error("an event for a forgotten interval passed")
	}
}

func TestMemoryBoundedUnderChurn(t *testing.T) {
	o := mustNew(t, 1, time.Second, 10*time.Second)
	out := operators.EmitFunc(func(*pipeline.Event) {})
	for i := int64(0); i < 20000; i++ {
		// A new key every 10ms of event time.
		if err := o.Process(&pipeline.Event{Time: base + i*10*int64(time.Millisecond), Key: fmt.Sprint("k", i)}, out); err != nil {
			t.Fatal(err)
		}
		// Keys live at most ~2 latenesses + 1 interval = 21s = 2100 keys.
		if o.StateSize() > 2200 {
			t.Fatalf("at event %d: %d keys kept", i, o.StateSize())
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantSub string
	}{
		{Config{}, "throttle.max"},
		{Config{Spec: pipeline.ThrottleSpec{Max: 1}}, "throttle.per"},
		{Config{Spec: pipeline.ThrottleSpec{Max: 1, Per: pipeline.D(time.Second)}, Lateness: -1}, "negative"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantSub) {
			t.Errorf("New(%+v) = %v, want containing %q", tc.cfg, err, tc.wantSub)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	mk := func() *Operator { return mustNew(t, 3, 10*time.Second, 20*time.Second) }
	var evs []*pipeline.Event
	for i := int64(0); i < 600; i++ {
		jitter := (i * 37 % 11) * int64(time.Second) / 4 // some out-of-order
		evs = append(evs, &pipeline.Event{Time: base + i*sec/3 - jitter, Key: fmt.Sprint("k", i%4)})
	}
	operatortest.CheckRestore(t, mk, len(evs), 10, []int{0, 1, 99, 300, 599}, func(o *Operator, from, to int) []string {
		var out []string
		for _, e := range evs[from:to] {
			if err := o.Process(e, operators.EmitFunc(func(e *pipeline.Event) { out = append(out, fmt.Sprintf("%s@%d", e.Key, e.Time)) })); err != nil {
				t.Fatal(err)
			}
		}
		return out
	})
}

func TestRestoreErrors(t *testing.T) {
	o := mustNew(t, 1, time.Second, 0)
	out := operators.EmitFunc(func(*pipeline.Event) {})
	for _, k := range []string{"a", "b"} {
		_ = o.Process(&pipeline.Event{Time: base, Key: k}, out)
	}
	good, _ := o.Snapshot()
	for name, data := range map[string][]byte{
		"version":  append([]byte{7}, good[1:]...),
		"short":    good[:2],
		"cut":      good[:len(good)-1],
		"trailing": append(append([]byte{}, good...), 1),
	} {
		if err := o.Restore(data); err == nil {
			t.Errorf("%s: Restore accepted a corrupt snapshot", name)
		}
		if o.StateSize() != 2 {
			t.Errorf("%s: failed Restore changed the state", name)
		}
	}
	if err := o.Restore(nil); err != nil || o.StateSize() != 0 {
		t.Errorf("Restore(nil) = %v, size %d", err, o.StateSize())
	}
}

func FuzzRestore(f *testing.F) {
	o, _ := New(Config{Spec: pipeline.ThrottleSpec{Max: 1, Per: pipeline.D(time.Second)}})
	for _, k := range []string{"a", "b"} {
		_ = o.Process(&pipeline.Event{Time: base, Key: k}, operators.EmitFunc(func(*pipeline.Event) {}))
	}
	good, _ := o.Snapshot()
	f.Add(good)
	f.Add([]byte{1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _ := New(Config{Spec: pipeline.ThrottleSpec{Max: 1, Per: pipeline.D(time.Second)}})
		if err := o.Restore(data); err != nil {
			return
		}
		snap, _ := o.Snapshot()
		o2, _ := New(Config{Spec: pipeline.ThrottleSpec{Max: 1, Per: pipeline.D(time.Second)}})
		if err := o2.Restore(snap); err != nil {
			t.Fatalf("re-restoring a snapshot failed: %v", err)
		}
		_ = o.Process(&pipeline.Event{Time: base, Key: "a"}, operators.EmitFunc(func(*pipeline.Event) {}))
	})
}

func BenchmarkThrottle(b *testing.B) {
	o := mustNew(b, 10, time.Second, 0)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("dev-%04d", i)
	}
	ev := &pipeline.Event{}
	out := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev.Key = keys[i%len(keys)]
		ev.Time = base + int64(i)*int64(time.Microsecond)*50
		if err := o.Process(ev, out); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
