// Package dedupe is the dedupe step: it drops an event when an event with
// an equal dedupe key passed within a horizon of event time before it.
//
// The dedupe key is the value of the spec's key expression, or, without
// one, the whole event's fields. Keys are scoped to the pipeline's
// partition key (ev.Key): equal readings from two devices are not
// duplicates of each other. Values compare by content: maps by sorted keys,
// and numbers by value, so 1 and 1.0 are equal.
//
// Semantics, with within = W and times in event time:
//
//   - An event passes and is remembered at its time t when no equal key is
//     remembered, or when the remembered time s is at least W away
//     (|t - s| >= W). Otherwise it is dropped and counted. The horizon is
//     half-open: an equal event exactly W after the remembered one passes.
//   - A dropped duplicate does not extend the horizon: a value repeated
//     forever passes once every W, like a cache add with a TTL.
//   - Out of order: an event earlier than the remembered one is a duplicate
//     when it is within W of it; otherwise it passes, and the later time
//     stays remembered.
//   - Memory is bounded by the keys that passed within W of the newest
//     event time (the watermark: the largest event time seen by Process or
//     handed to Advance). An entry is forgotten once s + W <= watermark. So
//     an event that arrives more than W behind the watermark may pass even
//     though an equal one passed before it: its twin is already forgotten.
//
// Keys are remembered as 128-bit FNV-1a hashes of a canonical encoding, so
// memory per key is constant; a false duplicate needs a 128-bit collision.
//
// The package owns the horizon state and its snapshot format. It must not
// read the wall clock, start goroutines or change the events it passes.
package dedupe

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/expr-lang/expr/vm"
)

// Config configures a dedupe operator.
type Config struct {
	// Spec is the step as the user wrote it; Spec.Within must be > 0.
	Spec pipeline.DedupeSpec
	// Schema is the set of fields known at this step, or nil if unknown.
	Schema pipeline.Schema
	// Logger receives diagnostics. Nil discards.
	Logger *slog.Logger
}

// Stats are the operator's counters since it was created.
type Stats struct {
	// Passed counts events passed on.
	Passed uint64
	// Dropped counts duplicates dropped.
	Dropped uint64
	// Errors counts events whose key expression failed (they are dropped).
	Errors uint64
	// Expired counts remembered keys forgotten because the watermark moved
	// past their horizon.
	Expired uint64
}

type digest [16]byte

type queued struct {
	d digest
	t int64
}

// Operator is the dedupe step. Process, Advance, Snapshot and Restore are
// called by the pipeline's goroutine; Stats and StateSize may be called
// from any goroutine.
type Operator struct {
	within int64
	key    *pipeline.Program // nil: the whole event
	log    *slog.Logger
	vm     vm.VM

	seen  map[digest]int64
	queue []queued // in insertion order; stale entries are skipped
	head  int
	wm    int64
	hasWM bool

	h     hash.Hash
	buf   []byte
	sum   []byte
	names []string

	size                           atomic.Int64
	passed, dropped, errs, expired atomic.Uint64
}

var (
	_ operators.Operator   = (*Operator)(nil)
	_ operators.TimeDriven = (*Operator)(nil)
	_ operators.Stateful   = (*Operator)(nil)
	_ operators.Sized      = (*Operator)(nil)
)

// New builds a dedupe operator.
func New(cfg Config) (*Operator, error) {
	if cfg.Spec.Within.Duration <= 0 {
		return nil, fmt.Errorf("dedupe.within: must be > 0, e.g. within: 1m")
	}
	o := &Operator{
		within: int64(cfg.Spec.Within.Duration),
		log:    cfg.Logger,
		seen:   map[digest]int64{},
		h:      fnv.New128a(),
		sum:    make([]byte, 0, 16),
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Spec.Key != "" {
		p, err := pipeline.CompileExpr(cfg.Spec.Key, cfg.Schema)
		if err != nil {
			return nil, fmt.Errorf("dedupe.key: %q: %v", cfg.Spec.Key, err)
		}
		o.key = p
	}
	return o, nil
}

// Process passes ev on unless it duplicates a remembered key.
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	d, err := o.digest(ev)
	if err != nil {
		o.errs.Add(1)
		return err
	}
	o.advance(ev.Time)
	if s, ok := o.seen[d]; ok {
		if dist(ev.Time, s) < o.within {
			o.dropped.Add(1)
			return nil
		}
		if ev.Time > s {
			o.remember(d, ev.Time)
		}
	} else if ev.Time > o.wm-o.within {
		// An event already behind the horizon is not remembered: it
		// would be forgotten at once.
		o.remember(d, ev.Time)
	}
	o.passed.Add(1)
	out.Emit(ev)
	return nil
}

