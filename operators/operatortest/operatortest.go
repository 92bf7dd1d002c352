// Package operatortest holds the checks every stateful operator's tests
// share. Only tests import it.
package operatortest

import (
	"bytes"
	"testing"

	"github.com/eddy-edge/eddy/operators"
)

// Restorable is an operator whose state a checkpoint carries.
type Restorable interface {
	operators.Stateful
	operators.Sized
}

// CheckRestore is the checkpoint conformance check of a stateful operator.
// feed gives inputs [from, to) of a scenario of n inputs to o and returns
// what o emitted, one string per output. The whole scenario on one
// operator must give at least minOut outputs. Then, for each cut, an
// operator fed [0, cut) is snapshotted and a new operator is restored from
// the snapshot: it must hold as many entries (StateSize), snapshot to the
// same bytes, and, fed [cut, n), complete the whole run's output exactly.
func CheckRestore[O Restorable](t *testing.T, newOp func() O, n, minOut int, cuts []int, feed func(o O, from, to int) []string) {
	t.Helper()
	want := feed(newOp(), 0, n)
	if len(want) < minOut {
		t.Fatalf("the scenario gives %d outputs, fewer than %d: too small to test a restore", len(want), minOut)
	}
	for _, cut := range cuts {
		a := newOp()
		got := feed(a, 0, cut)
		snap, err := a.Snapshot()
		if err != nil {
			t.Fatalf("cut %d: Snapshot: %v", cut, err)
		}
		b := newOp()
		if err := b.Restore(snap); err != nil {
			t.Fatalf("cut %d: Restore: %v", cut, err)
		}
		if b.StateSize() != a.StateSize() {
			t.Errorf("cut %d: StateSize %d after restore, %d before", cut, b.StateSize(), a.StateSize())
		}
		if again, err := b.Snapshot(); err != nil || !bytes.Equal(again, snap) {
			t.Errorf("cut %d: snapshot of restored state differs (%v):\n%q\n%q", cut, err, snap, again)
		}
		got = append(got, feed(b, cut, n)...)
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("cut %d: output %d after restore differs:\n got %s\nwant %s", cut, i, got[i], want[i])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("cut %d: %d outputs after restore, want %d", cut, len(got), len(want))
		}
	}
}
