package aggregate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Binary encoding of accumulators for checkpoints. The layout depends on the
// function; the caller records which function each Acc belongs to (the
// window operator does so through a fingerprint of its configuration).
// Decoding checks every length against the bytes left and returns an error,
// never panics, on corrupt input.

// AppendBinary appends the encoding of a (holding function f) to b.
func (a *Acc) AppendBinary(f Func, b []byte) []byte {
	b = binary.AppendVarint(b, a.n)
	switch f {
	case Sum, Avg:
		b = appendFloat(b, a.sum)
	case Min:
		b = appendFloat(b, a.min)
	case Max:
		b = appendFloat(b, a.max)
	case Stddev:
		b = appendFloat(appendFloat(b, a.mean), a.m2)
	case First, Last:
		b = binary.AppendVarint(b, a.valTime)
		b = AppendValue(b, a.val)
	case Median, P50, P90, P95, P99:
		q := a.q
		if q == nil || q.n == 0 {
			return append(b, 0)
		}
		if !q.sketch {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(q.exact)))
			for _, x := range q.exact {
				b = appendFloat(b, x)
			}
			return b
		}
		b = append(b, 2)
		b = appendFloat(appendFloat(b, q.min), q.max)
		b = binary.AppendUvarint(b, q.zeros)
		b = q.pos.appendBinary(b)
		b = q.neg.appendBinary(b)
	case DistinctCount:
		d := a.d
		switch {
		case d == nil || (d.hll == nil && len(d.hashes) == 0):
			b = append(b, 0)
		case d.hll == nil:
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(d.hashes)))
			for _, h := range d.hashes {
				b = binary.LittleEndian.AppendUint64(b, h)
			}
		default:
			b = append(b, 2)
			b = append(b, d.hll...)
		}
	}
	return b
}

func (s *bucketStore) appendBinary(b []byte) []byte {
	b = binary.AppendVarint(b, int64(s.off))
	b = binary.AppendUvarint(b, uint64(len(s.counts)))
	for _, c := range s.counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

// DecodeBinary reads an Acc of function f written by AppendBinary from the
// front of b, replacing a's contents, and returns the bytes after it.
func (a *Acc) DecodeBinary(f Func, b []byte) ([]byte, error) {
	if !f.valid() {
		return nil, fmt.Errorf("aggregate: cannot decode unknown function %d", f)
	}
	a.Reset()
	r := Reader{b: b}
	a.n = r.Varint()
	if a.n < 0 {
		r.fail("negative count")
	}
	switch f {
	case Sum, Avg:
		a.sum = r.Float()
	case Min:
		a.min = r.Float()
	case Max:
		a.max = r.Float()
	case Stddev:
		a.mean, a.m2 = r.Float(), r.Float()
	case First, Last:
		a.valTime = r.Varint()
		a.val = r.Value()
	case Median, P50, P90, P95, P99:
		if err := a.decodeQuantiles(&r); err != nil {
			return nil, err
		}
	case DistinctCount:
		a.decodeDistinct(&r)
	}
	if r.err != nil {
		return nil, fmt.Errorf("aggregate %s: %w", f, r.err)
	}
	return r.b, nil
}

func (a *Acc) decodeQuantiles(r *Reader) error {
	mode := r.Byte()
	if mode == 0 {
		if a.n != 0 {
			r.fail("quantile values missing")
		}
		return nil
	}
	if a.q == nil {
		a.q = &quantiles{}
	}
	q := a.q
	q.n = uint64(a.n)
	switch mode {
	case 1:
		k := r.Len(8)
		if k > exactSize || uint64(k) != q.n {
			r.fail("bad exact quantile length")
			return nil
		}
		q.exact = make([]float64, 0, exactSize)
		for i := 0; i < k; i++ {
			x := r.Float()
			if i == 0 || x < q.min {
				q.min = x
			}
			if i == 0 || x > q.max {
				q.max = x
			}
			q.exact = append(q.exact, x)
		}
	case 2:
		q.sketch = true
		q.min, q.max = r.Float(), r.Float()
		q.zeros = r.Uvarint()
		r.store(&q.pos)
		r.store(&q.neg)
		if r.err == nil && q.zeros+q.pos.total+q.neg.total != q.n {
			r.fail("sketch counts do not add up")
		}
	default:
		r.fail("bad quantile mode")
	}
	return nil
}

func (r *Reader) store(s *bucketStore) {
	off := r.Varint()
	k := r.Len(1)
	if k > maxBuckets || off < math.MinInt32 || off > math.MaxInt32 {
		r.fail("bad sketch store")
		return
	}
	s.off = int(off)
	s.counts = make([]uint64, k)
	s.total = 0
	for i := range s.counts {
		s.counts[i] = r.Uvarint()
		s.total += s.counts[i]
	}
}

func (a *Acc) decodeDistinct(r *Reader) {
	if a.d == nil {
		a.d = &distinct{}
	}
	switch r.Byte() {
	case 0:
	case 1:
		k := r.Len(8)
		if k > exactDistinct {
			r.fail("bad distinct length")
			return
		}
		a.d.hashes = make([]uint64, k)
		for i := range a.d.hashes {
			a.d.hashes[i] = r.Uint64()
		}
	case 2:
		a.d.hll = append([]uint8(nil), r.Bytes(hllM)...)
	default:
		r.fail("bad distinct mode")
	}
}

func appendFloat(b []byte, x float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
}

// Value tags for AppendValue.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagFloat
	tagInt
	tagUint
	tagString
	tagNumber
	tagJSON
)

