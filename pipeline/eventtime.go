package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// EventTimeNanos converts the value of an eventTime expression to unix
// nanoseconds. Numbers are unix seconds (magnitude below 1e11),
// milliseconds (below 1e14), microseconds (below 1e17) or nanoseconds;
// strings are RFC 3339 or a number in one of those units. A value that is
// not finite, or whose time lies outside what int64 nanoseconds can hold
// (1677-09-21 to 2262-04-11), is an error, never a wrapped-around time.
func EventTimeNanos(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		return floatNanos(x)
	case int:
		return intNanos(int64(x))
	case int64:
		return intNanos(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return intNanos(i)
		}
		f, err := x.Float64()
		if err != nil {
			return 0, err
		}
		return floatNanos(f)
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			if t.Year() < 1678 || t.Year() > 2261 {
				return 0, fmt.Errorf("%q is outside the years 1678-2261 that event times can hold", x)
			}
			return t.UnixNano(), nil
		}
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return intNanos(i)
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return floatNanos(f)
		}
		return 0, fmt.Errorf("%q is not an RFC 3339 time or a unix timestamp", x)
	case time.Time:
		if x.Year() < 1678 || x.Year() > 2261 {
			return 0, fmt.Errorf("%v is outside the years 1678-2261 that event times can hold", x)
		}
		return x.UnixNano(), nil
	case nil:
		return 0, fmt.Errorf("is nil (field missing?)")
	default:
		return 0, fmt.Errorf("%T %v is not a time", v, v)
	}
}

// timeUnit returns the nanoseconds per unit of a unix timestamp of
// magnitude a, and the unit's name.
func timeUnit(a float64) (int64, string) {
	switch {
	case a < 1e11:
		return 1e9, "seconds"
	case a < 1e14:
		return 1e6, "milliseconds"
	case a < 1e17:
		return 1e3, "microseconds"
	}
	return 1, "nanoseconds"
}

func intNanos(i int64) (int64, error) {
	unit, name := timeUnit(math.Abs(float64(i)))
	if i > math.MaxInt64/unit || i < math.MinInt64/unit {
		return 0, outOfRange(float64(i), name)
	}
	return i * unit, nil
}

func floatNanos(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v is not a time", f)
	}
	unit, name := timeUnit(math.Abs(f))
	ns := f * float64(unit)
	// float64(MaxInt64) rounds up to 2^63, which does not fit: compare
	// with strict bounds.
	if ns >= math.MaxInt64 || ns < math.MinInt64 {
		return 0, outOfRange(f, name)
	}
	whole, frac := math.Modf(f)
	w, r := int64(whole)*unit, int64(math.Round(frac*float64(unit)))
	if (r > 0 && w > math.MaxInt64-r) || (r < 0 && w < math.MinInt64-r) {
		return 0, outOfRange(f, name)
	}
	return w + r, nil
}

func outOfRange(v float64, unit string) error {
	return fmt.Errorf("%v read as unix %s is outside the years 1678-2261 that event times can hold (a value in another unit?)", v, unit)
}
