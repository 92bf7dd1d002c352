package runner

import (
	"runtime/debug"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/internal/exemem"
	"github.com/eddy-edge/eddy/runner/wal"
)

// trimInterval is how often the trimmer looks at the log for activity.
const trimInterval = 5 * time.Second

// memoryTrimmer returns memory to the operating system when a burst of
// traffic ends. The Go runtime frees heap only when a collection runs,
// and with no allocation none runs for up to two minutes (the forced GC
// period), then returns pages gradually: after a load peak the process
// would keep its peak RSS for minutes. Once the log has been busy and
// then quiet for a whole interval, the trimmer runs debug.FreeOSMemory
// (one collection, pages returned at once), after emptying the log's tail
// cache (every reader has caught up by then; the cache holds the burst's
// last records), and releases the executable's pages that the burst
// touched (internal/exemem: code and read-only data mapped from the
// binary, mapped back by a minor fault when traffic resumes). It costs one
// GC per burst, none while traffic flows or while idle.
type memoryTrimmer struct {
	last  func() uint64 // the log's newest offset
	drop  func()        // empties the log's tail cache (nil: none)
	clk   clock.Clock
	free  func()
	stop  chan struct{}
	done  chan struct{}
	busy  bool
	seen  uint64
	trims int
}

func newMemoryTrimmer(clk clock.Clock, log wal.Log) *memoryTrimmer {
	t := &memoryTrimmer{last: log.Last, clk: clk, free: giveBack, stop: make(chan struct{}), done: make(chan struct{})}
	if c, ok := log.(interface{ DropCache() }); ok {
		t.drop = c.DropCache
	}
	return t
}

// giveBack returns freed heap and the executable's untouched pages to the
// operating system.
func giveBack() {
	debug.FreeOSMemory()
	exemem.Release() //nolint:errcheck // best effort: on failure the pages stay mapped, as without it
}

// run is the trimmer's goroutine; Close stops it.
func (t *memoryTrimmer) run() {
	defer close(t.done)
	tick := t.clk.NewTicker(trimInterval)
	defer tick.Stop()
	t.seen = t.last()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C():
			t.check()
		}
	}
}

// check is one look: busy since the last one, or quiet after being busy.
func (t *memoryTrimmer) check() {
	cur := t.last()
	switch {
	case cur != t.seen:
		t.busy, t.seen = true, cur
	case t.busy:
		t.busy = false
		t.trims++
		if t.drop != nil {
			t.drop()
		}
		t.free()
	}
}

func (t *memoryTrimmer) Close() {
	close(t.stop)
	<-t.done
}
