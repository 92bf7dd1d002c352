package aggregate

import (
	"encoding/json"
	"math"
	"math/bits"
)

// Distinct counting.
//
// Up to exactDistinct different values the 64-bit hashes of the values are
// kept and the count is exact (barring a 64-bit hash collision). Past that
// the hashes move into a HyperLogLog (Flajolet et al. 2007) with 2^12
// registers of one byte: 4 KiB, standard error 1.04/sqrt(4096) ≈ 1.625%, with
// linear counting for small cardinalities. Hashes are FNV-1a over a type tag
// and the value's bytes, finished with murmur3's fmix64; they are the same in
// every process, so snapshots restore and merge. Numbers hash by their
// float64 value (1, int64(1) and 1.0 are one value); maps and slices hash by
// their JSON encoding.

const (
	exactDistinct = 64
	hllP          = 12
	hllM          = 1 << hllP
)

// DistinctStdError is the standard error of distinct_count past 64 values.
const DistinctStdError = 1.04 / 64 // 1.04/sqrt(2^12)

type distinct struct {
	hashes []uint64 // exact set, while hll == nil
	hll    []uint8
}

func (d *distinct) reset() {
	d.hashes = d.hashes[:0]
	d.hll = nil
}

func (d *distinct) add(h uint64) {
	if d.hll != nil {
		d.hllAdd(h)
		return
	}
	for _, x := range d.hashes {
		if x == h {
			return
		}
	}
	if len(d.hashes) < exactDistinct {
		if d.hashes == nil {
			d.hashes = make([]uint64, 0, 8)
		}
		d.hashes = append(d.hashes, h)
		return
	}
	d.toHLL()
	d.hllAdd(h)
}

func (d *distinct) toHLL() {
	d.hll = make([]uint8, hllM)
	for _, x := range d.hashes {
		d.hllAdd(x)
	}
	d.hashes = d.hashes[:0]
}

func (d *distinct) hllAdd(h uint64) {
	idx := h >> (64 - hllP)
	rho := uint8(bits.LeadingZeros64(h<<hllP|1<<(hllP-1)) + 1)
	if rho > d.hll[idx] {
		d.hll[idx] = rho
	}
}

func (d *distinct) merge(o *distinct) {
	if o.hll == nil {
		for _, h := range o.hashes {
			d.add(h)
		}
		return
	}
	if d.hll == nil {
		d.toHLL()
	}
	for i, r := range o.hll {
		if r > d.hll[i] {
			d.hll[i] = r
		}
	}
}

func (d *distinct) count() int64 {
	if d.hll == nil {
		return int64(len(d.hashes))
	}
	var sum float64
	zeros := 0
	for _, r := range d.hll {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	m := float64(hllM)
	alpha := 0.7213 / (1 + 1.079/m)
	est := alpha * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return int64(math.Round(est))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvUint64(h, x uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= x & 0xff
		h *= fnvPrime
		x >>= 8
	}
	return h
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// hashValue returns the distinct_count hash of a non-nil value.
func hashValue(v any) uint64 {
	h := uint64(fnvOffset)
	switch x := v.(type) {
	case string:
		h = fnvString(fnvUint64(h, 's'), x)
	case bool:
		b := uint64(0)
		if x {
			b = 1
		}
		h = fnvUint64(fnvUint64(h, 'b'), b)
	default:
		if f, ok := ToFloat(v); ok {
			if f == 0 {
				f = 0 // -0 and 0 are one value
			}
			h = fnvUint64(fnvUint64(h, 'n'), math.Float64bits(f))
			break
		}
		if n, ok := v.(json.Number); ok {
			h = fnvString(fnvUint64(h, 's'), string(n))
			break
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(err.Error())
		}
		h = fnvString(fnvUint64(h, 'j'), string(b))
	}
	return fmix64(h)
}
