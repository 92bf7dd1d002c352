package aggregate

import (
	"math"
	"slices"
)

// Quantile estimation.
//
// Up to exactSize values are kept as they are and quantiles are exact. Past
// that the values move into a DDSketch (Masson, Rim, Lee: "DDSketch: a fast
// and fully-mergeable quantile sketch with relative-error guarantees", VLDB
// 2019): a value x != 0 falls into bucket ceil(log_γ |x|), γ = (1+α)/(1-α),
// with separate bucket stores for positive and negative values and a counter
// for zeros. Every estimate is within relative error α = 1% of a value of
// the right rank, as long as each store spans at most maxBuckets buckets,
// i.e. the largest and smallest non-zero magnitude of one sign differ by less
// than γ^2048 ≈ 6e17. Beyond that the buckets of the smallest magnitudes are
// collapsed into one and only quantiles that fall there lose accuracy.
// Memory is at most 2 × 2048 × 8 bytes per accumulator.

const (
	exactSize   = 32
	maxBuckets  = 2048
	relAccuracy = 0.01
)

var (
	sketchGamma    = (1 + relAccuracy) / (1 - relAccuracy)
	sketchLnGamma  = math.Log(sketchGamma)
	sketchInvLnGam = 1 / sketchLnGamma
)

// RelativeAccuracy is the guaranteed relative error of quantiles computed
// by the sketch (quantiles over at most 32 values are exact).
const RelativeAccuracy = relAccuracy

type quantiles struct {
	exact  []float64 // nil once the sketch is in use
	sketch bool
	pos    bucketStore
	neg    bucketStore
	zeros  uint64
	n      uint64
	min    float64
	max    float64
}

func (q *quantiles) reset() {
	q.exact = q.exact[:0]
	q.sketch = false
	q.pos.reset()
	q.neg.reset()
	q.zeros, q.n = 0, 0
}

func (q *quantiles) add(x float64) {
	if q.n == 0 || x < q.min {
		q.min = x
	}
	if q.n == 0 || x > q.max {
		q.max = x
	}
	q.n++
	if !q.sketch {
		if len(q.exact) < exactSize {
			if q.exact == nil {
				q.exact = make([]float64, 0, exactSize)
			}
			q.exact = append(q.exact, x)
			return
		}
		q.toSketch()
	}
	q.addSketch(x, 1)
}

func (q *quantiles) toSketch() {
	q.sketch = true
	for _, v := range q.exact {
		q.addSketch(v, 1)
	}
	q.exact = q.exact[:0]
}

func (q *quantiles) addSketch(x float64, c uint64) {
	switch {
	case x > 0:
		q.pos.add(bucketIndex(x), c)
	case x < 0:
		q.neg.add(bucketIndex(-x), c)
	default:
		q.zeros += c
	}
}

func bucketIndex(x float64) int {
	return int(math.Ceil(math.Log(x) * sketchInvLnGam))
}

func bucketValue(i int) float64 {
	return 2 * math.Exp(float64(i)*sketchLnGamma) / (sketchGamma + 1)
}

func (q *quantiles) merge(o *quantiles) {
	if o.n == 0 {
		return
	}
	if q.n == 0 || o.min < q.min {
		q.min = o.min
	}
	if q.n == 0 || o.max > q.max {
		q.max = o.max
	}
	if !q.sketch && !o.sketch && len(q.exact)+len(o.exact) <= exactSize {
		if q.exact == nil {
			q.exact = make([]float64, 0, exactSize)
		}
		q.exact = append(q.exact, o.exact...)
		q.n += o.n
		return
	}
	if !q.sketch {
		q.toSketch()
	}
	q.n += o.n
	if !o.sketch {
		for _, v := range o.exact {
			q.addSketch(v, 1)
		}
		return
	}
	q.zeros += o.zeros
	o.pos.each(func(i int, c uint64) { q.pos.add(i, c) })
	o.neg.each(func(i int, c uint64) { q.neg.add(i, c) })
}

// quantile returns the p-quantile (0 <= p <= 1), interpolating linearly
// between the values at ranks floor and ceil of p*(n-1).
func (q *quantiles) quantile(p float64) (float64, bool) {
	if q.n == 0 {
		return 0, false
	}
	r := p * float64(q.n-1)
	lo := math.Floor(r)
	frac := r - lo
	if !q.sketch {
		slices.Sort(q.exact)
		a := q.exact[int(lo)]
		if frac == 0 {
			return a, true
		}
		b := q.exact[int(lo)+1]
		return a + (b-a)*frac, true
	}
	a := q.atRank(uint64(lo))
	if frac == 0 {
		return a, true
	}
	b := q.atRank(uint64(lo) + 1)
	return a + (b-a)*frac, true
}

// atRank estimates the value of 0-based rank k.
func (q *quantiles) atRank(k uint64) float64 {
	var v float64
	switch {
	case k < q.neg.total:
		// Negative values, most negative first: highest index first.
		seen := uint64(0)
		for j := len(q.neg.counts) - 1; j >= 0; j-- {
			seen += q.neg.counts[j]
			if seen > k {
				v = -bucketValue(q.neg.off + j)
				break
			}
		}
	case k < q.neg.total+q.zeros:
		v = 0
	default:
		k -= q.neg.total + q.zeros
		seen := uint64(0)
		for j, c := range q.pos.counts {
			seen += c
			if seen > k {
				v = bucketValue(q.pos.off + j)
				break
			}
		}
	}
	return min(max(v, q.min), q.max)
}

// bucketStore is a dense array of bucket counts for indexes
// [off, off+len(counts)), at most maxBuckets long; when a new index would
// make it longer, the lowest buckets are collapsed into one.
type bucketStore struct {
	off    int
	counts []uint64
	total  uint64
}

func (s *bucketStore) reset() {
	s.counts = s.counts[:0]
	s.off, s.total = 0, 0
}

func (s *bucketStore) each(fn func(i int, c uint64)) {
	for j, c := range s.counts {
		if c != 0 {
			fn(s.off+j, c)
		}
	}
}

func (s *bucketStore) add(i int, c uint64) {
	s.total += c
	if len(s.counts) == 0 {
		s.off = i
		s.counts = append(s.counts, c)
		return
	}
	hi := s.off + len(s.counts) - 1
	switch {
	case i >= s.off && i <= hi:
		s.counts[i-s.off] += c
	case i > hi:
		if i-s.off+1 > maxBuckets {
			s.collapseTo(i - maxBuckets + 1)
		}
		for s.off+len(s.counts) <= i {
			s.counts = append(s.counts, 0)
		}
		s.counts[i-s.off] += c
	default: // i < s.off
		lo := i
		if hi-lo+1 > maxBuckets {
			lo = hi - maxBuckets + 1
		}
		if lo < s.off {
			grown := make([]uint64, hi-lo+1, hi-lo+1+8)
			copy(grown[s.off-lo:], s.counts)
			s.counts, s.off = grown, lo
		}
		s.counts[max(i, s.off)-s.off] += c
	}
}

// collapseTo folds every bucket below index lo into bucket lo.
func (s *bucketStore) collapseTo(lo int) {
	if lo <= s.off {
		return
	}
	n := lo - s.off
	if n >= len(s.counts) {
		var sum uint64
		for _, c := range s.counts {
			sum += c
		}
		s.counts = append(s.counts[:0], sum)
		s.off = lo
		return
	}
	var sum uint64
	for _, c := range s.counts[:n] {
		sum += c
	}
	s.counts = append(s.counts[:0], s.counts[n:]...)
	s.counts[0] += sum
	s.off = lo
}
