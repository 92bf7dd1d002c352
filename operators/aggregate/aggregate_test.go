package aggregate

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		src     string
		fn      Func
		arg     string // "" = no argument
		field   string
		wantErr string
	}{
		{src: "count()", fn: Count},
		{src: " count( ) ", fn: Count},
		{src: "count(temperature)", fn: Count, arg: "temperature", field: "temperature"},
		{src: "avg(temperature)", fn: Avg, arg: "temperature", field: "temperature"},
		{src: "max(t * 9 / 5 + 32)", fn: Max, arg: "t * 9 / 5 + 32"},
		{src: "p99(latency.ms)", fn: P99, arg: "latency.ms"},
		{src: "distinct_count(device)", fn: DistinctCount, arg: "device", field: "device"},
		{src: "median(x)", fn: Median, arg: "x", field: "x"},
		{src: "first(true)", fn: First, arg: "true"},
		{src: "mean(x)", wantErr: `unknown aggregate function "mean"; known: count, sum, avg, min, max, first, last, stddev, distinct_count, median, p50, p90, p95, p99`},
		{src: "avg()", wantErr: "avg() needs an argument"},
		{src: "avg", wantErr: "not a function call"},
		{src: "avg(x +)", wantErr: "aggregate out: avg(x +)"},
		{src: "", wantErr: "not a function call"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			s, err := Parse("out", tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotArg := ""
			if s.Arg != nil {
				gotArg = s.Arg.Source
			}
			if s.Name != "out" || s.Func != tc.fn || gotArg != tc.arg || s.Field != tc.field {
				t.Errorf("got %+v (arg %q)", s, gotArg)
			}
		})
	}
}

func TestParseAllSortedAndSchema(t *testing.T) {
	specs, err := ParseAll(map[string]string{"z": "count()", "a": "avg(t)", "m": "first(d)", "d": "distinct_count(d)"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"a", "d", "m", "z"}) {
		t.Errorf("order %v", names)
	}
	sch := OutputSchema(specs)
	if _, ok := sch["a"].(float64); !ok {
		t.Errorf("a: %T", sch["a"])
	}
	if _, ok := sch["z"].(int64); !ok {
		t.Errorf("z: %T", sch["z"])
	}
	if _, ok := sch["d"].(int64); !ok {
		t.Errorf("d: %T", sch["d"])
	}
	if _, ok := sch["m"]; !ok {
		t.Errorf("m missing")
	}
	if _, err := ParseAll(nil); err == nil {
		t.Error("empty aggregate accepted")
	}
}

func TestToFloat(t *testing.T) {
	tests := []struct {
		v    any
		want float64
		ok   bool
	}{
		{1.5, 1.5, true}, {float32(2.5), 2.5, true}, {int(-3), -3, true}, {int8(4), 4, true}, {int16(5), 5, true},
		{int32(6), 6, true}, {int64(7), 7, true}, {uint(8), 8, true}, {uint8(9), 9, true}, {uint16(10), 10, true},
		{uint32(11), 11, true}, {uint64(12), 12, true}, {json.Number("13.5"), 13.5, true},
		{json.Number("x"), 0, false}, {"14", 0, false}, {true, 0, false}, {nil, 0, false},
		{math.NaN(), 0, false}, {math.Inf(1), 0, false}, {[]any{1}, 0, false},
	}
	for _, tc := range tests {
		got, ok := ToFloat(tc.v)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ToFloat(%#v) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// item is one input value with its event time.
type item struct {
	v any
	t int64
}

func fill(f Func, items []item) *Acc {
	a := &Acc{}
	for _, it := range items {
		if it.v == nil {
			continue
		}
		if f.Numeric() {
			x, _ := ToFloat(it.v)
			a.AddNumber(f, x)
		} else {
			a.AddValue(f, it.v, it.t)
		}
	}
	return a
}

func TestExactValues(t *testing.T) {
	nums := []item{{3.0, 5}, {1, 1}, {int64(4), 2}, {1.0, 9}, {5.0, 3}, {9.0, 0}, {2.0, 7}, {6.0, 7}}
	vals := []item{{"b", 5}, {"a", 1}, {1.0, 2}, {int64(1), 4}, {"b", 3}, {"z", 0}, {true, 7}, {"late-tie", 7}}
	tests := []struct {
		f     Func
		items []item
		want  any
	}{
		{Count, vals, int64(8)},
		{Sum, nums, 31.0},
		{Avg, nums, 3.875},
		{Min, nums, 1.0},
		{Max, nums, 9.0},
		{Stddev, nums, math.Sqrt((0.765625 + 8.265625 + 0.015625 + 8.265625 + 1.265625 + 26.265625 + 3.515625 + 4.515625) / 8)},
		{Median, nums, 3.5}, // sorted 1 1 2 3 4 5 6 9
		{P50, nums, 3.5},
		{P90, nums, 6.9},                // rank 6.3: 6 + 0.3*(9-6)
		{P95, nums, 7.95},               // rank 6.65
		{P99, nums, 8.79},               // rank 6.93
		{First, vals, "z"},              // earliest event time
		{Last, vals, "late-tie"},        // latest time, ties to the last arrival
		{DistinctCount, vals, int64(6)}, // b a 1 z true late-tie: 1.0 and int64(1) are one value
		{Sum, nil, nil},
		{First, nil, nil},
		{DistinctCount, nil, int64(0)},
	}
	for _, tc := range tests {
		got := fill(tc.f, tc.items).Result(tc.f)
		if x, ok := got.(float64); ok {
			if w, ok := tc.want.(float64); ok && math.Abs(x-w) < 1e-9 {
				continue
			}
		}
		if got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.f, got, tc.want)
		}
	}
}

// randomValues mixes distributions, signs and zeros.
func randomValues(rng *rand.Rand, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		switch rng.IntN(4) {
		case 0:
			xs[i] = rng.NormFloat64()*5 + 20
		case 1:
			xs[i] = math.Exp(rng.NormFloat64() * 3) // heavy tail
		case 2:
			xs[i] = -rng.ExpFloat64() * 100
		default:
			xs[i] = float64(rng.IntN(3)) // zeros and small integers
		}
	}
	return xs
}

