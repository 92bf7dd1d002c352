package aggregate

import "math"

// Acc accumulates one aggregate function over the values of one window and
// key. The zero Acc is empty and ready to use. An Acc does not remember its
// function: every method takes the Func, which must be the same for the
// life of the Acc (the window operator holds them in a slice parallel to the
// specs). An Acc is not safe for concurrent use.
type Acc struct {
	n       int64   // values accumulated (non-nil)
	sum     float64 // sum / avg
	mean    float64 // stddev (Welford)
	m2      float64 // stddev (Welford)
	min     float64 // min
	max     float64 // max
	val     any     // first / last
	valTime int64   // event time of val
	q       *quantiles
	d       *distinct
}

// Reset empties a, keeping the memory of sketches for reuse.
func (a *Acc) Reset() {
	q, d := a.q, a.d
	*a = Acc{}
	if q != nil {
		q.reset()
		a.q = q
	}
	if d != nil {
		d.reset()
		a.d = d
	}
}

// Len returns how many values a has accumulated (events, for count()).
func (a *Acc) Len() int64 { return a.n }

// AddEvent counts one event for count() without an argument.
func (a *Acc) AddEvent() { a.n++ }

// AddNumber adds x (finite, see ToFloat) to a numeric function.
func (a *Acc) AddNumber(f Func, x float64) {
	switch f {
	case Sum, Avg:
		a.sum += x
	case Min:
		if a.n == 0 || x < a.min {
			a.min = x
		}
	case Max:
		if a.n == 0 || x > a.max {
			a.max = x
		}
	case Stddev:
		n := float64(a.n + 1)
		d := x - a.mean
		a.mean += d / n
		a.m2 += d * (x - a.mean)
	case Median, P50, P90, P95, P99:
		if a.q == nil {
			a.q = &quantiles{}
		}
		a.q.add(x)
	}
	a.n++
}

// AddValue adds a non-nil value seen at event time t to count(x), first,
// last or distinct_count. The value is kept (first, last) without copying;
// event field values are treated as immutable.
func (a *Acc) AddValue(f Func, v any, t int64) {
	switch f {
	case First:
		if a.n == 0 || t < a.valTime {
			a.val, a.valTime = v, t
		}
	case Last:
		if a.n == 0 || t >= a.valTime {
			a.val, a.valTime = v, t
		}
	case DistinctCount:
		if a.d == nil {
			a.d = &distinct{}
		}
		a.d.add(hashValue(v))
	}
	a.n++
}

// Merge folds o into a, as if a had also seen o's values after its own.
// o is left unchanged.
func (a *Acc) Merge(f Func, o *Acc) {
	if o.n == 0 {
		return
	}
	if a.n == 0 {
		a.copyFrom(f, o)
		return
	}
	switch f {
	case Sum, Avg:
		a.sum += o.sum
	case Min:
		a.min = min(a.min, o.min)
	case Max:
		a.max = max(a.max, o.max)
	case Stddev: // Chan et al. parallel variance
		na, nb := float64(a.n), float64(o.n)
		d := o.mean - a.mean
		n := na + nb
		a.mean += d * nb / n
		a.m2 += o.m2 + d*d*na*nb/n
	case First:
		if o.valTime < a.valTime {
			a.val, a.valTime = o.val, o.valTime
		}
	case Last:
		if o.valTime >= a.valTime {
			a.val, a.valTime = o.val, o.valTime
		}
	case Median, P50, P90, P95, P99:
		if a.q == nil {
			a.q = &quantiles{}
		}
		a.q.merge(o.q)
	case DistinctCount:
		if a.d == nil {
			a.d = &distinct{}
		}
		a.d.merge(o.d)
	}
	a.n += o.n
}

func (a *Acc) copyFrom(f Func, o *Acc) {
	q, d := a.q, a.d
	*a = *o
	a.q, a.d = q, d
	switch {
	case o.q != nil:
		if a.q == nil {
			a.q = &quantiles{}
		}
		a.q.reset()
		a.q.merge(o.q)
	case o.d != nil:
		if a.d == nil {
			a.d = &distinct{}
		}
		a.d.reset()
		a.d.merge(o.d)
	}
}

// Result returns the function's value: int64 for count and
// distinct_count, float64 for numeric functions (nil over zero values), the
// value itself for first and last (nil if none).
func (a *Acc) Result(f Func) any {
	switch f {
	case Count:
		return a.n
	case DistinctCount:
		if a.d == nil {
			return int64(0)
		}
		return a.d.count()
	case First, Last:
		return a.val
	}
	x, ok := a.Float(f)
	if !ok {
		return nil
	}
	return x
}

// Float returns a numeric function's value, and false over zero values or
// for a function that is not numeric.
func (a *Acc) Float(f Func) (float64, bool) {
	if a.n == 0 {
		return 0, false
	}
	switch f {
	case Sum:
		return a.sum, true
	case Avg:
		return a.sum / float64(a.n), true
	case Min:
		return a.min, true
	case Max:
		return a.max, true
	case Stddev:
		return math.Sqrt(max(a.m2, 0) / float64(a.n)), true
	case Median, P50, P90, P95, P99:
		p, _ := f.Quantile()
		return a.q.quantile(p)
	}
	return 0, false
}
