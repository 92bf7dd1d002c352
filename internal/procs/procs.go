// Package procs sizes the Go runtime's GOMAXPROCS to the load: one core
// while one is enough, more as soon as the process needs them.
//
// Why: Eddy hands each message between goroutines (a client's read loop,
// the log's committer, a pipeline, a subscriber's write loop). With two or
// more Ps, every hand-off to an idle P wakes another OS thread on another
// core, which spins, finds the goroutine already run and sleeps again; on
// a virtual machine each of those wake-ups also costs an exit from the
// idle core. At the moderate rates of an edge node that overhead is 10-15 %
// of Eddy's CPU (docs/benchmarks.md, "--cpus 1"), for no throughput: one
// core was not saturated. A fixed GOMAXPROCS=1 caps a busy node, though,
// so the Governor measures the process's CPU time and moves between one
// core and the runtime's own choice:
//
//   - up at once when the process used more than UpAt of its current cores
//     over one interval (a surge waits at most one interval, 250 ms by
//     default, with its messages queued in the log, not lost);
//   - down one core only after Hold of intervals in a row used less than
//     DownAt of one core fewer (so a load near the boundary does not make
//     it flap; the thresholds differ because the same load costs more CPU
//     spread over more cores).
//
// Changing GOMAXPROCS stops the world for a few microseconds; the Governor
// does it at most once an interval.
package procs

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// Defaults of a Governor's thresholds.
const (
	DefaultInterval = 250 * time.Millisecond
	DefaultUpAt     = 0.7
	DefaultDownAt   = 0.5
	DefaultHold     = 20 // intervals: 5 s at the default interval
)

// Governor moves GOMAXPROCS between 1 and Max by the process's CPU use.
// Its zero values take the defaults above; Usage and Set are required.
type Governor struct {
	// Max is the most cores to use (the runtime's choice at start).
	Max int
	// Usage returns the process's CPU time so far (user + system).
	Usage func() (time.Duration, error)
	// Set sets GOMAXPROCS (runtime.GOMAXPROCS).
	Set func(n int)
	// Blocked, if set, returns the time goroutines spent so far in system
	// calls that block while holding their core (the log's fsyncs). It
	// counts as busy: on one core nothing else runs during an fsync until
	// the runtime hands the core over, so durable writes at a rate that
	// keeps a core in fsync get a second core.
	Blocked func() time.Duration

	Clock    clock.Clock
	Interval time.Duration
	UpAt     float64 // busy cores per current core above which to add cores
	DownAt   float64 // busy cores per core (of one fewer) below which to remove one
	Hold     int     // consecutive quiet intervals before removing a core
	Logger   *slog.Logger

	cur, quiet int
}

// Run starts at one core and adjusts every Interval until ctx ends; then it
// restores Max (so that shutdown work is not held to one core).
func (g *Governor) Run(ctx context.Context) {
	g.defaults()
	if g.Max <= 1 {
		return
	}
	g.cur, g.quiet = 1, 0
	g.Set(1)
	defer g.Set(g.Max)
	tick := g.Clock.NewTicker(g.Interval)
	defer tick.Stop()
	lastCPU, err := g.usage()
	if err != nil {
		g.Logger.Warn("cannot read the process's CPU time; using every core", "err", err)
		return
	}
	last := g.Clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
		}
		now := g.Clock.Now()
		cpu, err := g.usage()
		if err != nil {
			g.Logger.Warn("cannot read the process's CPU time; using every core", "err", err)
			return
		}
		wall := now.Sub(last)
		if wall <= 0 {
			continue
		}
		busy := float64(cpu-lastCPU) / float64(wall)
		last, lastCPU = now, cpu
		if from := g.cur; g.Next(busy) != from {
			g.Logger.Debug("gomaxprocs changed by load", "from", from, "to", g.cur, "busy_cores", math.Round(busy*100)/100)
			g.Set(g.cur)
		}
	}
}

// Next records an interval in which the process kept busy cores busy and
// returns the cores to use from now on (it does not call Set; Run does).
func (g *Governor) Next(busy float64) int {
	g.defaults()
	if g.cur == 0 {
		g.cur = 1
	}
	switch {
	case busy > g.UpAt*float64(g.cur) && g.cur < g.Max:
		// Enough cores at once that the load is below UpAt of them.
		g.quiet = 0
		g.cur = min(g.Max, max(g.cur+1, int(math.Ceil(busy/g.UpAt))))
	case g.cur > 1 && busy < g.DownAt*float64(g.cur-1):
		if g.quiet++; g.quiet >= g.Hold {
			g.quiet = 0
			g.cur--
		}
	default:
		g.quiet = 0
	}
	return g.cur
}

// usage is the process's CPU time plus the time it was Blocked.
func (g *Governor) usage() (time.Duration, error) {
	cpu, err := g.Usage()
	if err == nil && g.Blocked != nil {
		cpu += g.Blocked()
	}
	return cpu, err
}

func (g *Governor) defaults() {
	if g.Clock == nil {
		g.Clock = clock.Real{}
	}
	if g.Interval <= 0 {
		g.Interval = DefaultInterval
	}
	if g.UpAt <= 0 {
		g.UpAt = DefaultUpAt
	}
	if g.DownAt <= 0 {
		g.DownAt = DefaultDownAt
	}
	if g.Hold <= 0 {
		g.Hold = DefaultHold
	}
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
}
