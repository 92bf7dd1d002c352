package window

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/operators/operatortest"
	"github.com/eddy-edge/eddy/pipeline"
)

// recorder keeps a clone of every emitted event.
type recorder struct{ evs []*pipeline.Event }

func (r *recorder) Emit(ev *pipeline.Event) { r.evs = append(r.evs, ev.Clone()) }

// lines formats outputs as "key [start,end) t=time f=v ..." with fields sorted.
func (r *recorder) lines() []string {
	out := make([]string, 0, len(r.evs))
	for _, ev := range r.evs {
		out = append(out, format(ev))
	}
	return out
}

func format(ev *pipeline.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%v,%v) t=%d", ev.Key, ev.Fields[FieldWindowStart], ev.Fields[FieldWindowEnd], floorDiv(ev.Time, 1e6))
	names := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		if k != FieldKey && k != FieldWindowStart && k != FieldWindowEnd {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%v", k, ev.Fields[k])
	}
	return b.String()
}

// step is one input: an event (key != "") or an Advance to at (ms).
type step struct {
	key    string
	at     int64 // ms
	fields map[string]any
}

func e(key string, ms int64, v any) step {
	return step{key: key, at: ms, fields: map[string]any{"v": v}}
}
func adv(ms int64) step { return step{at: ms} }

func dur(d time.Duration) *pipeline.Duration { return pipeline.DurationPtr(d) }