func exactQuantile(sorted []float64, p float64) float64 {
	r := p * float64(len(sorted)-1)
	lo := math.Floor(r)
	a := sorted[int(lo)]
	if r == lo {
		return a
	}
	return a + (sorted[int(lo)+1]-a)*(r-lo)
}

func TestSketchErrorBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{33, 1000, 100000} {
		xs := randomValues(rng, n)
		// Two halves merged must give the same sketch as one.
		a, b, whole := &Acc{}, &Acc{}, &Acc{}
		for i, x := range xs {
			whole.AddNumber(P99, x)
			if i%2 == 0 {
				a.AddNumber(P99, x)
			} else {
				b.AddNumber(P99, x)
			}
		}
		a.Merge(P99, b)
		sorted := slices.Clone(xs)
		slices.Sort(sorted)
		for _, p := range []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
			want := exactQuantile(sorted, p)
			for name, acc := range map[string]*Acc{"single": whole, "merged": a} {
				got, _ := acc.q.quantile(p)
				// Interpolating between two estimates of one sign keeps the
				// relative bound; across zero the bound is relative to the
				// larger neighbour.
				r := p * float64(n-1)
				scale := math.Max(math.Abs(sorted[int(math.Floor(r))]), math.Abs(sorted[int(math.Ceil(r))]))
				if math.Abs(got-want) > RelativeAccuracy*scale*(1+1e-9) {
					t.Errorf("n=%d %s p%v: got %v, want %v ± %.2f%%", n, name, p*100, got, want, RelativeAccuracy*100)
				}
			}
		}
	}
}

func TestSketchBucketCap(t *testing.T) {
	a := &Acc{}
	for i := -300; i <= 300; i++ { // magnitudes 1e-300 .. 1e300: far more than 2048 buckets
		a.AddNumber(P50, math.Pow(10, float64(i)))
	}
	if len(a.q.pos.counts) > maxBuckets {
		t.Fatalf("%d buckets", len(a.q.pos.counts))
	}
	got, _ := a.Float(P99) // high quantiles keep their accuracy
	want := math.Pow(10, 294)
	if math.Abs(got-want) > want*RelativeAccuracy {
		t.Errorf("p99 = %g, want %g", got, want)
	}
}

func TestDistinctCount(t *testing.T) {
	for _, n := range []int{10, 64, 65, 1000, 100000} {
		a, b := &Acc{}, &Acc{}
		for i := 0; i < n; i++ {
			v := "device-" + strconv.Itoa(i)
			a.AddValue(DistinctCount, v, 0)
			a.AddValue(DistinctCount, v, 0) // duplicates do not count
			if i%3 == 0 {
				b.AddValue(DistinctCount, v, 0)
			}
		}
		b.Merge(DistinctCount, a)
		for name, acc := range map[string]*Acc{"single": a, "merged": b} {
			got := acc.Result(DistinctCount).(int64)
			tol := 0.0
			if n > exactDistinct {
				tol = 3 * DistinctStdError * float64(n)
			}
			if math.Abs(float64(got-int64(n))) > tol {
				t.Errorf("n=%d %s: got %d (tolerance %.0f)", n, name, got, tol)
			}
		}
	}
}

