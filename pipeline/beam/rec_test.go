package beam

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// TestRecRoundTrip: a Rec and its fields survive the binary coder with
// their Go types (the JSON form used before turned integers into floats).
func TestRecRoundTrip(t *testing.T) {
	fields := map[string]any{"device": "d1", "t": 21.5, "n": int64(-3), "u": uint64(7), "ok": true, "none": nil,
		"num": json.Number("12.50"), "nested": map[string]any{"a": []any{1.0, "x"}}}
	ev := &pipeline.Event{Key: "d1", Time: -5, Offset: 42, Topic: "factory/d1/data", Fields: fields}
	r, _ := toRec(ev)
	r.WM = noWM
	got, err := decodeRec(encodeRec(r))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: got %+v, want %+v", got, r)
	}
	back, err := toEvent(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ev) {
		t.Fatalf("event round trip: got %+v, want %+v", back, ev)
	}
	var lines []string
	toLine(context.Background(), got, func(s string) { lines = append(lines, s) })
	want, _ := json.Marshal(fields)
	if len(lines) != 1 || lines[0] != string(want) {
		t.Fatalf("line %q, want %q", lines, want)
	}
	// NaN has no JSON form: the line is skipped (and counted), not garbled.
	nan, _ := toRec(&pipeline.Event{Fields: map[string]any{"x": math.NaN()}})
	lines = nil
	toLine(context.Background(), nan, func(s string) { lines = append(lines, s) })
	if len(lines) != 0 {
		t.Fatalf("NaN line %q, want none", lines)
	}
}

// FuzzDecodeRec: elements come back from runners as bytes; corrupt bytes
// give an error, never a panic, and what decodes re-encodes the same.
func FuzzDecodeRec(f *testing.F) {
	r, _ := toRec(&pipeline.Event{Key: "k", Time: 1, Offset: 2, Topic: "t", Fields: map[string]any{"a": 1.5, "b": "x"}})
	f.Add(encodeRec(r))
	f.Add(encodeRec(Rec{}))
	f.Add([]byte{recVersion, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRec(b)
		if err != nil {
			return
		}
		if _, err := toEvent(r); err != nil {
			return
		}
		r2, err := decodeRec(encodeRec(r))
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding %+v: %+v, %v", r, r2, err)
		}
	})
}

// TestLatenessScan checks the pruned lateness pass (blockSpanFn, markFn,
// lateFn, splitFn as a runner would wire them) against the definition:
// each event's watermark is the largest event time of all events up to
// and including it in log order, minus allowedLateness. Inputs in order,
// slightly out of order, and with events far behind, over several blocks.
func TestLatenessScan(t *testing.T) {
	spec := func(window string) []byte {
		plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: t}}\n  steps:\n    - window: "+window+"\n    - aggregate: {n: count()}\n  sinks: [{file: {path: o}}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		p := plans[0]
		b, err := json.Marshal(pipeline.Pipeline{APIVersion: pipeline.APIVersion, Kind: pipeline.Kind,
			Metadata: pipeline.ObjectMeta{Name: p.Name}, Spec: p.Spec})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name, window     string
		disorder, behind time.Duration
	}{
		{"in order", "{tumbling: 10s, allowedLateness: 2s}", 0, 0},
		{"disorder within lateness", "{tumbling: 10s, allowedLateness: 2s}", time.Second, 0},
		{"disorder beyond lateness", "{tumbling: 10s}", 3 * time.Second, 0},
		{"far behind", "{tumbling: 10s, allowedLateness: 1s}", 500 * time.Millisecond, 5 * time.Minute},
		{"sliding", "{sliding: {size: 10s, every: 2s}, allowedLateness: 1s}", 4 * time.Second, time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			var recs []Rec
			for i := range 5 * BlockSize {
				ts := int64(i) * int64(time.Millisecond)
				if c.disorder > 0 {
					ts -= rng.Int64N(int64(c.disorder))
				}
				if c.behind > 0 && rng.IntN(50) == 0 {
					ts -= int64(c.behind)
				}
				recs = append(recs, Rec{Offset: int64(i + 1), Time: ts})
			}
			// Bundles in any order, as a runner may split them.
			rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			lf := &lateFn{Spec: spec(c.window)}
			if err := lf.Setup(); err != nil {
				t.Fatal(err)
			}

			// Definition.
			want := map[int64]int64{}
			sorted := slices.Clone(recs)
			slices.SortFunc(sorted, func(a, b Rec) int { return cmpInt(a.Offset, b.Offset) })
			m := int64(math.MinInt64)
			for _, r := range sorted {
				m = max(m, r.Time)
				wm := lf.watermark(m)
				switch {
				case lf.isLate(r.Time, wm):
					want[r.Offset] = math.MaxInt64
				case lf.firstEnd(r.Time) <= wm:
					want[r.Offset] = wm
				}
			}

			// The pass, in bundles of 1,000 events.
			spans := map[int64]span{}
			for i := 0; i < len(recs); i += 1000 {
				bf := &blockSpanFn{}
				for _, r := range recs[i:min(i+1000, len(recs))] {
					bf.ProcessElement(r, nil)
				}
				bf.FinishBundle(func(b int64, sp span) {
					if old, ok := spans[b]; ok {
						sp = mergeSpan(old, sp)
					}
					spans[b] = sp
				})
			}
			side := func() func(*int64, *span) bool {
				var ks []int64
				for k := range spans {
					ks = append(ks, k)
				}
				return func(b *int64, sp *span) bool {
					if len(ks) == 0 {
						return false
					}
					*b, *sp, ks = ks[0], spans[ks[0]], ks[1:]
					return true
				}
			}
			mf := &markFn{lateFn{Spec: lf.Spec}}
			if err := mf.Setup(); err != nil {
				t.Fatal(err)
			}
			groups := map[int64][]mark{}
			for _, r := range recs {
				off, ts := offsetTime(r)
				mf.ProcessElement(off, ts, side(), func(b int64, mk mark) { groups[b] = append(groups[b], mk) })
			}
			got := map[int64]int64{}
			marked := 0
			for b, mks := range groups {
				marked += len(mks)
				lf.ProcessElement(context.Background(), b, func(mk *mark) bool {
					if len(mks) == 0 {
						return false
					}
					*mk, mks = mks[0], mks[1:]
					return true
				}, side(), func(off, wm int64) { got[off] = wm })
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d decisions, want %d", len(got), len(want))
			}
			t.Logf("%d events, %d marked for the scan, %d late or partly late", len(recs), marked, len(want))
			if c.disorder == 0 && c.behind == 0 && marked > 0 {
				t.Errorf("in-order input, blocks spanning less than allowedLateness: %d events marked, want none", marked)
			}
		})
	}
}