// AppendValue appends a field value. nil, bool, float64, the integer types
// (as int64/uint64), string and json.Number keep their type through a round
// trip; anything else is stored as JSON and comes back as what
// encoding/json decodes (map[string]any, []any, float64, ...).
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, tagNil)
	case bool:
		if x {
			return append(b, tagTrue)
		}
		return append(b, tagFalse)
	case float64:
		return appendFloat(append(b, tagFloat), x)
	case float32:
		return appendFloat(append(b, tagFloat), float64(x))
	case int:
		return binary.AppendVarint(append(b, tagInt), int64(x))
	case int64:
		return binary.AppendVarint(append(b, tagInt), x)
	case int32:
		return binary.AppendVarint(append(b, tagInt), int64(x))
	case int16:
		return binary.AppendVarint(append(b, tagInt), int64(x))
	case int8:
		return binary.AppendVarint(append(b, tagInt), int64(x))
	case uint:
		return binary.AppendUvarint(append(b, tagUint), uint64(x))
	case uint64:
		return binary.AppendUvarint(append(b, tagUint), x)
	case uint32:
		return binary.AppendUvarint(append(b, tagUint), uint64(x))
	case uint16:
		return binary.AppendUvarint(append(b, tagUint), uint64(x))
	case uint8:
		return binary.AppendUvarint(append(b, tagUint), uint64(x))
	case string:
		return AppendString(append(b, tagString), x)
	case json.Number:
		return AppendString(append(b, tagNumber), string(x))
	}
	js, err := json.Marshal(v)
	if err != nil {
		js = []byte("null")
	}
	return AppendString(append(b, tagJSON), string(js))
}

// AppendString appends a length-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader decodes what the Append functions of this package wrote. The first
// error sticks: later reads return zero values and Err reports it.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads from b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Rest returns the bytes not read yet.
func (r *Reader) Rest() []byte { return r.b }

var errShort = errors.New("truncated data")

func (r *Reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
	r.b = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(errShort.Error())
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Bytes reads n bytes (shared with the input).
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.fail(errShort.Error())
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

// Len reads a count of items that take at least minSize bytes each, and
// fails if the rest of the input cannot hold that many.
func (r *Reader) Len(minSize int) int {
	n := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(len(r.b)/minSize) {
		r.fail("length larger than the data")
		return 0
	}
	return int(n)
}

// Uint64 reads a little-endian uint64.
func (r *Reader) Uint64() uint64 {
	b := r.Bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// Float reads a float64.
func (r *Reader) Float() float64 { return math.Float64frombits(r.Uint64()) }

// String reads a length-prefixed string.
func (r *Reader) String() string {
	n := r.Len(1)
	return string(r.Bytes(n))
}

// Value reads a value written by AppendValue.
func (r *Reader) Value() any {
	switch r.Byte() {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagFloat:
		return r.Float()
	case tagInt:
		return r.Varint()
	case tagUint:
		return r.Uvarint()
	case tagString:
		return r.String()
	case tagNumber:
		return json.Number(r.String())
	case tagJSON:
		s := r.String()
		if r.err != nil {
			return nil
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			r.fail("bad JSON value: " + err.Error())
			return nil
		}
		return v
	}
	if r.err == nil {
		r.fail("bad value tag")
	}
	return nil
}
