package wal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// notified records AppendNotify callbacks in the order they ran.
type notified struct {
	mu   sync.Mutex
	offs []*uint64
	errs []error
}

// done returns a callback recording off, which the caller sets from the
// record after AppendNotify returns. The callback may run before that, so
// it keeps the pointer; snapshot, called once every AppendNotify returned,
// reads it.
func (n *notified) done(off *uint64) func(error) {
	return func(err error) {
		n.mu.Lock()
		n.offs = append(n.offs, off)
		n.errs = append(n.errs, err)
		n.mu.Unlock()
	}
}

func (n *notified) snapshot() ([]uint64, []error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	offs := make([]uint64, len(n.offs))
	for i, p := range n.offs {
		offs[i] = *p
	}
	return offs, append([]error(nil), n.errs...)
}

// Callbacks of concurrent AppendNotify callers run once each, with nil, in
// offset order (checked against a reread of the log), whatever the
// durability and mixed with appenders that wait; each caller's appends get
// increasing offsets.
func TestAppendNotifyOrder(t *testing.T) {
	for _, d := range []Durability{Durable, Buffered, Async} {
		t.Run(d.String(), func(t *testing.T) {
			forEach(t, func(t *testing.T, im impl) {
				l := im.open(t, RetentionOptions{}, nil)
				ctx := context.Background()
				const writers, per = 4, 250
				var (
					mu    sync.Mutex
					order []string
					cbs   sync.WaitGroup
					wg    sync.WaitGroup
				)
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var prev uint64
						for i := 0; i < per; i++ {
							tag := fmt.Sprintf("w%d-%d", w, i)
							cbs.Add(1)
							cb := func(err error) {
								if err != nil {
									t.Errorf("callback %s: %v", tag, err)
								}
								mu.Lock()
								order = append(order, tag)
								mu.Unlock()
								cbs.Done()
							}
							r := &Record{Topic: "t", Payload: []byte(tag)}
							if err := l.AppendNotify(ctx, d, cb, r); err != nil {
								t.Error(err)
								cbs.Done()
								return
							}
							if r.Offset <= prev {
								t.Errorf("writer %d: offset %d after %d", w, r.Offset, prev)
							}
							prev = r.Offset
							if i%50 == 0 { // waiting appenders share the batches
								if err := l.AppendWith(ctx, d, &Record{Topic: "t", Payload: []byte("sync")}); err != nil {
									t.Error(err)
								}
							}
						}
					}()
				}
				wg.Wait()
				cbs.Wait()
				var logged []string
				for _, r := range readAll(t, l, 1) {
					if string(r.Payload) != "sync" {
						logged = append(logged, string(r.Payload))
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if len(order) != writers*per || len(logged) != writers*per {
					t.Fatalf("%d callbacks, %d records logged; want %d of each", len(order), len(logged), writers*per)
				}
				for i := range logged {
					if order[i] != logged[i] {
						t.Fatalf("callback %d was for %q, but the %dth record logged is %q", i, order[i], i, logged[i])
					}
				}
			})
		})
	}
}

// A write failure fails the batch being written and every queued callback,
// in order; later AppendNotify calls return the error and never call back.
func TestAppendNotifyFailureFailsEveryPending(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, t.TempDir(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var n notified
	var cbs sync.WaitGroup
	// Hold the writer lock: the committer takes the first request and
	// blocks, the others queue behind it.
	l.twMu.Lock()
	offs := make([]uint64, 5)
	for i := range offs {
		r := &Record{Topic: "t", Payload: []byte{byte(i)}}
		cb := n.done(&offs[i])
		cbs.Add(1)
		if err := l.AppendNotify(ctx, Durable, func(err error) { cb(err); cbs.Done() }, r); err != nil {
			t.Fatal(err)
		}
		offs[i] = r.Offset
	}
	if err := l.tw.Close(); err != nil { // the next write fails
		t.Fatal(err)
	}
	l.twMu.Unlock()
	cbs.Wait()
	got, errs := n.snapshot()
	if len(got) != len(offs) {
		t.Fatalf("%d callbacks ran, want %d", len(got), len(offs))
	}
	for i := range got {
		if got[i] != offs[i] {
			t.Fatalf("callback %d for offset %d, want %d (out of order)", i, got[i], offs[i])
		}
		if errs[i] == nil {
			t.Fatalf("callback for offset %d succeeded after a write failure", got[i])
		}
	}
	called := false
	err = l.AppendNotify(ctx, Durable, func(error) { called = true }, &Record{Topic: "t"})
	if err == nil || called {
		t.Fatalf("append after failure: err %v, callback called %v; want an error and no callback", err, called)
	}
}

// Close commits everything queued: every callback runs (with nil) before
// Close returns, and the records are in the log after reopening.
func TestAppendNotifyCloseDrains(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n notified
	const total = 2000
	offs := make([]uint64, total)
	buf := make([]byte, 8)
	for i := range offs {
		copy(buf, fmt.Sprintf("m%07d", i))
		r := &Record{Topic: "t", Payload: buf} // reused: AppendNotify copies
		if err := l.AppendNotify(ctx, Durable, n.done(&offs[i]), r); err != nil {
			t.Fatal(err)
		}
		offs[i] = r.Offset
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, errs := n.snapshot()
	if len(got) != total {
		t.Fatalf("%d callbacks ran before Close returned, want %d", len(got), total)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("callback %d: %v", i, err)
		}
	}
	if err := l.AppendNotify(ctx, Durable, func(error) { t.Error("callback after Close") }, &Record{Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendNotify after Close: %v, want ErrClosed", err)
	}
	l, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs := readAll(t, l, 1)
	if len(recs) != total {
		t.Fatalf("reopened log holds %d records, want %d", len(recs), total)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("m%07d", i); string(r.Payload) != want {
			t.Fatalf("record %d = %q, want %q", i, r.Payload, want)
		}
	}
}

func TestAppendNotifyNeedsCallback(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, nil)
		if err := l.AppendNotify(context.Background(), Durable, nil, rec(1)); err == nil {
			t.Fatal("AppendNotify without a callback succeeded")
		}
	})
}

// BenchmarkAppendNotifyDurable keeps up to 256 durable appends in flight
// from one goroutine, as the broker does for one pipelining client.
func BenchmarkAppendNotifyDurable(b *testing.B) {
	l, err := Open(context.Background(), b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, 64)
	room := make(chan struct{}, 256)
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		<-room
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		room <- struct{}{}
		if err := l.AppendNotify(context.Background(), Durable, done, &Record{Topic: "bench/t", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < cap(room); i++ {
		room <- struct{}{}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
