package pipeline

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestEventTimeNanos checks each unit boundary and the int64 limits: a
// value is either converted exactly or refused, never wrapped.
func TestEventTimeNanos(t *testing.T) {
	ok := []struct {
		in   any
		want int64
	}{
		{float64(1_764_496_800), 1_764_496_800 * 1e9},             // seconds
		{1_764_496_800.5, 1_764_496_800_500_000_000},              // fractional seconds
		{float64(1_764_496_800_123), 1_764_496_800_123 * 1e6},     // milliseconds
		{int64(1_764_496_800_123_456), 1_764_496_800_123_456_000}, // microseconds
		{int64(1_764_496_800_123_456_789), 1_764_496_800_123_456_789},
		{"2026-11-30T10:00:00.5Z", time.Date(2026, 11, 30, 10, 0, 0, 5e8, time.UTC).UnixNano()},
		{"1764496800", 1_764_496_800 * 1e9},
		{int64(math.MaxInt64), math.MaxInt64},
		{int64(9_223_372_036), 9_223_372_036 * 1e9}, // the last whole second int64 holds
	}
	for _, c := range ok {
		got, err := EventTimeNanos(c.in)
		if err != nil || got != c.want {
			t.Errorf("EventTimeNanos(%v) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []any{
		float64(5e10),           // seconds in year 3554: beyond int64 ns
		int64(20_242_804_204),   // the year-2611 seconds value that once wrapped to now+30min
		int64(99_999_999_999),   // largest "seconds" magnitude
		int64(9_223_372_037),    // one second past the int64 limit
		float64(9.3e18),         // ns beyond int64
		math.Inf(1), math.NaN(), // not times
		float64(-5e10),
		"3000-01-01T00:00:00Z", // RFC 3339 beyond int64 ns
		nil, true,
	}
	for _, v := range bad {
		if got, err := EventTimeNanos(v); err == nil {
			t.Errorf("EventTimeNanos(%v) = %d (%s), want an error", v, got, time.Unix(0, got).UTC())
		} else if f, ok := v.(float64); ok && !math.IsNaN(f) && !math.IsInf(f, 0) && !strings.Contains(err.Error(), "outside the representable times") {
			t.Errorf("EventTimeNanos(%v): %v does not say the range", v, err)
		}
	}
}
