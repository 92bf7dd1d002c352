package alert

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/operatortest"
	"github.com/eddy-edge/eddy/pipeline"
)

const sec = int64(time.Second)

// base is an arbitrary event-time origin (2026-01-01T00:00:00Z).
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

type collector struct{ evs []*pipeline.Event }

func (c *collector) Emit(ev *pipeline.Event) { c.evs = append(c.evs, ev.Clone()) }

// step is one input event at base+at seconds. t is the value of field "t";
// missing leaves the field out (an evaluation error for "t > 30").
type step struct {
	at      int64
	key     string
	t       float64
	missing bool
	want    []want
	wantErr bool
}

// want is one expected notification: its state and the started_at (in
// seconds after base) of the episode, which determines the alert_id.
type want struct {
	state   string
	started int64
}

func ev(s step) *pipeline.Event {
	key := s.key
	if key == "" {
		key = "k1"
	}
	f := map[string]any{"t": s.t}
	if s.missing {
		f = map[string]any{"other": 1}
	}
	return &pipeline.Event{Time: base + s.at*sec, Key: key, Topic: "sensors/" + key, Fields: f}
}

func mustNew(t testing.TB, spec pipeline.AlertSpec) *Operator {
	t.Helper()
	o, err := New(Config{Pipeline: "overheat", Rule: "hot", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func runSteps(t *testing.T, o *Operator, steps []step) {
	t.Helper()
	for i, s := range steps {
		var c collector
		err := o.Process(ev(s), &c)
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d (t=%ds): error = %v, wantErr %v", i, s.at, err, s.wantErr)
		}
		if len(c.evs) != len(s.want) {
			var got []string
			for _, e := range c.evs {
				got = append(got, fmt.Sprint(e.Fields["state"], "@", e.Fields["started_at"]))
			}
			t.Fatalf("step %d (t=%ds): got %d notifications %v, want %d %v", i, s.at, len(c.evs), got, len(s.want), s.want)
		}
		for j, w := range s.want {
			n := c.evs[j]
			key := ev(s).Key
			wantID := AlertID("overheat", "hot", key, base+w.started*sec)
			if n.Fields["state"] != w.state {
				t.Errorf("step %d: state = %v, want %s", i, n.Fields["state"], w.state)
			}
			if n.Fields["alert_id"] != wantID {
				t.Errorf("step %d: alert_id = %v, want %s (episode started at %ds)", i, n.Fields["alert_id"], wantID, w.started)
			}
			if got, want := n.Fields["started_at"], formatTime(base+w.started*sec); got != want {
				t.Errorf("step %d: started_at = %v, want %s", i, got, want)
			}
			if n.Time != base+s.at*sec || n.Key != key {
				t.Errorf("step %d: Time/Key = %d/%q, want %d/%q", i, n.Time, n.Key, base+s.at*sec, key)
			}
		}
	}
}

func spec(forD, cool time.Duration) pipeline.AlertSpec {
	return pipeline.AlertSpec{When: "t > 30", For: pipeline.DurationPtr(forD), Cooldown: pipeline.DurationPtr(cool)}
}

func TestStateMachine(t *testing.T) {
	fire := func(started int64) []want { return []want{{StateFiring, started}} }
	resolve := func(started int64) []want { return []want{{StateResolved, started}} }
	tests := []struct {
		name  string
		spec  pipeline.AlertSpec
		steps []step
	}{
		{"for holds then fires, resolves, new episode gets new id", spec(30*time.Second, 0), []step{
			{at: 0, t: 31},
			{at: 10, t: 32},
			{at: 29, t: 33},
			{at: 30, t: 33, want: fire(0)},
			{at: 40, t: 31}, // cooldown 0: sent once
			{at: 500, t: 99},
			{at: 510, t: 20, want: resolve(0)},
			{at: 511, t: 20},
			{at: 600, t: 35},
			{at: 630, t: 35, want: fire(600)},
		}},
		{"pending goes inactive silently", spec(30*time.Second, 0), []step{
			{at: 0, t: 31},
			{at: 10, t: 20},
			{at: 20, t: 31},
			{at: 35, t: 31}, // 15s since the new start
			{at: 49, t: 31},
			{at: 50, t: 31, want: fire(20)},
		}},
		{"for 0 fires at once", spec(0, 0), []step{
			{at: 0, t: 31, want: fire(0)},
			{at: 1, t: 32},
			{at: 2, t: 20, want: resolve(0)},
			{at: 3, t: 31, want: fire(3)},
		}},
		{"nil for and cooldown mean 0", pipeline.AlertSpec{When: "t > 30"}, []step{
			{at: 0, t: 31, want: fire(0)},
			{at: 1000, t: 31},
		}},
		{"cooldown re-sends with the same id", spec(0, 5*time.Minute), []step{
			{at: 0, t: 31, want: fire(0)},
			{at: 100, t: 31},
			{at: 299, t: 31},
			{at: 300, t: 31, want: fire(0)},
			{at: 400, t: 31},
			{at: 650, t: 31, want: fire(0)},
			{at: 949, t: 31},
			{at: 950, t: 31, want: fire(0)},
			{at: 951, t: 10, want: resolve(0)},
			{at: 952, t: 31, want: fire(952)},
		}},
		{"cooldown counts from firing, not from pending", spec(10*time.Second, time.Minute), []step{
			{at: 0, t: 31},
			{at: 10, t: 31, want: fire(0)},
			{at: 60, t: 31},
			{at: 70, t: 31, want: fire(0)},
		}},
		{"error does not change pending state", spec(30*time.Second, 0), []step{
			{at: 0, t: 31},
			{at: 10, missing: true, wantErr: true},
			{at: 30, t: 31, want: fire(0)},
		}},
		{"error does not resolve a firing alert", spec(0, 0), []step{
			{at: 0, t: 31, want: fire(0)},
			{at: 10, missing: true, wantErr: true},
			{at: 20, t: 31},
			{at: 30, t: 1, want: resolve(0)},
		}},
		{"error on inactive key starts nothing", spec(0, 0), []step{
			{at: 0, missing: true, wantErr: true},
			{at: 1, t: 1},
		}},
		{"late event of a key is ignored", spec(0, 0), []step{
			{at: 100, t: 31, want: fire(100)},
			{at: 50, t: 1}, // stale reading must not resolve
			{at: 100, t: 31},
			{at: 110, t: 1, want: resolve(100)},
		}},
		{"late event does not advance pending", spec(30*time.Second, 0), []step{
			{at: 100, t: 31},
			{at: 90, t: 1},
			{at: 130, t: 31, want: fire(100)},
		}},
		{"keys are independent", spec(10*time.Second, 0), []step{
			{at: 0, key: "a", t: 31},
			{at: 5, key: "b", t: 31},
			{at: 10, key: "a", t: 31, want: fire(0)},
			{at: 12, key: "b", t: 1},
			{at: 20, key: "b", t: 31},
			{at: 21, key: "a", t: 1, want: resolve(0)},
			{at: 30, key: "b", t: 31, want: fire(20)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, mustNew(t, tc.spec), tc.steps)
		})
	}
}

func TestNotificationFields(t *testing.T) {
	o, err := New(Config{
		Pipeline: "overheat",
		Rule:     "too-hot",
		Spec: pipeline.AlertSpec{
			When:     "avg_t > 30",
			For:      pipeline.DurationPtr(30 * time.Second),
			Severity: "critical",
			Message:  "{{key}} is overheating: avg {{avg_t}}",
		},
		Schema: pipeline.Schema{"avg_t": 0.0, "key": ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	t0 := base + 1234*int64(time.Millisecond)
	in := func(at int64, v float64) *pipeline.Event {
		return &pipeline.Event{Time: at, Key: "thermo-1", Topic: "agg", Offset: 7, Fields: map[string]any{"avg_t": v, "key": "thermo-1"}}
	}
	for _, e := range []*pipeline.Event{in(t0, 31), in(t0+30*sec, 32.5), in(t0+40*sec, 12)} {
		if err := o.Process(e, &c); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.evs) != 2 {
		t.Fatalf("got %d notifications, want 2", len(c.evs))
	}
	id := AlertID("overheat", "too-hot", "thermo-1", t0)
	firing, resolved := c.evs[0], c.evs[1]
	wantFiring := map[string]any{
		"alert_id": id, "state": "firing", "severity": "critical",
		"message": "thermo-1 is overheating: avg 32.5", "key": "thermo-1",
		"started_at": "2026-01-01T00:00:01.234Z", "ts": "2026-01-01T00:00:31.234Z",
		"rule": "too-hot", "pipeline": "overheat",
	}
	for k, v := range wantFiring {
		if firing.Fields[k] != v {
			t.Errorf("firing %s = %#v, want %#v", k, firing.Fields[k], v)
		}
	}
	if _, ok := firing.Fields["resolved_at"]; ok {
		t.Error("firing notification has resolved_at")
	}
	vals, ok := firing.Fields["values"].(map[string]any)
	if !ok || vals["avg_t"] != 32.5 {
		t.Errorf("values = %#v, want the triggering event's fields", firing.Fields["values"])
	}
	if firing.Time != t0+30*sec || firing.Key != "thermo-1" || firing.Topic != "agg" || firing.Offset != 7 {
		t.Errorf("firing event header = %+v", firing)
	}
	if resolved.Fields["state"] != "resolved" || resolved.Fields["alert_id"] != id ||
		resolved.Fields["resolved_at"] != "2026-01-01T00:00:41.234Z" || resolved.Fields["message"] != "thermo-1 is overheating: avg 12" {
		t.Errorf("resolved = %#v", resolved.Fields)
	}
	for k := range OutputSchema() {
		if _, ok := resolved.Fields[k]; !ok {
			t.Errorf("resolved notification lacks %q from OutputSchema", k)
		}
	}
}

func TestValuesAreACopy(t *testing.T) {
	o := mustNew(t, spec(0, 0))
	in := &pipeline.Event{Time: base, Key: "k", Fields: map[string]any{"t": 40.0}}
	var got *pipeline.Event
	if err := o.Process(in, operators.EmitFunc(func(e *pipeline.Event) { got = e })); err != nil {
		t.Fatal(err)
	}
	in.Fields["t"] = 1.0
	if v := got.Fields["values"].(map[string]any)["t"]; v != 40.0 {
		t.Errorf("values changed with the input event: t = %v", v)
	}
	f := o.Firing()
	f[0].Values["t"] = 2.0
	if v := o.Firing()[0].Values["t"]; v != 40.0 {
		t.Errorf("Firing().Values is shared with the operator: t = %v", v)
	}
}

func TestDefaults(t *testing.T) {
	o, err := New(Config{Spec: pipeline.AlertSpec{When: "t > 30"}})
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := o.Process(&pipeline.Event{Time: base, Key: "dev", Fields: map[string]any{"t": 31}}, &c); err != nil {
		t.Fatal(err)
	}
	f := c.evs[0].Fields
	if f["severity"] != DefaultSeverity || f["rule"] != DefaultRule || f["message"] != "dev: t > 30" || f["pipeline"] != "" {
		t.Errorf("defaults = %#v", f)
	}
}

func TestNewErrors(t *testing.T) {
	schema := pipeline.Schema{"avg_t": 0.0}
	tests := []struct {
		name    string
		spec    pipeline.AlertSpec
		schema  pipeline.Schema
		wantSub string
	}{
		{"empty when", pipeline.AlertSpec{}, nil, "alert.when: is required"},
		{"syntax error", pipeline.AlertSpec{When: "t >"}, nil, `alert.when: "t >"`},
		{"unknown field with schema", pipeline.AlertSpec{When: "avg > 30"}, schema, "alert.when"},
		{"bad template", pipeline.AlertSpec{When: "avg_t > 1", Message: "{{key"}, schema, "alert.message"},
		{"unknown template field", pipeline.AlertSpec{When: "avg_t > 1", Message: "{{avgt}}"}, schema, "{{avgt}} is not a field"},
		{"negative for", pipeline.AlertSpec{When: "avg_t > 1", For: pipeline.DurationPtr(-time.Second)}, schema, "alert.for"},
		{"negative cooldown", pipeline.AlertSpec{When: "avg_t > 1", Cooldown: pipeline.DurationPtr(-time.Second)}, schema, "alert.cooldown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Spec: tc.spec, Schema: tc.schema})
			if err == nil || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("New error = %v, want containing %q", err, tc.wantSub)
			}
		})
	}
}

func TestNonBoolIsError(t *testing.T) {
	o := mustNew(t, pipeline.AlertSpec{When: "t + 1"})
	err := o.Process(&pipeline.Event{Time: base, Key: "k", Fields: map[string]any{"t": 1.0}}, &collector{})
	if err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Fatalf("error = %v", err)
	}
	if s := o.Stats(); s.Errors != 1 || s.Evaluated != 0 || o.StateSize() != 0 {
		t.Errorf("stats = %+v, size %d", s, o.StateSize())
	}
}

// TestSnapshotRestoreKeepsIDs checks that an operator restored from a
// snapshot taken mid-episode continues exactly like one that never stopped,
// with the same alert_ids, and that replaying from the start gives the same
// ids too.
func TestSnapshotRestoreKeepsIDs(t *testing.T) {
	sp := spec(20*time.Second, time.Minute)
	var events []*pipeline.Event
	for i := int64(0); i < 200; i++ {
		for _, k := range []string{"a", "b", "c"} {
			v := 20.0
			// a: one long episode; b: two episodes; c: pending only.
			switch {
			case k == "a" && i >= 10 && i < 150,
				k == "b" && (i%60 >= 5 && i%60 < 40),
				k == "c" && i >= 190:
				v = 35
			}
			events = append(events, &pipeline.Event{Time: base + i*5*sec, Key: k, Fields: map[string]any{"t": v, "i": i}})
		}
	}
	run := func(o *Operator, from, to int) []string {
		var c collector
		for _, e := range events[from:to] {
			if err := o.Process(e, &c); err != nil {
				t.Fatal(err)
			}
		}
		var out []string
		for _, n := range c.evs {
			out = append(out, fmt.Sprintf("%s %s %s %s", n.Key, n.Fields["state"], n.Fields["alert_id"], n.Fields["ts"]))
		}
		return out
	}
	mk := func() *Operator { return mustNew(t, sp) }
	operatortest.CheckRestore(t, mk, len(events), 8, []int{1, 35, 40, 100, 301, 450, 599}, run)
	if a, b := run(mk(), 0, len(events)), run(mk(), 0, len(events)); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Error("replaying from the start gave different notifications")
	}
}

func TestRestoreErrors(t *testing.T) {
	tests := []struct{ data, wantSub string }{
		{"{", "not valid"},
		{`{"version":2,"keys":[]}`, "version 2"},
		{`{"version":1,"keys":[{"key":"a","phase":"sleeping"}]}`, `phase "sleeping"`},
		{`{"version":1,"keys":[{"key":"a","phase":"firing"},{"key":"a","phase":"pending"}]}`, "twice"},
	}
	for _, tc := range tests {
		o := mustNew(t, spec(0, 0))
		if err := o.Process(&pipeline.Event{Time: base, Key: "x", Fields: map[string]any{"t": 31}}, &collector{}); err != nil {
			t.Fatal(err)
		}
		err := o.Restore([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.wantSub) {
			t.Errorf("Restore(%s) = %v, want containing %q", tc.data, err, tc.wantSub)
		}
		if o.StateSize() != 1 {
			t.Errorf("failed Restore(%s) changed the state", tc.data)
		}
	}
	o := mustNew(t, spec(0, 0))
	if err := o.Restore(nil); err != nil || o.StateSize() != 0 {
		t.Errorf("Restore(nil) = %v, size %d", err, o.StateSize())
	}
}

func TestFiringList(t *testing.T) {
	o := mustNew(t, spec(10*time.Second, 0))
	for _, s := range []step{
		{at: 0, key: "b", t: 31},
		{at: 1, key: "a", t: 31},
		{at: 2, key: "c", t: 31},
		{at: 11, key: "a", t: 32},
		{at: 12, key: "b", t: 33},
	} {
		if err := o.Process(ev(s), &collector{}); err != nil {
			t.Fatal(err)
		}
	}
	f := o.Firing()
	if len(f) != 2 || f[0].Key != "b" || f[1].Key != "a" {
		t.Fatalf("Firing = %+v, want b then a", f)
	}
	if f[0].AlertID != AlertID("overheat", "hot", "b", base) || !f[0].StartedAt.Equal(time.Unix(0, base)) ||
		!f[0].FiredAt.Equal(time.Unix(0, base+12*sec)) || f[0].Values["t"] != 33.0 || f[0].Rule != "hot" {
		t.Errorf("Firing[0] = %+v", f[0])
	}
	if o.Pending() != 1 || o.StateSize() != 3 {
		t.Errorf("Pending %d StateSize %d, want 1 and 3", o.Pending(), o.StateSize())
	}
	if s := o.Stats(); s.Fired != 2 || s.Evaluated != 5 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestAlertIDDistinct(t *testing.T) {
	ids := map[string]string{}
	for _, c := range [][4]string{
		{"p", "r", "k", "1"}, {"p", "r", "k", "2"}, {"p", "r", "k2", "1"}, {"p", "r2", "k", "1"},
		{"p2", "r", "k", "1"}, {"pr", "", "k", "1"}, {"p", "rk", "", "1"},
	} {
		var ts int64
		fmt.Sscan(c[3], &ts)
		id := AlertID(c[0], c[1], c[2], ts)
		if len(id) != 16 {
			t.Errorf("AlertID%v = %q, want 16 hex digits", c, id)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("AlertID%v = AlertID%v = %s", c, prev, id)
		}
		ids[id] = fmt.Sprint(c)
	}
	if AlertID("p", "r", "k", 5) != AlertID("p", "r", "k", 5) {
		t.Error("AlertID is not deterministic")
	}
}

// TestConcurrentReaders runs the dashboard readers against Process; run
// with -race.
func TestConcurrentReaders(t *testing.T) {
	o := mustNew(t, spec(0, time.Second))
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				_ = o.Firing()
				_ = o.StateSize()
				_ = o.Stats()
			}
		}
	}()
	for i := int64(0); i < 2000; i++ {
		s := step{at: i, key: fmt.Sprint("k", i%7), t: float64(20 + i%17)}
		if err := o.Process(ev(s), &collector{}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}

func BenchmarkProcess1kKeys(b *testing.B) {
	o := mustNew(b, spec(30*time.Second, 5*time.Minute))
	const keys = 1000
	evs := make([]*pipeline.Event, keys*8)
	for i := range evs {
		k := i % keys
		// Each key flips between normal and hot every 4 rounds, so the
		// benchmark exercises pending, firing, re-send and resolve.
		v := 20.0
		if (i/keys)%8 >= 4 {
			v = 35
		}
		evs[i] = &pipeline.Event{Key: fmt.Sprintf("dev-%04d", k), Fields: map[string]any{"t": v}}
	}
	out := operators.EmitFunc(func(*pipeline.Event) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)]
		e.Time = base + int64(i/keys)*10*sec
		if err := o.Process(e, out); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkProcessSteadyNoChange(b *testing.B) {
	o := mustNew(b, spec(30*time.Second, 0))
	evs := make([]*pipeline.Event, 1000)
	for i := range evs {
		evs[i] = &pipeline.Event{Key: fmt.Sprintf("dev-%04d", i), Fields: map[string]any{"t": 20.0}}
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

// A key that goes silent while firing is resolved as stale after
// StaleAfter of event time (Prometheus resolves alerts whose series
// vanished); a pending one is forgotten; staleAfter: 0 keeps them.
func TestStaleKeysResolve(t *testing.T) {
	const sec = int64(time.Second)
	mk := func(stale *pipeline.Duration) *Operator {
		o, err := New(Config{Pipeline: "p", Spec: pipeline.AlertSpec{When: "v > 1", StaleAfter: stale}})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	var got []*pipeline.Event
	out := operators.EmitFunc(func(ev *pipeline.Event) { got = append(got, ev) })
	o := mk(pipeline.DurationPtr(time.Minute))
	o.Process(&pipeline.Event{Time: 10 * sec, Key: "hot", Fields: map[string]any{"v": 5}}, out)
	o.Process(&pipeline.Event{Time: 10 * sec, Key: "other", Fields: map[string]any{"v": 0}}, out)
	if len(got) != 1 || got[0].Fields["state"] != "firing" {
		t.Fatalf("got %v, want one firing", got)
	}
	id := got[0].Fields["alert_id"]
	o.Advance(60*sec, out) // 50 s silent: not yet
	if len(got) != 1 {
		t.Fatalf("resolved too early: %v", got[1].Fields)
	}
	o.Advance(71*sec, out)
	if len(got) != 2 {
		t.Fatalf("no stale resolve after 61 s of silence")
	}
	r := got[1].Fields
	if r["state"] != "resolved" || r["reason"] != "stale" || r["alert_id"] != id || r["resolved_at"] != "1970-01-01T00:01:11.000Z" {
		t.Errorf("stale resolve %v", r)
	}
	if o.StateSize() != 0 {
		t.Errorf("state size %d after the stale resolve", o.StateSize())
	}

	// Disabled: nothing resolves.
	got = nil
	o = mk(pipeline.DurationPtr(0))
	o.Process(&pipeline.Event{Time: 10 * sec, Key: "hot", Fields: map[string]any{"v": 5}}, out)
	o.Advance(10_000*sec, out)
	if len(got) != 1 || o.StateSize() != 1 {
		t.Errorf("staleAfter: 0 resolved a silent key: %v", got)
	}
}
