package procs

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// TestNext: up at once past UpAt of the current cores (to enough cores for
// the load, capped at Max), down one core only after Hold quiet intervals
// in a row, and a busy interval in between restarts the streak.
func TestNext(t *testing.T) {
	g := &Governor{Max: 4, Hold: 3}
	steps := []struct {
		busy float64
		want int
	}{
		{0.2, 1},
		{0.69, 1}, // below 0.7 of one core
		{0.75, 2}, // above: one more
		{0.9, 2},  // 0.45 per core
		{2.5, 4},  // a surge: straight to ceil(2.5/0.7) = 4
		{9, 4},    // never above Max
		{1.2, 4},  // quiet (< 0.5 × 3): 1
		{1.2, 4},  // 2
		{1.6, 4},  // not quiet: the streak restarts
		{1.2, 4},  // 1
		{1.2, 4},  // 2
		{1.2, 3},  // 3: one core fewer
		{0.4, 3},  // quiet for 3 → 2 (< 0.5 × 2): 1
		{0.4, 3},  // 2
		{0.4, 2},  // 3
		{0.55, 2}, // not < 0.5 × 1: the streak restarts
		{0.3, 2},
		{0.3, 2},
		{0.3, 1},
		{0.3, 1}, // never below one
	}
	for i, s := range steps {
		if got := g.Next(s.busy); got != s.want {
			t.Fatalf("step %d: Next(%v) = %d, want %d", i, s.busy, got, s.want)
		}
	}
}

// TestRun drives a Governor with a fake clock and a scripted CPU time: it
// starts at one core, follows the load, and gives back every core when its
// context ends.
func TestRun(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	const interval = 250 * time.Millisecond
	busy := []float64{0.1, 1.5, 1.5, 0.2, 0.2, 0.2}
	var (
		mu    sync.Mutex
		sets  []int
		calls int
		cpu   time.Duration
	)
	called := make(chan struct{}, 1)
	g := &Governor{
		Max: 2, Clock: clk, Interval: interval, Hold: 2,
		Usage: func() (time.Duration, error) {
			mu.Lock()
			defer mu.Unlock()
			if calls > 0 {
				cpu += time.Duration(busy[calls-1] * float64(interval))
			}
			calls++
			called <- struct{}{}
			return cpu, nil
		},
		Set: func(n int) { mu.Lock(); sets = append(sets, n); mu.Unlock() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	<-called // the first reading: the ticker exists
	for range busy {
		clk.Advance(interval)
		<-called
	}
	cancel()
	// The last Usage call's interval is decided after it returns: a
	// final tick cannot come (the clock does not move), so ctx ends Run.
	<-done
	// Start at 1; 1.5 busy → 2; two quiet intervals → 1; exit → Max.
	if want := []int{1, 2, 1, 2}; !slices.Equal(sets, want) {
		t.Fatalf("GOMAXPROCS set to %v, want %v", sets, want)
	}
}

// TestRunUsageError: when the CPU time cannot be read, the Governor gives
// every core back and stops instead of guessing.
func TestRunUsageError(t *testing.T) {
	var sets []int
	g := &Governor{Max: 2, Usage: func() (time.Duration, error) { return 0, errors.New("no rusage") },
		Set: func(n int) { sets = append(sets, n) }}
	g.Run(context.Background()) // returns at once
	if want := []int{1, 2}; !slices.Equal(sets, want) {
		t.Fatalf("GOMAXPROCS set to %v, want %v", sets, want)
	}
}

// TestProcessCPU: the process's CPU time grows while it computes.
func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	after, err := ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 20*time.Millisecond {
		t.Fatalf("CPU time grew %v over 50 ms of computing (%d loops), want at least 20 ms", d, x)
	}
}

// TestRunCountsBlocked: time spent Blocked (fsync holding a core) counts
// as busy: 0.4 of a core computing plus 0.4 in fsync is over UpAt, so
// the governor adds a core; the computing alone would not.
func TestRunCountsBlocked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		blocked bool
		want    []int
	}{
		{"computing only", false, []int{1, 2}},        // start at 1, give all back at exit
		{"computing and fsync", true, []int{1, 2, 2}}, // up after the first interval
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(1_700_000_000, 0))
			const interval = 250 * time.Millisecond
			var (
				mu           sync.Mutex
				sets         []int
				cpu, blocked time.Duration
				calls        int
			)
			called := make(chan struct{}, 1)
			g := &Governor{Max: 2, Clock: clk, Interval: interval,
				Usage: func() (time.Duration, error) {
					mu.Lock()
					defer mu.Unlock()
					if calls > 0 {
						cpu += interval * 4 / 10
						blocked += interval * 4 / 10
					}
					calls++
					called <- struct{}{}
					return cpu, nil
				},
				Set: func(n int) { mu.Lock(); sets = append(sets, n); mu.Unlock() },
			}
			if tc.blocked {
				g.Blocked = func() time.Duration { mu.Lock(); defer mu.Unlock(); return blocked }
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { g.Run(ctx); close(done) }()
			<-called
			clk.Advance(interval)
			<-called
			cancel()
			<-done
			if !slices.Equal(sets, tc.want) {
				t.Fatalf("GOMAXPROCS set to %v, want %v", sets, tc.want)
			}
		})
	}
}
