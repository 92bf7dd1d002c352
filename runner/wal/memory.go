package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// DefaultMemoryMaxBytes bounds a Memory log whose options set neither
// MaxBytes nor MaxAge: an in-memory log is never unbounded (`eddy run
// --data-dir ""` would otherwise keep every record until it runs out of
// memory). With the default Block policy, appends are refused once a
// consumer lags this far behind.
const DefaultMemoryMaxBytes = 32 << 20

// Memory is a Log kept in memory only. Durable and Buffered are the same
// thing here: nothing survives the process. It applies the same retention
// rules as File (MaxBytes counts encoded record bytes), except that a size
// pass removes records down to 7/8 of MaxBytes, so that the copy it makes
// is paid once per MaxBytes/8 appended rather than on every append.
type Memory struct {
	opts MemoryOptions
	log  *slog.Logger

	mu     sync.Mutex
	recs   []Record // recs[i].Offset == first+i
	first  uint64
	bytes  int64
	closed bool
	notify chan struct{}
	cons   consumers
	st     Stats

	lastWarn time.Time // last "retention blocked" warning

	stop chan struct{}
	done chan struct{}

	cbMu sync.Mutex // orders AppendNotify callbacks by offset
}

var _ Log = (*Memory)(nil)

// NewMemory returns an empty in-memory log and starts its retention loop.
// When neither MaxBytes nor MaxAge is set, MaxBytes is
// DefaultMemoryMaxBytes. Invalid options are replaced by defaults and
// reported through the logger.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	if err := opts.check(); err != nil {
		opts.Logger.Error("wal: invalid memory log options, using defaults", "err", err)
		opts.RetentionOptions = RetentionOptions{}
	}
	if opts.MaxBytes == 0 && opts.MaxAge == 0 {
		opts.MaxBytes = DefaultMemoryMaxBytes
	}
	opts.defaults()
	m := &Memory{
		opts:   opts,
		log:    opts.Logger,
		first:  1,
		notify: make(chan struct{}),
		cons:   consumers{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if opts.MaxAge > 0 || opts.MaxBytes > 0 {
		go retentionLoop(m.Retain, opts.Clock, opts.Interval, nil, m.log, m.stop, m.done)
	} else {
		close(m.done)
	}
	return m
}

// Append implements Log.
func (m *Memory) Append(ctx context.Context, recs ...*Record) error {
	return m.AppendWith(ctx, Durable, recs...)
}

// AppendWith implements Log. The records are copied; the caller may reuse
// them and their payloads after it returns.
func (m *Memory) AppendWith(ctx context.Context, _ Durability, recs ...*Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return err
		}
	}
	now := m.opts.Clock.Now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.st.Full {
		m.st.FullRejects++
		return m.fullError()
	}
	if len(recs) == 0 {
		return nil
	}
	next := m.first + uint64(len(m.recs))
	for _, r := range recs {
		r.Offset = next
		next++
		if r.Time == 0 {
			r.Time = now
		}
		c := *r
		c.Payload = append([]byte(nil), r.Payload...)
		m.recs = append(m.recs, c)
		m.bytes += int64(frameSize(&c))
	}
	m.st.Appends += uint64(len(recs))
	m.st.AppendCalls++
	m.st.Batches++
	m.st.MaxBatchSeen = max(m.st.MaxBatchSeen, len(recs))
	close(m.notify)
	m.notify = make(chan struct{})
	if m.opts.MaxBytes > 0 && m.bytes > m.opts.MaxBytes {
		m.retainLocked(now)
	}
	return nil
}

// AppendOwned implements Log. Memory copies the payload, as AppendWith does
// (it is not on the broker's hot path).
func (m *Memory) AppendOwned(ctx context.Context, rec Record) error {
	return m.AppendWith(ctx, Async, &rec)
}

// AppendNotify implements Log. Memory commits at once, so done runs on the
// caller's goroutine before AppendNotify returns; calls are serialized so
// that callbacks run in offset order.
func (m *Memory) AppendNotify(ctx context.Context, d Durability, done func(error), recs ...*Record) error {
	if done == nil {
		return errors.New("wal: AppendNotify needs a done callback; use AppendWith to wait for the commit instead")
	}
	m.cbMu.Lock()
	defer m.cbMu.Unlock()
	if err := m.AppendWith(ctx, d, recs...); err != nil {
		return err
	}
	done(nil)
	return nil
}

func (m *Memory) fullError() error {
	name, off, _ := m.cons.slowest()
	return fmt.Errorf("%w: %d bytes held exceed MaxBytes %d and consumer %q (at offset %d) has not read the oldest records; let it catch up, remove it, raise MaxBytes or use policy %q",
		ErrFull, m.bytes, m.opts.MaxBytes, name, off, DropOldest)
}