// Advance moves the watermark to eventTime (if later) and forgets keys
// whose horizon it has passed. It never emits.
func (o *Operator) Advance(eventTime int64, _ operators.Emitter) { o.advance(eventTime) }

func (o *Operator) advance(t int64) {
	if o.hasWM && t <= o.wm {
		return
	}
	o.wm, o.hasWM = t, true
	limit := t - o.within // entries with time <= limit are past their horizon
	n := 0
	for o.head < len(o.queue) && o.queue[o.head].t <= limit {
		q := o.queue[o.head]
		o.head++
		if s, ok := o.seen[q.d]; ok && s == q.t {
			delete(o.seen, q.d)
			n++
		}
	}
	if n > 0 {
		o.expired.Add(uint64(n))
		o.size.Store(int64(len(o.seen)))
	}
	if o.head == len(o.queue) {
		o.queue, o.head = o.queue[:0], 0
	} else if o.head > 1024 && o.head > len(o.queue)/2 {
		o.queue = append(o.queue[:0], o.queue[o.head:]...)
		o.head = 0
	}
}

func (o *Operator) remember(d digest, t int64) {
	o.seen[d] = t
	o.queue = append(o.queue, queued{d, t})
	o.size.Store(int64(len(o.seen)))
}

func dist(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// digest hashes the canonical encoding of the event's partition key and
// dedupe key.
func (o *Operator) digest(ev *pipeline.Event) (digest, error) {
	b := appendString(o.buf[:0], ev.Key)
	if o.key == nil {
		o.names = o.names[:0]
		for k := range ev.Fields {
			o.names = append(o.names, k)
		}
		slices.Sort(o.names)
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(len(o.names)))
		for _, k := range o.names {
			b = appendString(b, k)
			b = appendCanonical(b, ev.Fields[k])
		}
	} else {
		v, err := o.key.Run(&o.vm, ev.Fields)
		if err != nil {
			return digest{}, fmt.Errorf("dedupe.key %q on key %q: %v", o.key.Source, ev.Key, pipeline.ErrorLine(err))
		}
		if v == nil {
			return digest{}, fmt.Errorf("dedupe.key %q on key %q gave nil (is a field missing?); make sure every event has it, or drop such events with a filter first", o.key.Source, ev.Key)
		}
		b = appendCanonical(b, v)
	}
	o.buf = b
	o.h.Reset()
	o.h.Write(b)
	o.sum = o.h.Sum(o.sum[:0])
	var d digest
	copy(d[:], o.sum)
	return d, nil
}

func appendString(b []byte, s string) []byte {
	b = append(b, 's')
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendCanonical appends a type-tagged encoding of v in which equal values
// (by JSON meaning) encode equally.
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case bool:
		if x {
			return append(b, 'T')
		}
		return append(b, 'F')
	case string:
		return appendString(b, x)
	case []byte:
		return appendString(b, string(x))
	case int:
		return appendInt(b, int64(x))
	case int8:
		return appendInt(b, int64(x))
	case int16:
		return appendInt(b, int64(x))
	case int32:
		return appendInt(b, int64(x))
	case int64:
		return appendInt(b, x)
	case uint:
		return appendUint(b, uint64(x))
	case uint8:
		return appendUint(b, uint64(x))
	case uint16:
		return appendUint(b, uint64(x))
	case uint32:
		return appendUint(b, uint64(x))
	case uint64:
		return appendUint(b, x)
	case float32:
		return appendFloat(b, float64(x))
	case float64:
		return appendFloat(b, x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return appendInt(b, i)
		}
		if f, err := x.Float64(); err == nil {
			return appendFloat(b, f)
		}
		return appendString(b, string(x))
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, 't'), uint64(x.UnixNano()))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendCanonical(b, x[k])
		}
		return b
	case []any:
		b = append(b, 'a')
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			b = appendCanonical(b, e)
		}
		return b
	}
	// Other types (structs from enrichers, typed slices): their JSON form,
	// or their Go syntax if they have none.
	if j, err := json.Marshal(v); err == nil {
		return appendString(append(b, 'j'), string(j))
	}
	return appendString(append(b, 'g'), fmt.Sprintf("%T:%#v", v, v))
}