func run(t *testing.T, o *Operator, steps []step) (*recorder, []string) {
	t.Helper()
	rec := &recorder{}
	for i, s := range steps {
		if s.key == "" {
			o.Advance(s.at*1e6, rec)
			continue
		}
		ev := &pipeline.Event{Key: s.key, Time: s.at * 1e6, Fields: s.fields, Offset: uint64(i + 1)}
		if err := o.Process(ev, rec); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return rec, rec.lines()
}

func TestWindows(t *testing.T) {
	n3 := 3
	aggs := map[string]string{"n": "count()", "avg": "avg(v)"}
	tests := []struct {
		name  string
		win   pipeline.WindowSpec
		steps []step
		want  []string
		late  []string // "key@ms"
	}{{
		name:  "tumbling in order",
		win:   pipeline.WindowSpec{Tumbling: dur(10 * time.Second)},
		steps: []step{e("a", 1000, 10), e("a", 9999, 20), e("a", 10000, 30), adv(20000)},
		want:  []string{"a [0,10000) t=9999 avg=15 n=2", "a [10000,20000) t=19999 avg=30 n=1"},
	}, {
		name: "tumbling out of order within lateness, then late",
		win:  pipeline.WindowSpec{Tumbling: dur(10 * time.Second), AllowedLateness: dur(2 * time.Second)},
		steps: []step{
			e("a", 1000, 10), e("a", 5000, 20), e("a", 11000, 30),
			e("a", 3000, 30),  // watermark 9s: still counted in [0,10)
			e("a", 12500, 50), // watermark 10.5s closes [0,10)
			e("a", 8000, 99),  // late: [0,10) closed
			adv(25000),
		},
		want: []string{"a [0,10000) t=9999 avg=20 n=3", "a [10000,20000) t=19999 avg=40 n=2"},
		late: []string{"a@8000"},
	}, {
		name: "idle keys closed by Advance, key order at equal end",
		win:  pipeline.WindowSpec{Tumbling: dur(10 * time.Second)},
		steps: []step{
			e("b", 1000, 1), e("c", 2000, 2), e("a", 3000, 3),
			adv(9999), // nothing closes yet
			adv(10000),
			e("a", 15000, 4), adv(60000),
		},
		want: []string{"a [0,10000) t=9999 avg=3 n=1", "b [0,10000) t=9999 avg=1 n=1",
			"c [0,10000) t=9999 avg=2 n=1", "a [10000,20000) t=19999 avg=4 n=1"},
	}, {
		name:  "tumbling empty windows emit nothing",
		win:   pipeline.WindowSpec{Tumbling: dur(time.Second)},
		steps: []step{e("a", 500, 1), e("a", 5500, 2), adv(7000)},
		want:  []string{"a [0,1000) t=999 avg=1 n=1", "a [5000,6000) t=5999 avg=2 n=1"},
	}, {
		name:  "sliding: each event in size/every windows",
		win:   pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(30 * time.Second), Every: pipeline.D(10 * time.Second)}},
		steps: []step{e("a", 15000, 10), e("a", 25000, 20), adv(100000)},
		want: []string{
			"a [-10000,20000) t=19999 avg=10 n=1",
			"a [0,30000) t=29999 avg=15 n=2",
			"a [10000,40000) t=39999 avg=15 n=2",
			"a [20000,50000) t=49999 avg=20 n=1",
		},
	}, {
		name: "sliding: partly closed event counted in its open windows",
		win: pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(20 * time.Second), Every: pipeline.D(10 * time.Second)},
			AllowedLateness: dur(0)},
		steps: []step{e("a", 25000, 1), e("a", 12000, 2) /* [0,20) closed; [10,30) open */, e("a", 5000, 3) /* late */, adv(100000)},
		want: []string{
			"a [10000,30000) t=29999 avg=1.5 n=2",
			"a [20000,40000) t=39999 avg=1 n=1",
		},
		late: []string{"a@5000"},
	}, {
		name:  "sliding: late when all windows closed",
		win:   pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(20 * time.Second), Every: pipeline.D(10 * time.Second)}},
		steps: []step{e("a", 45000, 1), e("a", 19999, 2), adv(100000)},
		want:  []string{"a [30000,50000) t=49999 avg=1 n=1", "a [40000,60000) t=59999 avg=1 n=1"},
		late:  []string{"a@19999"},
	}, {
		name:  "session: gap splits, exact gap is a new session",
		win:   pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(10 * time.Second)}},
		steps: []step{e("a", 0, 1), e("a", 5000, 2), e("a", 15000, 3), e("a", 40000, 4), adv(100000)},
		want:  []string{"a [0,15000) t=14999 avg=1.5 n=2", "a [15000,25000) t=24999 avg=3 n=1", "a [40000,50000) t=49999 avg=4 n=1"},
	}, {
		name:  "session: bridging event merges two sessions",
		win:   pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(10 * time.Second)}, AllowedLateness: dur(30 * time.Second)},
		steps: []step{e("a", 0, 1), e("a", 18000, 2), e("b", 1000, 7), e("a", 9000, 3), adv(100000)},
		want:  []string{"b [1000,11000) t=10999 avg=7 n=1", "a [0,28000) t=27999 avg=2 n=3"},
	}, {
		name:  "session: extended session closes at its new end",
		win:   pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(10 * time.Second)}},
		steps: []step{e("a", 0, 1), e("b", 0, 1), e("a", 8000, 3), adv(10000), adv(17999), adv(18000)},
		want:  []string{"b [0,10000) t=9999 avg=1 n=1", "a [0,18000) t=17999 avg=2 n=2"},
	}, {
		name:  "session: late event",
		win:   pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(10 * time.Second)}},
		steps: []step{e("a", 0, 1), e("a", 30000, 2), e("a", 5000, 9), e("a", 25000, 3), adv(100000)},
		want:  []string{"a [0,10000) t=9999 avg=1 n=1", "a [25000,40000) t=39999 avg=2.5 n=2"},
		late:  []string{"a@5000"},
	}, {
		name: "count windows per key",
		win:  pipeline.WindowSpec{Count: &n3},
		steps: []step{e("a", 1000, 1), e("b", 1500, 5), e("a", 3000, 2), e("a", 2000, 3),
			e("a", 4000, 4), e("b", 5000, 5), e("b", 6000, 8), adv(100000)},
		want: []string{"a [1000,3000) t=3000 avg=2 n=3", "b [1500,6000) t=6000 avg=6 n=3"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var late []string
			o, err := New(Config{Window: tc.win, Aggregates: aggs, Late: func(ev *pipeline.Event) {
				late = append(late, fmt.Sprintf("%s@%d", ev.Key, ev.Time/1e6))
			}})
			if err != nil {
				t.Fatal(err)
			}
			_, got := run(t, o, tc.steps)
			if !slices.Equal(got, tc.want) {
				t.Errorf("output:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.Equal(late, tc.late) {
				t.Errorf("late: got %q, want %q", late, tc.late)
			}
			if st := o.Stats(); st.Late != uint64(len(tc.late)) || st.Emitted != uint64(len(tc.want)) {
				t.Errorf("stats %+v, want late %d emitted %d", st, len(tc.late), len(tc.want))
			}
		})
	}
}

