// Package throttle is the throttle step: it passes at most Max events per
// partition key (ev.Key) in each interval of event time, where intervals
// are Per long and aligned to the unix epoch ([k*Per, (k+1)*Per)). Events
// over the limit are dropped and counted.
//
// The guarantee is strict: no key ever gets more than Max events through
// for one interval, also with out-of-order input and across restarts
// (the counts are part of the snapshot). To keep it with bounded memory,
// late events are dropped rather than guessed about:
//
//   - per key, only the newest interval seen is counted; an event of that
//     key for an earlier interval is dropped and counted as late;
//   - the watermark is the largest event time seen by Process or handed to
//     Advance; keys whose interval ended more than Lateness before it are
//     forgotten, and any event for such an old interval is dropped as late,
//     even for a key that had none in it.
//
// The package owns the per-key counters and their snapshot format. It must
// not read the wall clock, start goroutines or change the events it passes.
package throttle

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// DefaultLateness is how far behind the watermark an event may be and still
// be counted, when Config.Lateness is zero.
const DefaultLateness = time.Minute

// Config configures a throttle operator.
type Config struct {
	// Spec is the step as the user wrote it; Max and Per must be > 0.
	Spec pipeline.ThrottleSpec
	// Lateness is how far behind the watermark an event's interval may
	// end and the event still be counted; older events are dropped as
	// late, and keys are forgotten once their interval is that old.
	// Default DefaultLateness; it is raised to at least Per.
	Lateness time.Duration
	// Logger receives diagnostics. Nil discards.
	Logger *slog.Logger
}

// Stats are the operator's counters since it was created.
type Stats struct {
	// Passed counts events passed on.
	Passed uint64
	// Dropped counts every event dropped, over the limit or late.
	Dropped uint64
	// Late counts the dropped events that were late.
	Late uint64
	// Expired counts keys forgotten because their interval was too old.
	Expired uint64
}

type counter struct {
	interval int64
	count    int
}

// Operator is the throttle step. Process, Advance, Snapshot and Restore are
// called by the pipeline's goroutine; Stats, Dropped and StateSize may be
// called from any goroutine.
type Operator struct {
	max      int
	per      int64
	lateness int64
	log      *slog.Logger

	keys   map[string]*counter
	wm     int64
	hasWM  bool
	cutoff int64 // intervals below this are late and forgotten
	swept  int64 // cutoff at the last sweep of keys

	size                           atomic.Int64
	passed, dropped, late, expired atomic.Uint64
}

var (
	_ operators.Operator   = (*Operator)(nil)
	_ operators.TimeDriven = (*Operator)(nil)
	_ operators.Stateful   = (*Operator)(nil)
	_ operators.Sized      = (*Operator)(nil)
)

// New builds a throttle operator.
func New(cfg Config) (*Operator, error) {
	if cfg.Spec.Max <= 0 {
		return nil, fmt.Errorf("throttle.max: %d must be > 0, e.g. max: 10", cfg.Spec.Max)
	}
	if cfg.Spec.Per.Duration <= 0 {
		return nil, fmt.Errorf("throttle.per: must be > 0, e.g. per: 1m")
	}
	if cfg.Lateness < 0 {
		return nil, fmt.Errorf("throttle: lateness %s is negative; use 0 for the default %s", cfg.Lateness, DefaultLateness)
	}
	o := &Operator{
		max:      cfg.Spec.Max,
		per:      int64(cfg.Spec.Per.Duration),
		lateness: int64(cfg.Lateness),
		log:      cfg.Logger,
		keys:     map[string]*counter{},
	}
	if o.lateness == 0 {
		o.lateness = int64(DefaultLateness)
	}
	o.lateness = max(o.lateness, o.per)
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// floorDiv divides rounding toward negative infinity, so intervals before
// the epoch are aligned too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Process passes ev on unless its key has used up its interval's budget.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	o.advance(ev.Time)
	iv := floorDiv(ev.Time, o.per)
	if iv < o.cutoff {
		o.dropLate()
		return nil
	}
	c := o.keys[ev.Key]
	switch {
	case c == nil:
		o.keys[ev.Key] = &counter{interval: iv, count: 1}
		o.size.Store(int64(len(o.keys)))
	case iv == c.interval:
		if c.count >= o.max {
			o.dropped.Add(1)
			return nil
		}
		c.count++
	case iv > c.interval:
		c.interval, c.count = iv, 1
	default:
		o.dropLate()
		return nil
	}
	o.passed.Add(1)
	out.Emit(ev)
	return nil
}

