package main

import (
	"runtime"
	"strings"
	"testing"
)

// TestApplyCPUs: cpus fixes GOMAXPROCS; 0 asks for the load governor when
// there is more than one core and GOMAXPROCS is not in the environment; a
// negative count is refused.
func TestApplyCPUs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(2)
	if govern, err := applyCPUs(0); err != nil || !govern || runtime.GOMAXPROCS(0) != 2 {
		t.Fatalf("applyCPUs(0) on 2 cores = %v, %v (GOMAXPROCS %d), want the governor and 2 unchanged", govern, err, runtime.GOMAXPROCS(0))
	}
	t.Setenv("GOMAXPROCS", "2")
	if govern, err := applyCPUs(0); err != nil || govern {
		t.Fatalf("applyCPUs(0) with GOMAXPROCS in the environment = %v, %v, want no governor", govern, err)
	}
	if govern, err := applyCPUs(1); err != nil || govern || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("applyCPUs(1) = %v, %v (GOMAXPROCS %d), want 1 and no governor", govern, err, runtime.GOMAXPROCS(0))
	}
	t.Setenv("GOMAXPROCS", "")
	if govern, err := applyCPUs(0); err != nil || govern {
		t.Fatalf("applyCPUs(0) on 1 core = %v, %v, want no governor", govern, err)
	}
	if _, err := applyCPUs(-2); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("applyCPUs(-2) = %v, want an error saying it is negative", err)
	}
}