// TestMergeEqualsSequential checks every function: splitting the input in
// two accumulators and merging gives the result of one accumulator.
func TestMergeEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for f := Count; f <= P99; f++ {
		for _, n := range []int{1, 5, 40, 300} {
			var items []item
			for i := 0; i < n; i++ {
				var v any = math.Round(rng.NormFloat64()*1000) / 10
				if !f.Numeric() && i%2 == 0 {
					v = "s" + strconv.Itoa(rng.IntN(90))
				}
				items = append(items, item{v, rng.Int64N(50)})
			}
			whole := fill(f, items)
			cut := rng.IntN(n + 1)
			a, b := fill(f, items[:cut]), fill(f, items[cut:])
			a.Merge(f, b)
			gw, ga := whole.Result(f), a.Result(f)
			if x, ok := gw.(float64); ok {
				y := ga.(float64)
				tol := 1e-9 * math.Max(1, math.Abs(x))
				if _, q := f.Quantile(); q && n > exactSize {
					tol = 0.02 * math.Max(1, math.Abs(x)) // both are sketch estimates
				}
				if math.Abs(x-y) > tol {
					t.Errorf("%s n=%d: merged %v, sequential %v", f, n, y, x)
				}
				continue
			}
			if f == First || f == Last {
				// Ties in time: the value depends on which side came first;
				// check the time instead.
				if whole.valTime != a.valTime {
					t.Errorf("%s n=%d: time %d vs %d", f, n, a.valTime, whole.valTime)
				}
				continue
			}
			if gw != ga {
				t.Errorf("%s n=%d: merged %v, sequential %v", f, n, ga, gw)
			}
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	values := []any{nil, true, false, 1.5, int64(-3), uint64(7), "s", json.Number("1e3"), map[string]any{"a": 1.0}, []any{"x"}}
	for f := Count; f <= P99; f++ {
		for _, n := range []int{0, 3, 40, 200} {
			a := &Acc{}
			for i := 0; i < n; i++ {
				if f.Numeric() {
					a.AddNumber(f, rng.NormFloat64()*100)
				} else {
					a.AddValue(f, values[1+rng.IntN(len(values)-1)], rng.Int64N(100))
					if f == DistinctCount {
						a.AddValue(f, strconv.Itoa(i), 0)
					}
				}
			}
			enc := a.AppendBinary(f, []byte{0xAA})
			var b Acc
			rest, err := b.DecodeBinary(f, append(enc[1:], 0xBB))
			if err != nil {
				t.Fatalf("%s n=%d: %v", f, n, err)
			}
			if !bytes.Equal(rest, []byte{0xBB}) {
				t.Errorf("%s n=%d: rest %x", f, n, rest)
			}
			if again := b.AppendBinary(f, []byte{0xAA}); !bytes.Equal(again, enc) {
				t.Errorf("%s n=%d: re-encoding differs", f, n)
			}
			ra, rb := a.Result(f), b.Result(f)
			ja, _ := json.Marshal(ra)
			jb, _ := json.Marshal(rb)
			if !bytes.Equal(ja, jb) {
				t.Errorf("%s n=%d: result %s after decode, %s before", f, n, jb, ja)
			}
		}
	}
	for _, v := range values[:8] { // these keep their Go type
		b := AppendValue(nil, v)
		r := NewReader(b)
		if got := r.Value(); got != v || r.Err() != nil || len(r.Rest()) != 0 {
			t.Errorf("value %#v came back as %#v (%v)", v, got, r.Err())
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"count()", "avg(temperature)", "max(t * 9 / 5 + 32)", "p99(a.b)", "avg(", "(", ")", "x()", "count(\"(\")", "distinct_count(f(x))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse("out", src)
		if err != nil {
			if s != (Spec{}) {
				t.Fatalf("error %v with spec %+v", err, s)
			}
			return
		}
		if !s.Func.valid() || (s.Arg == nil) != (s.Func == Count && s.Arg == nil) {
			t.Fatalf("bad spec %+v for %q", s, src)
		}
		if s.Func != Count && s.Arg == nil {
			t.Fatalf("%s without argument from %q", s.Func, src)
		}
		// The spec prints back to something that parses to the same spec.
		s2, err := Parse("out", s.String())
		if err != nil || s2.Func != s.Func || s2.Field != s.Field {
			t.Fatalf("%q -> %q -> %+v, %v", src, s.String(), s2, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for fn := Count; fn <= P99; fn++ {
		a := &Acc{}
		for i := 0; i < 70; i++ {
			if fn.Numeric() {
				a.AddNumber(fn, float64(i))
			} else {
				a.AddValue(fn, strconv.Itoa(i), int64(i))
			}
		}
		f.Add(uint8(fn), a.AppendBinary(fn, nil))
	}
	f.Fuzz(func(t *testing.T, fn uint8, data []byte) {
		var a Acc
		if _, err := a.DecodeBinary(Func(fn), data); err != nil {
			return
		}
		_ = a.Result(Func(fn))
		var b Acc
		b.Merge(Func(fn), &a)
		b.AddNumber(Func(fn), 1)
		_ = b.Result(Func(fn))
	})
}

func BenchmarkAddAvg(b *testing.B) {
	var a Acc
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.AddNumber(Avg, float64(i&1023))
	}
}

func BenchmarkAddP99(b *testing.B) {
	var a Acc
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.AddNumber(P99, float64(i&1023)+0.5)
	}
}

func BenchmarkAddDistinct(b *testing.B) {
	keys := make([]any, 1024)
	for i := range keys {
		keys[i] = "device-" + strconv.Itoa(i)
	}
	var a Acc
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.AddValue(DistinctCount, keys[i&1023], 0)
	}
}