func TestOutputEvent(t *testing.T) {
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Minute)},
		Aggregates: map[string]string{"avg_t": "avg(t)", "n": "count()", "dev": "first(dev)"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC).UnixNano()
	for i, f := range []map[string]any{{"t": 20.0, "dev": "x"}, {"t": int64(22), "dev": "y"}} {
		if err := o.Process(&pipeline.Event{Key: "k", Time: base + int64(i)*int64(time.Second), Fields: f, Offset: uint64(10 + i)}, rec); err != nil {
			t.Fatal(err)
		}
	}
	o.Advance(base+int64(time.Minute), rec)
	if len(rec.evs) != 1 {
		t.Fatalf("got %d outputs", len(rec.evs))
	}
	ev := rec.evs[0]
	want := map[string]any{"key": "k", "window_start": base / 1e6, "window_end": base/1e6 + 60000, "avg_t": 21.0, "n": int64(2), "dev": "x"}
	for k, v := range want {
		if ev.Fields[k] != v {
			t.Errorf("%s = %#v, want %#v", k, ev.Fields[k], v)
		}
	}
	if len(ev.Fields) != len(want) {
		t.Errorf("fields %v", ev.Fields)
	}
	if ev.Time != base+int64(time.Minute)-1 || ev.Key != "k" || ev.Offset != 11 {
		t.Errorf("time %d key %q offset %d", ev.Time, ev.Key, ev.Offset)
	}
	s := o.Schema()
	for _, k := range []string{"key", "window_start", "window_end", "avg_t", "n", "dev"} {
		if _, ok := s[k]; !ok {
			t.Errorf("schema lacks %s: %v", k, s)
		}
	}
	if _, ok := s["n"].(int64); !ok {
		t.Errorf("schema n = %T", s["n"])
	}
}

func TestBadValuesAreCountedNotFatal(t *testing.T) {
	o, err := New(Config{Name: "window-1", Window: pipeline.WindowSpec{Tumbling: dur(time.Second)},
		Aggregates: map[string]string{"n": "count()", "s": "sum(v)", "f": "first(v)", "x": "max(v * 2)"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	inputs := []map[string]any{{"v": 1.0}, {"v": "hot"}, {"v": true}, {}, {"v": 2}}
	var errs []string
	for i, f := range inputs {
		if err := o.Process(&pipeline.Event{Key: "a", Time: int64(i), Fields: f}, rec); err != nil {
			errs = append(errs, err.Error())
		}
	}
	o.Advance(int64(time.Hour), rec)
	if len(errs) != 3 || !strings.Contains(errs[0], "window-1: aggregate s: sum(v): v is string hot, want a finite number") ||
		!strings.Contains(errs[2], "v * 2") || strings.Contains(errs[2], "\n") {
		t.Errorf("errors %q", errs)
	}
	// The string and bool events are dropped whole, and so is the empty
	// event (v * 2 fails on a missing v); a plain missing field is nil and
	// ignored, which the count of Missing shows.
	got := rec.lines()
	want := []string{"a [0,1000) t=999 f=1 n=2 s=3 x=4"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q want %q", got, want)
	}
	if st := o.Stats(); st.Errors != 3 || st.Missing != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLateWithoutCallbackIsLogged(t *testing.T) {
	var buf bytes.Buffer
	o, err := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}, Aggregates: map[string]string{"n": "count()"},
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	_ = o.Process(&pipeline.Event{Key: "a", Time: 5e9, Fields: map[string]any{}}, rec)
	for i := 0; i < 3; i++ {
		_ = o.Process(&pipeline.Event{Key: "a", Time: 1e9, Fields: map[string]any{}}, rec)
	}
	if o.Stats().Late != 3 {
		t.Errorf("late %d", o.Stats().Late)
	}
	if n := strings.Count(buf.String(), "late event"); n != 2 { // 1st and 2nd, then 4th, 8th...
		t.Errorf("logged %d times:\n%s", n, buf.String())
	}
}

func TestConfigErrors(t *testing.T) {
	zero, one := 0, 1
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no window", Config{Aggregates: map[string]string{"n": "count()"}}, "set exactly one of"},
		{"two windows", Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second), Count: &one}, Aggregates: map[string]string{"n": "count()"}}, "exactly one"},
		{"zero tumbling", Config{Window: pipeline.WindowSpec{Tumbling: dur(0)}, Aggregates: map[string]string{"n": "count()"}}, "tumbling must be > 0"},
		{"sliding not dividing", Config{Window: pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(time.Minute), Every: pipeline.D(7 * time.Second)}}, Aggregates: map[string]string{"n": "count()"}}, "must divide"},
		{"zero gap", Config{Window: pipeline.WindowSpec{Session: &pipeline.SessionSpec{}}, Aggregates: map[string]string{"n": "count()"}}, "gap must be > 0"},
		{"zero count", Config{Window: pipeline.WindowSpec{Count: &zero}, Aggregates: map[string]string{"n": "count()"}}, "count must be > 0"},
		{"no aggregates", Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}}, "no entries"},
		{"unknown function", Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}, Aggregates: map[string]string{"x": "mean(v)"}}, "known: count, sum"},
		{"reserved name", Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}, Aggregates: map[string]string{"key": "count()"}}, "choose another name"},
		{"bad expression", Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}, Aggregates: map[string]string{"x": "avg(v +)"}}, "aggregate x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// allAggs uses every aggregate function, so that snapshots cover every
