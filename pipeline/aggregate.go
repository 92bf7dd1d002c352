package pipeline

import (
	"fmt"
	"strings"
)

// AggregateFuncs lists the aggregate functions, in the order the docs show them.
var aggregateFuncs = []string{"count", "sum", "avg", "min", "max", "first", "last", "stddev",
	"distinct_count", "median", "p50", "p90", "p95", "p99"}

// AggregateFuncs returns the names of the aggregate functions.
func AggregateFuncs() []string { return append([]string(nil), aggregateFuncs...) }

// ParseAggregate splits an aggregate entry such as "avg(temperature)" or
// "count()" into the function name and its argument expression (empty for
// count()). The argument is not compiled here.
func ParseAggregate(src string) (fn, arg string, err error) {
	s := strings.TrimSpace(src)
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return "", "", fmt.Errorf("%q is not a function call; write e.g. avg(temperature) or count()", src)
	}
	fn = strings.TrimSpace(s[:open])
	arg = strings.TrimSpace(s[open+1 : len(s)-1])
	known := false
	for _, f := range aggregateFuncs {
		if f == fn {
			known = true
		}
	}
	if !known {
		return "", "", fmt.Errorf("unknown aggregate function %q; known: %s", fn, strings.Join(aggregateFuncs, ", "))
	}
	if fn == "count" && arg != "" {
		// count(x) counts events where x is not nil.
		return fn, arg, nil
	}
	if fn != "count" && arg == "" {
		return "", "", fmt.Errorf("%s() needs an argument, e.g. %s(temperature)", fn, fn)
	}
	return fn, arg, nil
}

// AggregateSample returns a value of the type the function produces, for
// typing expressions downstream of an aggregate step.
func AggregateSample(fn string) any {
	switch fn {
	case "count", "distinct_count":
		return int64(0)
	case "first", "last":
		return AnyValue()
	default:
		return float64(0)
	}
}

// AnyValue is a Schema entry for a field whose type is not known in advance
// (first/last of a field, map results): any use type-checks, and a wrong
// type is a runtime error on the event.
func AnyValue() any {
	var a any
	return &a
}
