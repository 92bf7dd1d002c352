package beam_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/file"
	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/wal"
)

func TestMain(m *testing.M) {
	beam.Init()
	code := m.Run()
	if eddyBeam.dir != "" {
		os.RemoveAll(eddyBeam.dir)
	}
	os.Exit(code)
}

// base is the event time the recorded input starts at.
var base = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// recorded builds a deterministic recording: devices publishing in bursts
// (40 s on, 10 s off, so sessions have gaps), arriving slightly out of order
// (up to shuffle), with some events far older than the watermark (late),
// some without a temperature (missing) and some with a string (an
// aggregate error). Values are multiples of 1/4 so that sums are exact in
// any order.
func recorded(seed uint64, shuffle, lateAge time.Duration) []walexport.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	type ev struct {
		t   time.Time
		dev string
		v   any
	}
	var evs []ev
	devices := []string{"m1", "m2", "m3", "m4"}
	for _, d := range devices {
		for t := time.Duration(0); t < 8*time.Minute; t += time.Duration(500+rng.IntN(1500)) * time.Millisecond {
			if t%(50*time.Second) >= 40*time.Second {
				continue
			}
			var v any = float64(40+rng.IntN(120)) / 4
			switch rng.IntN(100) {
			case 0:
				v = nil
			case 1:
				v = "hot"
			}
			evs = append(evs, ev{base.Add(t + time.Duration(rng.IntN(1000))*time.Microsecond), d, v})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
	// Arrival order: each event may arrive up to shuffle after its time.
	arrive := make([]time.Time, len(evs))
	for i, e := range evs {
		arrive[i] = e.t.Add(time.Duration(rng.Int64N(int64(shuffle) + 1)))
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return arrive[idx[a]].Before(arrive[idx[b]]) })
	var recs []walexport.Record
	add := func(e ev, at time.Time) {
		fields := map[string]any{"device": e.dev, "ts": e.t.UnixMilli()}
		if e.v != nil {
			fields["temperature"] = e.v
		}
		b, _ := json.Marshal(fields)
		recs = append(recs, walexport.Record{Offset: uint64(len(recs) + 1), Time: at, Topic: "factory/" + e.dev + "/data", Payload: b})
	}
	for n, i := range idx {
		add(evs[i], arrive[i])
		if n%50 == 25 { // a device with a stale clock: far behind the watermark
			old := evs[i]
			old.t = old.t.Add(-lateAge)
			add(old, arrive[i])
		}
	}
	return recs
}

const aggregates = `
    - aggregate:
        n: count()
        total: sum(temperature)
        avg_t: avg(temperature)
        min_t: min(temperature)
        max_t: max(temperature)
        first_t: first(temperature)
        last_t: last(temperature)
        sd: stddev(temperature)
        distinct: distinct_count(temperature)
        med: median(temperature)
        q50: p50(temperature)
        q90: p90(temperature)
        q95: p95(temperature)
        q99: p99(temperature)`

