package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// +kubebuilder:object:generate=true
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

// Duration is a time.Duration written as a Go duration string with a unit
// ("10s", "1m30s", "250ms") in YAML and JSON.
type Duration struct {
	time.Duration
}

// D makes a Duration.
func D(d time.Duration) Duration { return Duration{d} }

// DurationPtr makes a *Duration.
func DurationPtr(d time.Duration) *Duration { return &Duration{d} }

// ParseDuration parses s and explains what is wrong when it cannot.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Duration{}, fmt.Errorf("empty duration; use e.g. 10s")
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		if s == "0" {
			return Duration{}, nil
		}
		return Duration{}, fmt.Errorf("%q has no unit; use e.g. %ss (units: ms, s, m, h)", s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("%q is not a duration; use e.g. 10s, 1m30s or 250ms", s)
	}
	if d < 0 {
		return Duration{}, fmt.Errorf("%q is negative; durations must be >= 0", s)
	}
	return Duration{d}, nil
}

// String prints the duration in Go's format.
func (d Duration) String() string { return d.Duration.String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\", got %s", b)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalText reads a duration string (used by the YAML decoder).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
