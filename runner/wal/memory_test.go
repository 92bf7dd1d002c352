package wal

import (
	"context"
	"errors"
	"testing"

	"github.com/eddy-edge/eddy/clock"
)

// An in-memory log with no retention settings is bounded anyway
// (`eddy run --data-dir ""` must not keep every record forever): records a
// consumer has read are removed past DefaultMemoryMaxBytes, and a consumer
// that lags that far makes appends fail with ErrFull instead of growing the
// heap.
func TestMemoryBoundedByDefault(t *testing.T) {
	m := NewMemory(MemoryOptions{Clock: clock.NewFake(t0), Logger: testLogger(t)})
	defer m.Close()
	payload := make([]byte, 4096)
	total := 3 * DefaultMemoryMaxBytes / len(payload)
	ctx := context.Background()
	for i := 0; i < total; i++ {
		r := &Record{Topic: "t", Payload: payload}
		if err := m.Append(ctx, r); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		m.SetConsumer("pipeline", r.Offset+1) // keeps up
	}
	st := m.Stats()
	if st.Bytes > DefaultMemoryMaxBytes || st.First == 1 || st.Last != uint64(total) {
		t.Fatalf("a consumer that keeps up: stats bytes %d (bound %d) first %d last %d", st.Bytes, DefaultMemoryMaxBytes, st.First, st.Last)
	}

	m.SetConsumer("pipeline", st.Last+1)
	m.SetConsumer("lagging", st.Last+1)
	var err error
	n := 0
	for ; n < total && err == nil; n++ {
		err = m.Append(ctx, &Record{Topic: "t", Payload: payload})
		m.SetConsumer("pipeline", st.Last+uint64(n)+2)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("a lagging consumer: no ErrFull after %d appends (%v)", n, err)
	}
	if st := m.Stats(); st.Bytes > DefaultMemoryMaxBytes+int64(len(payload))+64 {
		t.Fatalf("memory log grew to %d bytes, bound %d", st.Bytes, DefaultMemoryMaxBytes)
	}
}
