package engine

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// StepStatus is a snapshot of one step's or sink's counters.
type StepStatus struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Role        pipeline.NodeRole `json:"role"`
	In          int64             `json:"in"`
	Out         int64             `json:"out"`
	Errors      int64             `json:"errors"`
	LastError   string            `json:"lastError,omitempty"`
	LastErrorAt time.Time         `json:"lastErrorAt,omitzero"`
	LatencyP50  time.Duration     `json:"latencyP50"`
	LatencyP99  time.Duration     `json:"latencyP99"`
	// StateSize is the number of open windows / keys / remembered ids.
	StateSize int `json:"stateSize"`
	// Latency is the sampled latency histogram (see Histogram).
	Latency HistogramSnapshot `json:"-"`
}

// stepStats are a step's counters. The pipeline goroutine owns the plain
// fields and publishes them to the atomics after every batch, so the hot
// path pays no atomic operation per event.
type stepStats struct {
	id, kind string
	role     pipeline.NodeRole

	in, out, errs int64 // owned by the pipeline goroutine

	pubIn, pubOut, pubErrs atomic.Int64
	pubSize                atomic.Int64
	lastErr                atomic.Pointer[errInfo]
	latency                Histogram
	size                   func() int
}

type errInfo struct {
	msg string
	at  time.Time
}

func (s *stepStats) fail(err error, now time.Time) {
	s.errs++
	s.lastErr.Store(&errInfo{msg: err.Error(), at: now})
}

func (s *stepStats) publish() {
	s.pubIn.Store(s.in)
	s.pubOut.Store(s.out)
	s.pubErrs.Store(s.errs)
	if s.size != nil {
		s.pubSize.Store(int64(s.size()))
	}
}

func (s *stepStats) status() StepStatus {
	st := StepStatus{ID: s.id, Kind: s.kind, Role: s.role,
		In: s.pubIn.Load(), Out: s.pubOut.Load(), Errors: s.pubErrs.Load(), StateSize: int(s.pubSize.Load())}
	if e := s.lastErr.Load(); e != nil {
		st.LastError, st.LastErrorAt = e.msg, e.at
	}
	st.Latency = s.latency.Snapshot()
	st.LatencyP50 = st.Latency.Quantile(0.5)
	st.LatencyP99 = st.Latency.Quantile(0.99)
	return st
}

// Histogram is a lock-free latency histogram with power-of-two nanosecond
// buckets (bucket i holds values in [2^(i-1), 2^i) ns). Quantiles are
// reported as the bucket's upper bound, so they overstate by at most 2x;
// that is enough to tell 1 µs from 1 ms, which is what an operator needs.
type Histogram struct {
	buckets [40]atomic.Int64
	count   atomic.Int64
	sum     atomic.Int64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := bits.Len64(uint64(d))
	if i >= len(h.buckets) {
		i = len(h.buckets) - 1
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a copy of a Histogram's counts.
type HistogramSnapshot struct {
	Buckets [40]int64
	Count   int64
	Sum     time.Duration
}

// Snapshot copies the counts.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.buckets {
		s.Buckets[i] = h.buckets[i].Load()
	}
	s.Count = h.count.Load()
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// UpperBound returns the largest value bucket i holds.
func (HistogramSnapshot) UpperBound(i int) time.Duration {
	if i == 0 {
		return 0
	}
	return time.Duration(uint64(1)<<uint(i)) - 1
}

// Quantile returns an upper bound of the q-quantile (0 when empty).
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	var total int64
	for _, c := range s.Buckets {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1
	var acc int64
	for i, c := range s.Buckets {
		acc += c
		if acc >= rank {
			return s.UpperBound(i)
		}
	}
	return s.UpperBound(len(s.Buckets) - 1)
}

// ring is a small bounded history (recent alerts) safe for concurrent use.
type ring[T any] struct {
	mu   sync.Mutex
	buf  []T
	next int
	full bool
}

func newRing[T any](n int) *ring[T] { return &ring[T]{buf: make([]T, n)} }

func (r *ring[T]) add(v T) {
	r.mu.Lock()
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// items returns the contents, oldest first.
func (r *ring[T]) items() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]T(nil), r.buf[:r.next]...)
	}
	return append(append([]T(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}