func spec(name, window, tail string) string {
	return fmt.Sprintf(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  steps:
    - window: %s%s%s
  sinks:
    - file: {path: out.jsonl}
  late:
    - file: {path: late.jsonl}
`, name, window, aggregates, tail)
}

var cases = []struct {
	name    string
	yaml    string
	shuffle time.Duration
	lateAge time.Duration
}{
	{"tumbling", spec("tumbling", "{tumbling: 10s, allowedLateness: 3s}", ""), 3 * time.Second, 0},
	{"sliding", spec("sliding", "{sliding: {size: 30s, every: 10s}, allowedLateness: 3s}", ""), 3 * time.Second, 0},
	{"session", spec("session", "{session: {gap: 5s}, allowedLateness: 3s}", ""), 3 * time.Second, 0},
	// Disorder beyond the lateness: sessions the edge closed before a
	// connecting event arrived, and late events inside still-open sessions.
	{"session-disorder", spec("session-disorder", "{session: {gap: 3s}, allowedLateness: 1s}", ""), 6 * time.Second, 20 * time.Second},
	{"alert", spec("alert", "{tumbling: 10s, allowedLateness: 3s}", `
    - filter: "n > 0"
    - alert:
        when: "avg_t > 24"
        for: 20s
        cooldown: 30s
        severity: critical
        message: "{{key}} averages {{avg_t}}"`), 3 * time.Second, 0},
	{"alert-no-window", `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: raw-alert}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  steps:
    - filter: "temperature != nil && temperature > 0"
    - alert: {when: "temperature > 35", for: 2s}
  sinks:
    - file: {path: out.jsonl}
`, 3 * time.Second, 0},
}

// TestParity runs each pipeline over the same recording on the edge engine
// and on Beam (direct and prism) and requires the same output.
func TestParity(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lateAge := c.lateAge
			if lateAge == 0 {
				lateAge = 5 * time.Minute
			}
			recs := recorded(42, c.shuffle, lateAge)
			plans, err := pipeline.Load(c.name+".yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			plan := plans[0]
			edgeDir := t.TempDir()
			runEdge(t, plan, recs, edgeDir)
			want := readLines(t, filepath.Join(edgeDir, "out.jsonl"))
			if len(want) < 10 {
				t.Fatalf("the edge produced only %d results; the recording does not exercise the pipeline", len(want))
			}
			input := filepath.Join(t.TempDir(), "export.jsonl")
			writeExport(t, input, recs)
			for _, runner := range []string{"direct", "prism"} {
				t.Run(runner, func(t *testing.T) {
					out := t.TempDir()
					bp, err := eddybeam.Translate(plan, eddybeam.Options{Input: input, OutputDir: out})
					if err != nil {
						t.Fatal(err)
					}
					execute(t, runner, bp)
					got := readLines(t, filepath.Join(out, "out.jsonl"))
					compare(t, "output", got, want)
					if len(plan.Spec.Late) > 0 {
						compare(t, "late", readLines(t, filepath.Join(out, "late.jsonl")), readLines(t, filepath.Join(edgeDir, "late.jsonl")))
					}
				})
			}
		})
	}
}

// execute runs p through eddybeam.Execute, as eddy-beam does (one job at
// a time: Beam's job options are process-wide).
func execute(t *testing.T, runner string, p *beam.Pipeline) {
	t.Helper()
	if err := eddybeam.Execute(context.Background(), runner, p); err != nil {
		t.Fatalf("%s: %v", runner, err)
	}
}

// runEdge runs plan on the edge engine over recs, then lets the source go
// idle so that every window closes, and stops the engine (flushing sinks).
func runEdge(t *testing.T, plan *pipeline.Plan, recs []walexport.Record, dir string) {
	t.Helper()
	log := wal.NewMemory(wal.MemoryOptions{})
	last := recs[len(recs)-1].Time
	clk := clock.NewFake(last)
	reg := engine.NewRegistry()
	reg.RegisterSink("file", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		return file.Open(filepath.Join(dir, s.File.Path))
	})
	eng, err := engine.New(engine.Options{Log: log, Checkpoints: checkpoint.NewMemoryStore(), Registry: reg, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := log.Append(context.Background(), &wal.Record{Topic: r.Topic, Payload: r.Payload, Time: r.Time.UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	id := plan.ID()
	mqtttest.WaitFor(t, "the edge pipeline to read the whole log", func() bool {
		st, ok := eng.Status(id)
		return ok && st.Cursor > log.Last()
	})
	// Idle: the event clock follows processing time and closes the windows.
	mqtttest.WaitFor(t, "every window to close", func() bool {
		clk.Advance(time.Second)
		st, _ := eng.Status(id)
		for _, s := range st.Steps {
			if s.Kind == "window" && s.StateSize > 0 {
				return false
			}
		}
		return true
	})
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeExport(t *testing.T, path string, recs []walexport.Record) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		var err error
		if b, err = walexport.Append(b, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readLines reads a JSON Lines output; Beam's textio may have sharded it
// (path-*), and a missing file is an empty output. A last line without its
// newline is being written (a live job's sink appends while the test
// reads) and is left for the next read.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(path + "*")
	var out []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = b[:bytes.LastIndexByte(b, '\n')+1]
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v: %s", f, err, sc.Bytes())
			}
			out = append(out, m)
		}
	}
	return out
}

// compare requires the same multiset of objects. Numbers are equal when
// they agree to 1e-9 relative: stddev is folded in a different order on
// Beam (merged partial accumulators) than on the edge.
func compare(t *testing.T, what string, got, want []map[string]any) {
	t.Helper()
	key := func(m map[string]any) string {
		b, _ := json.Marshal(round(m))
		return string(b)
	}
	gs, ws := make([]string, len(got)), make([]string, len(want))
	for i, m := range got {
		gs[i] = key(m)
	}
	for i, m := range want {
		ws[i] = key(m)
	}
	slices.Sort(gs)
	slices.Sort(ws)
	if slices.Equal(gs, ws) {
		t.Logf("%s: %d identical records", what, len(gs))
		return
	}
	// The difference as multisets: a record the edge wrote twice and Beam
	// once is missing once.
	count := map[string]int{}
	for _, w := range ws {
		count[w]++
	}
	for _, g := range gs {
		count[g]--
	}
	var missing, extra []string
	for _, w := range ws {
		if count[w] > 0 {
			count[w]--
			missing = append(missing, w)
		}
	}
	for _, g := range gs {
		if count[g] < 0 {
			count[g]++
			extra = append(extra, g)
		}
	}
	t.Fatalf("%s differs: Beam %d records, edge %d\nonly on the edge (%d):\n%s\nonly on Beam (%d):\n%s", what, len(got), len(want),
		len(missing), strings.Join(head(missing), "\n"), len(extra), strings.Join(head(extra), "\n"))
}

func head(s []string) []string { return s[:min(len(s), 8)] }

func round(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case float64:
			if x != 0 && !math.IsInf(x, 0) {
				e := math.Pow(10, math.Floor(math.Log10(math.Abs(x)))-9)
				x = math.Round(x/e) * e
			}
			out[k] = x
		case map[string]any:
			out[k] = round(x)
		default:
			out[k] = v
		}
	}
	return out
}