// accumulator encoding.
var allAggs = map[string]string{
	"n": "count()", "nv": "count(v)", "sum": "sum(v)", "avg": "avg(v)", "min": "min(v)", "max": "max(v)",
	"first": "first(s)", "last": "last(s)", "sd": "stddev(v)", "dc": "distinct_count(s)",
	"med": "median(v)", "p50": "p50(v)", "p90": "p90(v * 1)", "p95": "p95(v)", "p99": "p99(v)",
}

func randomStream(seed uint64, n int) []step {
	rng := rand.New(rand.NewPCG(seed, 1))
	var steps []step
	now := int64(0)
	for i := 0; i < n; i++ {
		now += rng.Int64N(700)
		t := now - rng.Int64N(4000) // out of order, some beyond lateness
		key := fmt.Sprintf("k%d", rng.IntN(5))
		steps = append(steps, step{key: key, at: t, fields: map[string]any{
			"v": float64(rng.IntN(1000)) / 10, "s": fmt.Sprintf("s%d", rng.IntN(100)),
		}})
		if rng.IntN(50) == 0 {
			steps = append(steps, adv(now))
		}
	}
	return append(steps, adv(now+int64(time.Hour/time.Millisecond)))
}

func TestSnapshotRestoreEquivalence(t *testing.T) {
	n50, n200 := 50, 200
	kinds := []struct {
		name string
		win  pipeline.WindowSpec
	}{
		{"tumbling", pipeline.WindowSpec{Tumbling: dur(5 * time.Second), AllowedLateness: dur(2 * time.Second)}},
		{"sliding", pipeline.WindowSpec{Sliding: &pipeline.SlidingSpec{Size: pipeline.D(10 * time.Second), Every: pipeline.D(2 * time.Second)}, AllowedLateness: dur(time.Second)}},
		{"session", pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(1500 * time.Millisecond)}, AllowedLateness: dur(2 * time.Second)}},
		{"count", pipeline.WindowSpec{Count: &n50}},
		{"count-sketches", pipeline.WindowSpec{Count: &n200}}, // quantile sketch and HyperLogLog modes
	}
	steps := randomStream(7, 3000)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			cfg := Config{Window: k.win, Aggregates: allAggs, Late: func(*pipeline.Event) {}}
			mk := func() *Operator {
				o, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
			operatortest.CheckRestore(t, mk, len(steps), 10, []int{0, 1, 100, 1234, 2999, len(steps) - 1}, func(o *Operator, from, to int) []string {
				_, out := run(t, o, steps[from:to])
				return out
			})
		})
	}
}

func TestRestoreRejectsOtherConfigAndGarbage(t *testing.T) {
	a, _ := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(time.Second)}, Aggregates: map[string]string{"n": "count()"}})
	_, _ = run(t, a, []step{e("a", 10, 1)})
	snap, _ := a.Snapshot()
	b, _ := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(2 * time.Second)}, Aggregates: map[string]string{"n": "count()"}})
	if err := b.Restore(snap); err == nil || !strings.Contains(err.Error(), "different window or aggregate configuration") {
		t.Errorf("restore into other config: %v", err)
	}
	for i := 0; i < len(snap); i++ {
		if err := a.Restore(snap[:i]); err == nil {
			t.Errorf("truncated snapshot (%d of %d bytes) restored", i, len(snap))
		}
		if a.StateSize() != 0 {
			t.Errorf("failed restore left %d windows", a.StateSize())
		}
	}
	if err := a.Restore(snap); err != nil || a.StateSize() != 1 {
		t.Errorf("restore: %v, size %d", err, a.StateSize())
	}
}

