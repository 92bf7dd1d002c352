package window

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/eddy-edge/eddy/operators/aggregate"
)

// Snapshot layout (version 1), all integers varints unless noted:
//
//	"EWN" 1
//	fingerprint string (window kind, sizes, lateness, aggregates)
//	hasMax byte, maxTime, nextID
//	keys: count, then per key in key order:
//	  key string, scheduled byte, nextEnd, windows: count, then per window:
//	    id, start, end, events, offset, one accumulator per aggregate
//
// The same state always gives the same bytes. A snapshot only restores into
// an operator with the same fingerprint: a changed window or aggregate list
// means the open windows mean something else, and the caller must start the
// step empty instead.

const snapshotVersion = 1

// Snapshot encodes every open window, its accumulators and the max event
// time, so that Restore continues exactly where the operator was.
func (o *Operator) Snapshot() ([]byte, error) {
	b := append([]byte("EWN"), snapshotVersion)
	b = aggregate.AppendString(b, o.fingerprint)
	b = appendBool(b, o.hasMax)
	b = binary.AppendVarint(b, o.maxTime)
	b = binary.AppendUvarint(b, o.nextID)
	keys := make([]string, 0, len(o.keys))
	for k := range o.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		ks := o.keys[k]
		b = aggregate.AppendString(b, k)
		b = appendBool(b, ks.scheduled)
		b = binary.AppendVarint(b, ks.nextEnd)
		b = binary.AppendUvarint(b, uint64(len(ks.wins)))
		for _, w := range ks.wins {
			b = binary.AppendUvarint(b, w.id)
			b = binary.AppendVarint(b, w.start)
			b = binary.AppendVarint(b, w.end)
			b = binary.AppendVarint(b, w.n)
			b = binary.AppendUvarint(b, w.offset)
			for i := range w.accs {
				b = w.accs[i].AppendBinary(o.specs[i].Func, b)
			}
		}
	}
	return b, nil
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Restore replaces the operator's windows with those in data, written by
// Snapshot of an operator with the same configuration. On error the
// operator is left empty (no open windows, no watermark) and usable.
func (o *Operator) Restore(data []byte) error {
	o.reset()
	if err := o.restore(data); err != nil {
		o.reset()
		return fmt.Errorf("%s: restore: %w", o.name, err)
	}
	return nil
}

func (o *Operator) reset() {
	for _, ks := range o.keys {
		o.dropKey(ks)
	}
	clear(o.heap)
	o.heap = o.heap[:0]
	o.hasMax, o.maxTime, o.nextID = false, 0, 0
}

func (o *Operator) restore(data []byte) error {
	if len(data) < 4 || string(data[:3]) != "EWN" {
		return fmt.Errorf("not a window snapshot")
	}
	if data[3] != snapshotVersion {
		return fmt.Errorf("snapshot version %d, this runner reads version %d", data[3], snapshotVersion)
	}
	r := aggregate.NewReader(data[4:])
	fp := r.String()
	if r.Err() == nil && fp != o.fingerprint {
		return fmt.Errorf("snapshot was taken with a different window or aggregate configuration (%q, now %q); the step must start empty", fp, o.fingerprint)
	}
	o.hasMax = r.Byte() == 1
	o.maxTime = r.Varint()
	o.nextID = r.Uvarint()
	nkeys := r.Len(3)
	prev := ""
	for k := 0; k < nkeys && r.Err() == nil; k++ {
		key := r.String()
		if k > 0 && key <= prev {
			return fmt.Errorf("keys out of order")
		}
		prev = key
		ks := o.keyState(key)
		ks.scheduled = r.Byte() == 1
		ks.nextEnd = r.Varint()
		nw := r.Len(5)
		if r.Err() == nil && nw == 0 {
			return fmt.Errorf("key %q has no windows", key)
		}
		for i := 0; i < nw && r.Err() == nil; i++ {
			w := o.newWin(0, 0)
			ks.wins = append(ks.wins, w)
			w.id = r.Uvarint()
			w.start = r.Varint()
			w.end = r.Varint()
			w.n = r.Varint()
			w.offset = r.Uvarint()
			if r.Err() != nil {
				break
			}
			rest := r.Rest()
			for j := range w.accs {
				var err error
				if rest, err = w.accs[j].DecodeBinary(o.specs[j].Func, rest); err != nil {
					return fmt.Errorf("key %q: %w", key, err)
				}
			}
			r = aggregate.NewReader(rest)
			if err := o.checkWin(ks, i); err != nil {
				return fmt.Errorf("key %q: %w", key, err)
			}
		}
		if r.Err() != nil {
			break
		}
		switch o.kind {
		case tumbling, sliding:
			if !ks.scheduled {
				return fmt.Errorf("key %q has windows but no close time", key)
			}
			o.heap.push(entry{end: ks.nextEnd, key: ks.key, ks: ks})
		case session:
			for _, w := range ks.wins {
				o.heap.push(entry{end: w.end, key: ks.key, ks: ks, id: w.id})
			}
		case count:
			if len(ks.wins) != 1 {
				return fmt.Errorf("key %q has %d count windows, want 1", key, len(ks.wins))
			}
		}
	}
	if r.Err() != nil {
		return r.Err()
	}
	if len(r.Rest()) != 0 {
		return fmt.Errorf("%d bytes of trailing data", len(r.Rest()))
	}
	return nil
}

// checkWin validates window i of ks against the operator's kind, so that a
// corrupt snapshot is rejected instead of misbehaving later.
func (o *Operator) checkWin(ks *keyState, i int) error {
	w := ks.wins[i]
	if w.n <= 0 {
		return fmt.Errorf("window %d has no events", i)
	}
	if i > 0 && ks.wins[i-1].end > w.start && o.kind != count {
		return fmt.Errorf("windows overlap or are out of order")
	}
	switch o.kind {
	case tumbling, sliding:
		if floorDiv(w.start, o.every)*o.every != w.start || w.end != w.start+o.every {
			return fmt.Errorf("pane [%d, %d) is not aligned to %d", w.start, w.end, o.every)
		}
	case session:
		if w.end <= w.start || w.id == 0 || w.id > o.nextID {
			return fmt.Errorf("bad session [%d, %d) id %d", w.start, w.end, w.id)
		}
	case count:
		if w.end < w.start || w.n >= o.countN {
			return fmt.Errorf("bad count window")
		}
	}
	return nil
}
