package main

import (
	"runtime"
	"strings"
	"testing"
)

// TestApplyCPUs: cpus sets GOMAXPROCS, 0 leaves the runtime's choice and a
// negative count is refused.
func TestApplyCPUs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	if err := applyCPUs(0); err != nil || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("applyCPUs(0): %v, GOMAXPROCS %d, want %d unchanged", err, runtime.GOMAXPROCS(0), before)
	}
	if err := applyCPUs(1); err != nil || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("applyCPUs(1): %v, GOMAXPROCS %d, want 1", err, runtime.GOMAXPROCS(0))
	}
	if err := applyCPUs(-2); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("applyCPUs(-2) = %v, want an error saying it is negative", err)
	}
}