func TestStateSizeAndFlush(t *testing.T) {
	o, _ := New(Config{Window: pipeline.WindowSpec{Tumbling: dur(10 * time.Second), AllowedLateness: dur(time.Minute)}, Aggregates: map[string]string{"n": "count()"}})
	rec, _ := run(t, o, []step{e("a", 1000, 1), e("a", 11000, 1), e("b", 1000, 1)})
	if o.StateSize() != 3 || len(rec.evs) != 0 {
		t.Fatalf("size %d outputs %d", o.StateSize(), len(rec.evs))
	}
	if err := o.Flush(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	want := []string{"a [0,10000) t=9999 n=1", "b [0,10000) t=9999 n=1", "a [10000,20000) t=19999 n=1"}
	if got := rec.lines(); !slices.Equal(got, want) || o.StateSize() != 0 {
		t.Errorf("flush: got %q (size %d), want %q", got, o.StateSize(), want)
	}
}

func FuzzRestore(f *testing.F) {
	cfg := Config{Window: pipeline.WindowSpec{Session: &pipeline.SessionSpec{Gap: pipeline.D(time.Second)}}, Aggregates: allAggs, Late: func(*pipeline.Event) {}}
	o, _ := New(cfg)
	rec := &recorder{}
	for i, st := range randomStream(3, 200) {
		if st.key != "" {
			_ = o.Process(&pipeline.Event{Key: st.key, Time: st.at * 1e6, Fields: st.fields, Offset: uint64(i)}, rec)
		}
	}
	snap, _ := o.Snapshot()
	f.Add(snap)
	f.Add([]byte("EWN\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _ := New(cfg)
		if err := o.Restore(data); err != nil {
			return
		}
		// Whatever restored must keep working.
		rec := &recorder{}
		_ = o.Process(&pipeline.Event{Key: "k1", Time: 5e9, Fields: map[string]any{"v": 1.0, "s": "x"}}, rec)
		o.Advance(1<<62, rec)
		_ = o.Flush(context.Background(), rec)
	})
}

// TestPanesMatchNaiveWindows checks tumbling and sliding windows against a
// direct computation: every event added to each window that contains it.
func TestPanesMatchNaiveWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ size, every int64 }{{1000, 1000}, {3000, 1000}, {6000, 2000}, {5000, 5000}} {
		var steps []step
		now := int64(0)
		type wk struct {
			start int64
			key   string
		}
		sum, n := map[wk]int{}, map[wk]int{}
		for i := 0; i < 2000; i++ {
			now += rng.Int64N(50)
			at := now - rng.Int64N(1500) // lateness 2s below covers it: no late events
			key := fmt.Sprintf("k%d", rng.IntN(4))
			v := rng.IntN(100)
			steps = append(steps, step{key: key, at: at, fields: map[string]any{"v": v}})
			for s := floorDiv(at, c.every)*c.every - c.size + c.every; s <= at; s += c.every {
				sum[wk{s, key}] += v
				n[wk{s, key}]++
			}
		}
		steps = append(steps, adv(now+100000))
		var ws []wk
		for w := range n {
			ws = append(ws, w)
		}
		slices.SortFunc(ws, func(a, b wk) int {
			if a.start != b.start {
				return int(a.start - b.start)
			}
			return strings.Compare(a.key, b.key)
		})
		var want []string
		for _, w := range ws {
			want = append(want, fmt.Sprintf("%s [%d,%d) t=%d n=%d s=%d", w.key, w.start, w.start+c.size, w.start+c.size-1, n[w], sum[w]))
		}
		win := pipeline.WindowSpec{AllowedLateness: dur(2 * time.Second)}
		if c.size == c.every {
			win.Tumbling = dur(time.Duration(c.size) * time.Millisecond)
		} else {
			win.Sliding = &pipeline.SlidingSpec{Size: pipeline.D(time.Duration(c.size) * time.Millisecond), Every: pipeline.D(time.Duration(c.every) * time.Millisecond)}
		}
		o, err := New(Config{Window: win, Aggregates: map[string]string{"n": "count()", "s": "sum(v)"}})
		if err != nil {
			t.Fatal(err)
		}
		_, got := run(t, o, steps)
		if o.Stats().Late != 0 {
			t.Fatalf("late events: %d", o.Stats().Late)
		}
		if !slices.Equal(got, want) {
			t.Errorf("size %d every %d: %d outputs, want %d; first got %q want %q", c.size, c.every, len(got), len(want), got[:3], want[:3])
		}
	}
}