// Read implements Log.
func (m *Memory) Read(ctx context.Context, from uint64, buf []Record) (int, error) {
	if from == 0 {
		from = 1
	}
	if len(buf) == 0 {
		return 0, nil
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return 0, ErrClosed
		}
		last := m.first + uint64(len(m.recs)) - 1
		switch {
		case from < m.first:
			err := &GapError{From: from, First: m.first}
			m.mu.Unlock()
			return 0, err
		case from > last+1:
			m.mu.Unlock()
			return 0, &AheadError{From: from, Last: last}
		case from <= last:
			n := copy(buf, m.recs[from-m.first:])
			m.st.CacheReads += uint64(n)
			m.mu.Unlock()
			return n, nil
		}
		ch := m.notify
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// First implements Log.
func (m *Memory) First() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first
}

// Last implements Log.
func (m *Memory) Last() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first + uint64(len(m.recs)) - 1
}

// SetConsumer implements Log.
func (m *Memory) SetConsumer(name string, offset uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cons[name] = offset
	if m.st.Full {
		m.retainLocked(m.opts.Clock.Now().UnixNano())
	}
}

// RemoveConsumer implements Log.
func (m *Memory) RemoveConsumer(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cons, name)
	if m.st.Full {
		m.retainLocked(m.opts.Clock.Now().UnixNano())
	}
}

// Retain implements Log.
func (m *Memory) Retain(ctx context.Context) (RetentionResult, error) {
	if err := ctx.Err(); err != nil {
		return RetentionResult{}, err
	}
	now := m.opts.Clock.Now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return RetentionResult{}, ErrClosed
	}
	return m.retainLocked(now), nil
}

func (m *Memory) retainLocked(now int64) RetentionResult {
	last := m.first + uint64(len(m.recs)) - 1
	target := m.first
	if m.opts.MaxAge > 0 {
		cut := now - m.opts.MaxAge.Nanoseconds()
		i := sort.Search(len(m.recs), func(i int) bool { return m.recs[i].Time >= cut })
		target = max(target, m.first+uint64(i))
	}
	if m.opts.MaxBytes > 0 && m.bytes > m.opts.MaxBytes {
		b, i, low := m.bytes, 0, m.opts.MaxBytes-m.opts.MaxBytes/8
		for ; i < len(m.recs) && b > low; i++ {
			b -= int64(frameSize(&m.recs[i]))
		}
		target = max(target, m.first+uint64(i))
	}
	target = min(target, last+1)
	res := m.applyTarget(target)
	m.st.Full = m.opts.Policy == Block && m.opts.MaxBytes > 0 && m.bytes > m.opts.MaxBytes
	return res
}

func (m *Memory) applyTarget(target uint64) RetentionResult {
	allowed, blockedBy, overrun := m.cons.clamp(m.first, target, m.opts.Policy)
	if blockedBy != "" {
		m.st.RetentionBlocked++
	}
	// Size passes run on appends: warn at most once per retention Interval.
	if now := m.opts.Clock.Now(); blockedBy != "" && now.Sub(m.lastWarn) >= m.opts.Interval {
		m.lastWarn = now
		m.log.Warn("wal: retention limit exceeded but a consumer has not read the data; keeping it",
			"consumer", blockedBy, "consumer_offset", allowed, "would_remove_to", target, "policy", m.opts.Policy)
	}
	res := RetentionResult{BlockedBy: blockedBy, Overrun: overrun}
	if allowed > m.first {
		k := int(allowed - m.first)
		for i := 0; i < k; i++ {
			m.bytes -= int64(frameSize(&m.recs[i]))
		}
		m.recs = append([]Record(nil), m.recs[k:]...)
		m.first = allowed
		res.Removed = uint64(k)
	}
	if overrun > 0 {
		m.log.Warn("wal: retention removed records a consumer had not read", "records", overrun, "first", m.first)
	}
	m.st.RetentionRemoved += res.Removed
	m.st.RetentionOverrun += overrun
	res.First = m.first
	return res
}

// Stats implements Log.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.First = m.first
	s.Last = m.first + uint64(len(m.recs)) - 1
	s.Bytes = m.bytes
	s.Consumers = m.cons.clone()
	return s
}

// Close implements Log.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	close(m.notify)
	close(m.stop)
	m.mu.Unlock()
	<-m.done
	return nil
}

// retentionLoop calls retain on every tick, and whenever kick fires, until
// stop is closed.
func retentionLoop(retain func(context.Context) (RetentionResult, error), c clock.Clock, every time.Duration,
	kick <-chan struct{}, lg *slog.Logger, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := c.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C():
		case <-kick:
		}
		if _, err := retain(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
			lg.Error("wal: retention pass failed", "err", err)
		}
	}
}