func (o *Operator) dropLate() {
	o.dropped.Add(1)
	o.late.Add(1)
}

// Advance moves the watermark to eventTime (if later) and forgets keys
// whose interval is older than the lateness allows. It never emits.
func (o *Operator) Advance(eventTime int64, _ operators.Emitter) { o.advance(eventTime) }

func (o *Operator) advance(t int64) {
	if o.hasWM && t <= o.wm {
		return
	}
	if !o.hasWM {
		o.wm, o.hasWM = t, true
		o.cutoff = floorDiv(t-o.lateness, o.per)
		o.swept = o.cutoff
		return
	}
	o.wm = t
	// An interval [k*per, (k+1)*per) is too old once its end is at or
	// before wm - lateness.
	o.cutoff = floorDiv(t-o.lateness, o.per)
	// Sweep at most once per lateness of event time: keys then live at most
	// about two latenesses past their interval.
	if (o.cutoff-o.swept)*o.per < o.lateness {
		return
	}
	o.swept = o.cutoff
	n := 0
	for k, c := range o.keys {
		if c.interval < o.cutoff {
			delete(o.keys, k)
			n++
		}
	}
	if n > 0 {
		o.expired.Add(uint64(n))
		o.size.Store(int64(len(o.keys)))
	}
}

// Stats returns the operator's counters.
func (o *Operator) Stats() Stats {
	return Stats{Passed: o.passed.Load(), Dropped: o.dropped.Load(), Late: o.late.Load(), Expired: o.expired.Load()}
}

// Dropped returns how many events were dropped (over the limit or late).
func (o *Operator) Dropped() uint64 { return o.dropped.Load() }

// StateSize is the number of keys with a remembered interval.
func (o *Operator) StateSize() int { return int(o.size.Load()) }

// snapshotVersion is the first byte of a snapshot.
const snapshotVersion = 1

// Snapshot encodes the watermark and per-key counters (binary: version,
// watermark flag, varint watermark, cutoff and last sweep, key count, then
// per key its length-prefixed name, varint interval and uvarint count,
// sorted by key so equal state gives equal bytes).
func (o *Operator) Snapshot() ([]byte, error) {
	names := make([]string, 0, len(o.keys))
	for k := range o.keys {
		names = append(names, k)
	}
	slices.Sort(names)
	b := []byte{snapshotVersion, 0}
	if o.hasWM {
		b[1] = 1
	}
	b = binary.AppendVarint(b, o.wm)
	b = binary.AppendVarint(b, o.cutoff)
	b = binary.AppendVarint(b, o.swept)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		c := o.keys[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendVarint(b, c.interval)
		b = binary.AppendUvarint(b, uint64(c.count))
	}
	return b, nil
}

// Restore replaces the state with a snapshot taken by Snapshot. Empty data
// restores the empty state.
func (o *Operator) Restore(data []byte) error {
	keys := map[string]*counter{}
	var wm, cutoff, swept int64
	hasWM := false
	if len(data) > 0 {
		r := reader{b: data}
		if v := r.byte(); v != snapshotVersion {
			return fmt.Errorf("throttle: restore: snapshot version %d, this build reads version %d; start from an empty state", v, snapshotVersion)
		}
		hasWM = r.byte() == 1
		wm, cutoff, swept = r.varint(), r.varint(), r.varint()
		n := r.uvarint()
		if r.err == nil && n > uint64(len(r.b)) {
			r.fail("key count %d is larger than the snapshot", n)
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			l := r.uvarint()
			k := r.bytes(l)
			iv, cnt := r.varint(), r.uvarint()
			if r.err == nil && cnt > 1<<31 {
				r.fail("key %q has count %d", k, cnt)
			}
			if r.err != nil {
				break
			}
			c := &counter{interval: iv, count: int(cnt)}
			if _, dup := keys[string(k)]; dup {
				r.fail("key %q appears twice", k)
				break
			}
			keys[string(k)] = c
		}
		if r.err == nil && len(r.b) != 0 {
			r.fail("%d bytes after the last key", len(r.b))
		}
		if r.err != nil {
			return fmt.Errorf("throttle: restore: snapshot is not valid: %v", r.err)
		}
	}
	o.keys, o.wm, o.hasWM, o.cutoff, o.swept = keys, wm, hasWM, cutoff, swept
	o.size.Store(int64(len(keys)))
	return nil
}

// reader decodes a snapshot, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated or malformed number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated or malformed number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