func appendInt(b []byte, i int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 'i'), uint64(i))
}

func appendUint(b []byte, u uint64) []byte {
	if u <= math.MaxInt64 {
		return appendInt(b, int64(u))
	}
	return binary.BigEndian.AppendUint64(append(b, 'u'), u)
}

// appendFloat encodes integral floats as ints (so 3.0 == 3), -0 as 0 and
// every NaN alike.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
		return appendInt(b, int64(f))
	}
	if math.IsNaN(f) {
		f = math.NaN()
	}
	return binary.BigEndian.AppendUint64(append(b, 'd'), math.Float64bits(f))
}

// Stats returns the operator's counters.
func (o *Operator) Stats() Stats {
	return Stats{Passed: o.passed.Load(), Dropped: o.dropped.Load(), Errors: o.errs.Load(), Expired: o.expired.Load()}
}

// StateSize is the number of remembered keys.
func (o *Operator) StateSize() int { return int(o.size.Load()) }

// snapshotVersion is the first byte of a snapshot.
const snapshotVersion = 1

// Snapshot encodes the watermark and the remembered keys (binary: version
// byte, watermark flag and varint, entry count, then 16-byte digest and
// varint time per entry, ordered by time and digest so equal state gives
// equal bytes).
func (o *Operator) Snapshot() ([]byte, error) {
	entries := make([]queued, 0, len(o.seen))
	for d, t := range o.seen {
		entries = append(entries, queued{d, t})
	}
	sortEntries(entries)
	b := make([]byte, 0, 16+len(entries)*(16+9))
	b = append(b, snapshotVersion)
	if o.hasWM {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendVarint(b, o.wm)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, e.d[:]...)
		b = binary.AppendVarint(b, e.t)
	}
	return b, nil
}

func sortEntries(es []queued) {
	slices.SortFunc(es, func(a, b queued) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return slices.Compare(a.d[:], b.d[:])
	})
}

var errTruncated = errors.New("truncated")

// Restore replaces the state with a snapshot taken by Snapshot. Empty data
// restores the empty state.
func (o *Operator) Restore(data []byte) error {
	seen := map[digest]int64{}
	var queue []queued
	var wm int64
	hasWM := false
	if len(data) > 0 {
		if data[0] != snapshotVersion {
			return fmt.Errorf("dedupe: restore: snapshot version %d, this build reads version %d; start from an empty state", data[0], snapshotVersion)
		}
		r := data[1:]
		if len(r) < 1 {
			return fmt.Errorf("dedupe: restore: snapshot is %w", errTruncated)
		}
		hasWM = r[0] == 1
		r = r[1:]
		var n int
		wm, n = binary.Varint(r)
		if n <= 0 {
			return fmt.Errorf("dedupe: restore: watermark is %w", errTruncated)
		}
		r = r[n:]
		count, n := binary.Uvarint(r)
		if n <= 0 || count > uint64(len(r)/17) {
			return fmt.Errorf("dedupe: restore: entry count is not valid")
		}
		r = r[n:]
		queue = make([]queued, 0, count)
		for i := uint64(0); i < count; i++ {
			if len(r) < 17 {
				return fmt.Errorf("dedupe: restore: entry %d of %d is %w", i, count, errTruncated)
			}
			var e queued
			copy(e.d[:], r[:16])
			e.t, n = binary.Varint(r[16:])
			if n <= 0 {
				return fmt.Errorf("dedupe: restore: entry %d of %d is %w", i, count, errTruncated)
			}
			r = r[16+n:]
			if _, dup := seen[e.d]; dup {
				return fmt.Errorf("dedupe: restore: entry %d repeats a key", i)
			}
			seen[e.d] = e.t
			queue = append(queue, e)
		}
		if len(r) != 0 {
			return fmt.Errorf("dedupe: restore: %d bytes after the last entry", len(r))
		}
		sortEntries(queue)
	}
	o.seen, o.queue, o.head, o.wm, o.hasWM = seen, queue, 0, wm, hasWM
	o.size.Store(int64(len(seen)))
	return nil
}
