// Package aggregate owns Eddy's aggregate functions: parsing an aggregate
// entry such as "avg(temperature)" into a Spec, and the accumulators that
// fold a window's values into one result with bounded memory, merge with each
// other (session merges, sliding panes) and encode to bytes for checkpoints.
//
// Functions and their memory per window and key:
//
//	count, sum, avg, min, max, stddev, first, last   O(1)
//	median, p50, p90, p95, p99                        exact up to 32 values, then a
//	                                                  log-bucket sketch (DDSketch) with
//	                                                  1% relative error, at most 2048
//	                                                  buckets per sign (<= 32 KiB)
//	distinct_count                                    exact up to 64 distinct values, then
//	                                                  HyperLogLog (2^12 registers, 4 KiB,
//	                                                  standard error 1.625%)
//
// Semantics, as a SQL user would expect them:
//   - A nil value (a missing field) is ignored by every function; count()
//     without an argument counts events, count(x) counts events where x is
//     not nil.
//   - Numeric functions (sum, avg, min, max, stddev, median, pNN) accept any
//     Go number and json.Number; anything else (a string, a bool, NaN, ±Inf)
//     is an error for that event, which the caller counts and drops.
//   - first and last are by event time (ties: arrival order), so that
//     out-of-order arrival and merging give the same answer as in-order input.
//   - stddev is the population standard deviation.
//   - Quantiles interpolate linearly between the two nearest ranks
//     (numpy's default), rank = q*(n-1).
//   - A numeric result over zero values is nil (JSON null), not 0.
//
// This package does not group events into windows, keep per-key state or
// read clocks; operators/window does that and calls in here.
package aggregate

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"

	"github.com/eddy-edge/eddy/pipeline"
)

// Func identifies an aggregate function.
type Func uint8

// The aggregate functions. The zero Func is invalid.
const (
	Count Func = iota + 1
	Sum
	Avg
	Min
	Max
	First
	Last
	Stddev
	DistinctCount
	Median
	P50
	P90
	P95
	P99
)

var funcNames = [...]string{
	Count: "count", Sum: "sum", Avg: "avg", Min: "min", Max: "max", First: "first", Last: "last",
	Stddev: "stddev", DistinctCount: "distinct_count", Median: "median",
	P50: "p50", P90: "p90", P95: "p95", P99: "p99",
}

// String returns the function's name as written in a pipeline.
func (f Func) String() string {
	if f == 0 || int(f) >= len(funcNames) {
		return "Func(" + strconv.Itoa(int(f)) + ")"
	}
	return funcNames[f]
}

// Numeric reports whether the function needs numeric input.
func (f Func) Numeric() bool {
	switch f {
	case Sum, Avg, Min, Max, Stddev, Median, P50, P90, P95, P99:
		return true
	}
	return false
}

// Quantile returns the quantile a median/pNN function computes, and false
// for the other functions.
func (f Func) Quantile() (float64, bool) {
	switch f {
	case Median, P50:
		return 0.5, true
	case P90:
		return 0.9, true
	case P95:
		return 0.95, true
	case P99:
		return 0.99, true
	}
	return 0, false
}

func (f Func) valid() bool { return f >= Count && f <= P99 }

// FuncByName returns the function called name, and false if there is none.
func FuncByName(name string) (Func, bool) {
	for f := Count; f <= P99; f++ {
		if funcNames[f] == name {
			return f, true
		}
	}
	return 0, false
}

// Spec is one parsed aggregate entry, e.g. avg_t: "avg(temperature)".
type Spec struct {
	// Name is the output field.
	Name string
	// Func is the aggregate function.
	Func Func
	// Arg is the compiled argument expression; nil for count().
	Arg *pipeline.Program
	// Field is set when the argument is a plain field name: the value is
	// then read straight from the event's fields, without running Arg.
	Field string
}

// String gives the entry back in pipeline syntax.
func (s Spec) String() string {
	arg := ""
	if s.Arg != nil {
		arg = s.Arg.Source
	}
	return s.Func.String() + "(" + arg + ")"
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse parses the aggregate entry src ("fn(expr)" or "count()") that
// produces the output field name. The argument is compiled with no schema
// (any field name may be used; a missing field is nil and ignored).
func Parse(name, src string) (Spec, error) {
	if name == "" {
		return Spec{}, fmt.Errorf("aggregate %q: the output field needs a name, e.g. avg_t: %q", src, "avg(temperature)")
	}
	fn, arg, err := pipeline.ParseAggregate(src)
	if err != nil {
		return Spec{}, fmt.Errorf("aggregate %s: %w", name, err)
	}
	f, ok := FuncByName(fn)
	if !ok { // pipeline and this package disagree: a bug, reported rather than panicking
		return Spec{}, fmt.Errorf("aggregate %s: function %q is known to the compiler but not to operators/aggregate; the two lists must match", name, fn)
	}
	s := Spec{Name: name, Func: f}
	if arg == "" {
		return s, nil
	}
	p, err := pipeline.CompileExpr(arg, nil)
	if err != nil {
		return Spec{}, fmt.Errorf("aggregate %s: %s(%s): %w", name, fn, arg, err)
	}
	s.Arg = p
	if identRE.MatchString(arg) && arg != "true" && arg != "false" && arg != "nil" {
		s.Field = arg
	}
	return s, nil
}

// ParseAll parses a whole aggregate step. The specs come back sorted by
// name, so that output and snapshots do not depend on map order. The error,
// if any, is the one of the first bad entry in name order.
func ParseAll(entries map[string]string) ([]Spec, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("aggregate: no entries; write name: function(expression) pairs, e.g. aggregate: {avg_t: \"avg(temperature)\"}")
	}
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	specs := make([]Spec, 0, len(names))
	for _, n := range names {
		s, err := Parse(n, entries[n])
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// OutputSchema returns the type sample of each spec's output field (int64
// for count and distinct_count, float64 for numeric results, an any-typed
// sample for first and last), for strict expression typing downstream.
func OutputSchema(specs []Spec) pipeline.Schema {
	s := make(pipeline.Schema, len(specs))
	for _, sp := range specs {
		s[sp.Name] = pipeline.AggregateSample(sp.Func.String())
	}
	return s
}

// ToFloat converts a Go number or json.Number to float64. It reports false
// for any other type, and for NaN and ±Inf, which no aggregate can use.
func ToFloat(v any) (float64, bool) {
	var x float64
	switch n := v.(type) {
	case float64:
		x = n
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float32:
		x = float64(n)
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return 0, false
		}
		x = f
	default:
		return 0, false
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}
