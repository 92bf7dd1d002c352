package main

import (
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/runner/budget"
)

// TestMemoryLimitDefault: without --memory-limit and GOMEMLIMIT the
// command uses the default budget and sets its runtime limit too; a
// configured budget is used and set; one below the minimum is refused.
func TestMemoryLimitDefault(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	for _, c := range []struct {
		configured budget.Size
		want       budget.Size
		err        string
	}{
		{0, budget.Default, ""},
		{32 << 20, 32 << 20, ""},
		{16 << 20, 0, "below the minimum"},
	} {
		got, set, err := memoryLimit(c.configured)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("memoryLimit(%d): error %v, want one saying %q", c.configured, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || !set {
			t.Errorf("memoryLimit(%d) = %d, set %v, %v; want %d, set true", c.configured, got, set, err, c.want)
		}
	}
}
