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
