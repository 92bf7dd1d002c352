package pipeline

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
)

// Reproduction 5: conversions at each unit boundary and at the int64
// limits either give the exact time or an error; none wraps around.
func TestEventTimeNanosBounds(t *testing.T) {
	const maxSec int64 = math.MaxInt64 / 1_000_000_000 // 9223372036: 2262-04-11
	for _, tc := range []struct {
		in   any
		want int64 // 0: an error is expected
	}{
		// seconds: below 1e11, but only up to 2262 fits.
		{maxSec, maxSec * 1e9},
		{maxSec + 1, 0},
		{-maxSec, -maxSec * 1e9},
		{-maxSec - 1, 0},
		{float64(maxSec) + 0.5, maxSec*1e9 + 5e8},
		{5e10, 0},               // was 1800-10-10
		{int64(20242804204), 0}, // year 2611: wrapped to now+30min
		{float64(99_999_999_999), 0},
		// milliseconds: from 1e11.
		{int64(1e11), 1e11 * 1e6},
		{float64(1e11), 1e11 * 1e6},
		{int64(9_223_372_036_854), 9_223_372_036_854 * 1e6},
		{int64(9_223_372_036_855), 0}, // ms past 2262
		{int64(1e14 - 1), 0},
		// microseconds: from 1e14.
		{int64(1e14), 1e14 * 1e3},
		{int64(9_223_372_036_854_775), 9_223_372_036_854_775 * 1e3},
		{int64(9_223_372_036_854_776), 0},
		{int64(1e17 - 1), 0},
		// nanoseconds: from 1e17 to the int64 limits.
		{int64(1e17), 1e17},
		{int64(math.MaxInt64), math.MaxInt64},
		{int64(math.MinInt64), math.MinInt64},
		{9.3e18, 0}, // was 1677
		{-9.3e18, 0},
		{math.Inf(1), 0},
		{math.NaN(), 0},
		{json.Number("9223372036854775807"), math.MaxInt64},
		{json.Number("9223372036854775808"), 0},
		{"9223372037", 0},
		{"2262-04-11T23:47:16Z", time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC).UnixNano()},
		{"2263-01-01T00:00:00Z", 0},
		{"1600-01-01T00:00:00Z", 0},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 0},
	} {
		got, err := EventTimeNanos(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("EventTimeNanos(%v) = %d (%s); want an out-of-range error", tc.in, got, time.Unix(0, got).UTC())
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("EventTimeNanos(%v) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// FuzzEventTimeNanos: whatever a device sends, the conversion either fails or
// gives a time that int64 nanoseconds hold and that agrees with the unit
// chosen by magnitude (no wrap-around).
func FuzzEventTimeNanos(f *testing.F) {
	for _, s := range []string{"0", "1700000000", "1700000000123", "9223372036", "9223372037", "5e10", "20242804204",
		"9.3e18", "-9.3e18", "9223372036854775807", "-9223372036854775808", "1e308", "NaN", "2262-04-11T23:47:16Z",
		"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1.5", "-1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, json.Number(s)} {
			got, err := EventTimeNanos(v)
			if err != nil {
				continue
			}
			tm := time.Unix(0, got)
			if tm.Before(minEventTime) || tm.After(maxEventTime) {
				t.Fatalf("EventTimeNanos(%q) = %d outside the range", s, got)
			}
			if f, perr := strconv.ParseFloat(s, 64); perr == nil && !math.IsInf(f, 0) {
				unit, _ := unitOf(math.Abs(f))
				want := f * float64(unit)
				if math.Abs(float64(got)-want) > math.Max(1, math.Abs(want)*1e-9) {
					t.Fatalf("EventTimeNanos(%q) = %d, want about %g", s, got, want)
				}
			}
		}
	})
}
