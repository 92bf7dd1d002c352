package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event times are int64 nanoseconds since 1970, which hold
// 1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z. A value outside that range
// is refused with an error (the engine then uses the arrival time and
// counts the error on the source) instead of wrapping around: a seconds
// value of 5e10 once became the year 1800, and 20242804204 (year 2611)
// wrapped to 30 minutes from now, passing the future bound.
var (
	minEventTime = time.Unix(0, math.MinInt64).UTC()
	maxEventTime = time.Unix(0, math.MaxInt64).UTC()
)

// EventTimeNanos converts the value of an eventTime expression to unix
// nanoseconds: numbers are unix seconds (magnitude below 1e11),
// milliseconds (below 1e14), microseconds (below 1e17) or nanoseconds;
// strings are RFC 3339 or such numbers. A value that is not finite, or whose
// time lies outside what int64 nanoseconds hold (1677-09-21 .. 2262-04-11),
// is an error, never a wrapped-around time. The edge engine and the Beam
// translation both use it.
func EventTimeNanos(v any) (int64, error) {
	switch x := v.(type) {
	case float64:
		return floatUnixNano(x)
	case int:
		return intUnixNano(int64(x))
	case int64:
		return intUnixNano(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return intUnixNano(i)
		}
		f, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("%s is not a number in range", x)
		}
		return floatUnixNano(f)
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return timeUnixNano(t)
		}
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return intUnixNano(i)
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return floatUnixNano(f)
		}
		return 0, fmt.Errorf("%q is not an RFC 3339 time or a unix timestamp", x)
	case time.Time:
		return timeUnixNano(x)
	case nil:
		return 0, fmt.Errorf("is nil (field missing?)")
	default:
		return 0, fmt.Errorf("%T %v is not a time", v, v)
	}
}

// unitOf returns the nanoseconds per unit of a unix timestamp of magnitude
// a, and the unit's name.
func unitOf(a float64) (int64, string) {
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

func outOfRange(v any, unit string) error {
	return fmt.Errorf("%v read as unix %s is outside the representable times %s .. %s",
		v, unit, minEventTime.Format(time.RFC3339), maxEventTime.Format(time.RFC3339))
}

func intUnixNano(i int64) (int64, error) {
	// The magnitude as an integer: float64 would round 1e17-1 up to 1e17
	// and pick the wrong unit.
	a := uint64(i)
	if i < 0 {
		a = -a
	}
	var unit int64 = 1
	name := "nanoseconds"
	switch {
	case a < 1e11:
		unit, name = 1e9, "seconds"
	case a < 1e14:
		unit, name = 1e6, "milliseconds"
	case a < 1e17:
		unit, name = 1e3, "microseconds"
	}
	if i > math.MaxInt64/unit || i < math.MinInt64/unit {
		return 0, outOfRange(i, name)
	}
	return i * unit, nil
}

func floatUnixNano(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v is not a time", f)
	}
	unit, name := unitOf(math.Abs(f))
	whole, frac := math.Modf(f)
	// int64 holds [-2^63, 2^63); both bounds are exact in float64. Below
	// 1e17 (every unit but nanoseconds) whole converts exactly.
	if whole >= 0x1p63 || whole < -0x1p63 {
		return 0, outOfRange(strconv.FormatFloat(f, 'g', -1, 64), name)
	}
	w := int64(whole)
	if w > math.MaxInt64/unit || w < math.MinInt64/unit {
		return 0, outOfRange(strconv.FormatFloat(f, 'g', -1, 64), name)
	}
	n := w * unit
	fr := int64(math.Round(frac * float64(unit)))
	if (fr > 0 && n > math.MaxInt64-fr) || (fr < 0 && n < math.MinInt64-fr) {
		return 0, outOfRange(strconv.FormatFloat(f, 'g', -1, 64), name)
	}
	return n + fr, nil
}

func timeUnixNano(t time.Time) (int64, error) {
	if t.Before(minEventTime) || t.After(maxEventTime) {
		return 0, fmt.Errorf("%s is outside the representable times %s .. %s", t.Format(time.RFC3339),
			minEventTime.Format(time.RFC3339), maxEventTime.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}
