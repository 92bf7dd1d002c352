package wal

import (
	"context"
	"fmt"
	"testing"
)

// Async appends return before the write, must not keep the caller's
// payload, and are all written by Close.
func TestAsyncAppendCopiesAndCloseDrains(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Open(ctx, dir, Options{MaxAsyncQueue: 16})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	const n = 1000
	for i := 0; i < n; i++ {
		copy(buf, fmt.Sprintf("m%07d", i))
		r := &Record{Topic: "t", Payload: buf}
		if err := l.AppendWith(ctx, Async, r); err != nil {
			t.Fatal(err)
		}
		if r.Offset != uint64(i+1) {
			t.Fatalf("offset %d for append %d", r.Offset, i)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs := make([]Record, n)
	got := 0
	for got < n {
		k, err := l.Read(ctx, uint64(got+1), recs[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	for i, r := range recs {
		if want := fmt.Sprintf("m%07d", i); string(r.Payload) != want {
			t.Fatalf("record %d = %q, want %q (the caller's buffer was reused)", i, r.Payload, want)
		}
	}
}

func BenchmarkAppendAsync(b *testing.B) {
	l, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.AppendWith(context.Background(), Async, &Record{Topic: "bench/t", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// AppendOwned keeps the caller's payload instead of a copy (readers of the
// tail see the same bytes), assigns offsets in order with other appends,
// stamps a record without a time, and the records survive a reopen.
func TestAppendOwnedKeepsPayload(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l := openFile(t, dir, Options{})
	owned := []byte("owned-1")
	if err := l.AppendOwned(ctx, Record{Topic: "t", Payload: owned}); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendWith(ctx, Async, &Record{Topic: "t", Payload: []byte("copied-2")}); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendOwned(ctx, Record{Topic: "t", Payload: []byte("owned-3"), Time: 42}); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendOwned(ctx, Record{Topic: "t", Payload: owned, QoS: 3}); err == nil {
		t.Fatal("AppendOwned accepted QoS 3")
	}
	recs := make([]Record, 4)
	got := 0
	for got < 3 {
		k, err := l.Read(ctx, uint64(got+1), recs[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	if got != 3 {
		t.Fatalf("read %d records, want 3", got)
	}
	for i, want := range []string{"owned-1", "copied-2", "owned-3"} {
		if r := recs[i]; string(r.Payload) != want || r.Offset != uint64(i+1) {
			t.Fatalf("record %d = %q at offset %d, want %q at %d", i, r.Payload, r.Offset, want, i+1)
		}
	}
	if &recs[0].Payload[0] != &owned[0] {
		t.Fatal("the log copied an owned payload")
	}
	if recs[0].Time != t0.UnixNano() || recs[2].Time != 42 {
		t.Fatalf("times %d and %d, want the clock's %d and the record's 42", recs[0].Time, recs[2].Time, t0.UnixNano())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openFile(t, dir, Options{})
	defer l.Close()
	if k, err := l.Read(ctx, 1, recs); err != nil || k != 3 || string(recs[2].Payload) != "owned-3" {
		t.Fatalf("after reopen: %d records, %v; last %q", k, err, recs[2].Payload)
	}
}
