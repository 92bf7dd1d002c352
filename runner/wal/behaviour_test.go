package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// impl opens one Log implementation for the shared behaviour table.
type impl struct {
	name string
	open func(t *testing.T, ro RetentionOptions, clk clock.Clock) Log
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

var impls = []impl{
	{"memory", func(t *testing.T, ro RetentionOptions, clk clock.Clock) Log {
		m := NewMemory(MemoryOptions{RetentionOptions: ro, Clock: clk, Logger: testLogger(t)})
		t.Cleanup(func() { m.Close() })
		return m
	}},
	{"file", func(t *testing.T, ro RetentionOptions, clk clock.Clock) Log {
		l, err := Open(context.Background(), t.TempDir(), Options{
			RetentionOptions: ro, Clock: clk, Logger: testLogger(t), SegmentSize: 512,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}},
}

func rec(i int) *Record {
	return &Record{Topic: fmt.Sprintf("dev/%d", i%3), Payload: []byte(fmt.Sprintf("payload-%04d", i)), QoS: byte(i % 3), Retain: i%2 == 0, Client: "c1"}
}

func appendN(t *testing.T, l Log, n, start int) {
	t.Helper()
	for i := start; i < start+n; i++ {
		if err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func readAll(t *testing.T, l Log, from uint64) []Record {
	t.Helper()
	var out []Record
	buf := make([]Record, 7)
	for from <= l.Last() {
		n, err := l.Read(context.Background(), from, buf)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		out = append(out, buf[:n]...)
		from = buf[n-1].Offset + 1
	}
	return out
}

func forEach(t *testing.T, f func(t *testing.T, im impl)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { f(t, im) })
	}
}

func TestAppendRead(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		clk := clock.NewFake(t0)
		l := im.open(t, RetentionOptions{}, clk)
		if l.First() != 1 || l.Last() != 0 {
			t.Fatalf("empty log: first %d last %d, want 1 0", l.First(), l.Last())
		}
		batch := []*Record{rec(0), rec(1), rec(2)}
		if err := l.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
		for i, r := range batch {
			if r.Offset != uint64(i+1) || r.Time != t0.UnixNano() {
				t.Fatalf("record %d: offset %d time %d", i, r.Offset, r.Time)
			}
		}
		keep := &Record{Topic: "x", Time: 42, Payload: []byte("kept")}
		if err := l.AppendWith(context.Background(), Buffered, keep); err != nil {
			t.Fatal(err)
		}
		keep.Payload[0] = 'X' // the log must have copied it
		appendN(t, l, 20, 3)
		got := readAll(t, l, 0)
		if len(got) != 24 {
			t.Fatalf("read %d records, want 24", len(got))
		}
		for i, r := range got {
			if r.Offset != uint64(i+1) {
				t.Fatalf("record %d has offset %d", i, r.Offset)
			}
		}
		if g := got[3]; g.Time != 42 || string(g.Payload) != "kept" {
			t.Fatalf("record 4 = %+v", g)
		}
		if g, w := got[10], rec(9); g.Topic != w.Topic || string(g.Payload) != string(w.Payload) || g.QoS != w.QoS || g.Retain != w.Retain || g.Client != w.Client {
			t.Fatalf("record 11 = %+v, want %+v", g, w)
		}
		buf := make([]Record, 100)
		n, err := l.Read(context.Background(), 20, buf)
		if err != nil || n != 5 || buf[0].Offset != 20 {
			t.Fatalf("read from 20: n=%d err=%v first=%d", n, err, buf[0].Offset)
		}
		st := l.Stats()
		if st.Appends != 24 || st.First != 1 || st.Last != 24 || st.Bytes <= 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestInvalidAppend(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, clock.NewFake(t0))
		if err := l.Append(context.Background(), &Record{Topic: "x", QoS: 4}); err == nil {
			t.Fatal("QoS 4 accepted")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.Append(ctx, rec(1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("append with cancelled ctx: %v", err)
		}
		if l.Last() != 0 {
			t.Fatalf("last = %d after refused appends", l.Last())
		}
	})
}

func TestReadBlocksUntilAppend(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, clock.NewFake(t0))
		appendN(t, l, 2, 0)
		type result struct {
			n   int
			off uint64
			err error
		}
		res := make(chan result, 1)
		go func() {
			buf := make([]Record, 4)
			n, err := l.Read(context.Background(), 3, buf)
			res <- result{n, buf[0].Offset, err}
		}()
		select {
		case r := <-res:
			t.Fatalf("Read returned before an append: %+v", r)
		default:
		}
		appendN(t, l, 1, 2)
		r := <-res
		if r.err != nil || r.n != 1 || r.off != 3 {
			t.Fatalf("woken read: %+v", r)
		}
	})
}

func TestReadContextAndClose(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, clock.NewFake(t0))
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := l.Read(ctx, 1, make([]Record, 1)); errc <- err }()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read: %v", err)
		}
		go func() { _, err := l.Read(context.Background(), 1, make([]Record, 1)); errc <- err }()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("read across close: %v", err)
		}
		if err := l.Append(context.Background(), rec(1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("append after close: %v", err)
		}
	})
}

func TestReadAhead(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{}, clock.NewFake(t0))
		appendN(t, l, 3, 0)
		_, err := l.Read(context.Background(), 10, make([]Record, 1))
		var ae *AheadError
		if !errors.As(err, &ae) || ae.From != 10 || ae.Last != 3 {
			t.Fatalf("read beyond end: %v", err)
		}
	})
}

func TestRetentionByAge(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		clk := clock.NewFake(t0)
		l := im.open(t, RetentionOptions{MaxAge: time.Minute, Interval: 24 * time.Hour}, clk)
		appendN(t, l, 5, 0) // t0
		clk.Set(t0.Add(30 * time.Second))
		appendN(t, l, 5, 5) // t0+30s
		clk.Set(t0.Add(70 * time.Second))
		res, err := l.Retain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Removed != 5 || l.First() != 6 || res.First != 6 {
			t.Fatalf("age retention: %+v first=%d, want 5 removed, first 6", res, l.First())
		}
		_, err = l.Read(context.Background(), 2, make([]Record, 1))
		var ge *GapError
		if !errors.As(err, &ge) || ge.Lost() != 4 || ge.First != 6 || !errors.Is(err, ErrTruncated) {
			t.Fatalf("read of removed offset: %v", err)
		}
		if got := readAll(t, l, 6); len(got) != 5 || got[0].Offset != 6 {
			t.Fatalf("after retention read %d records", len(got))
		}
		clk.Set(t0.Add(200 * time.Second))
		if res, _ := l.Retain(context.Background()); res.Removed != 5 || l.First() != 11 || l.Last() != 10 {
			t.Fatalf("retention of everything: %+v first=%d last=%d", res, l.First(), l.Last())
		}
		appendN(t, l, 1, 10)
		if l.Last() != 11 {
			t.Fatalf("append after emptying: last %d", l.Last())
		}
	})
}

func TestRetentionTicker(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		clk := clock.NewFake(t0)
		l := im.open(t, RetentionOptions{MaxAge: time.Minute, Interval: time.Second}, clk)
		appendN(t, l, 3, 0)
		clk.Set(t0.Add(2 * time.Minute))
		deadline := time.Now().Add(5 * time.Second)
		for l.First() != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("ticker retention did not run: first=%d", l.First())
			}
			clk.Advance(time.Second)
			time.Sleep(time.Millisecond) // integration-style poll of a background goroutine
		}
	})
}

func TestRetentionAgeBlockedByConsumer(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		clk := clock.NewFake(t0)
		l := im.open(t, RetentionOptions{MaxAge: time.Minute, Interval: 24 * time.Hour}, clk)
		appendN(t, l, 10, 0)
		l.SetConsumer("slow", 4)
		l.SetConsumer("fast", 11)
		clk.Set(t0.Add(time.Hour))
		res, _ := l.Retain(context.Background())
		if res.BlockedBy != "slow" || l.First() != 4 || res.Removed != 3 {
			t.Fatalf("blocked retention: %+v first=%d", res, l.First())
		}
		l.RemoveConsumer("slow")
		res, _ = l.Retain(context.Background())
		if l.First() != 11 || res.Removed != 7 {
			t.Fatalf("after removing consumer: %+v first=%d", res, l.First())
		}
		if st := l.Stats(); st.RetentionBlocked != 1 || st.RetentionRemoved != 10 || st.Consumers["fast"] != 11 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestRetentionBySizeDropOldest(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{MaxBytes: 2000, Policy: DropOldest}, clock.NewFake(t0))
		l.SetConsumer("lagging", 1)
		appendN(t, l, 200, 0)
		if _, err := l.Retain(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := l.Stats()
		if st.Bytes > 2000 || st.First <= 1 || st.Last != 200 {
			t.Fatalf("size retention: bytes %d first %d last %d", st.Bytes, st.First, st.Last)
		}
		if st.RetentionOverrun != st.First-1 {
			t.Fatalf("overrun %d, want %d", st.RetentionOverrun, st.First-1)
		}
		_, err := l.Read(context.Background(), 1, make([]Record, 1))
		var ge *GapError
		if !errors.As(err, &ge) || ge.Lost() != st.First-1 {
			t.Fatalf("lagging consumer read: %v (first %d)", err, st.First)
		}
		if got := readAll(t, l, ge.First); uint64(len(got)) != 200-st.First+1 {
			t.Fatalf("read %d after gap", len(got))
		}
	})
}

func TestRetentionBySizeBlock(t *testing.T) {
	forEach(t, func(t *testing.T, im impl) {
		l := im.open(t, RetentionOptions{MaxBytes: 2000}, clock.NewFake(t0))
		l.SetConsumer("pipeline", 1)
		// Appends go on until retention (inline for Memory, kicked in the
		// background for File) finds the limit exceeded and blocked.
		var err error
		i := 0
		for ; i < 5000 && err == nil; i++ {
			err = l.Append(context.Background(), rec(i))
		}
		if !errors.Is(err, ErrFull) {
			t.Fatalf("no ErrFull after %d appends over MaxBytes with a lagging consumer: %v", i, err)
		}
		res, rerr := l.Retain(context.Background())
		if rerr != nil {
			t.Fatal(rerr)
		}
		if res.BlockedBy != "pipeline" || l.First() != 1 {
			t.Fatalf("block policy removed data: %+v first %d", res, l.First())
		}
		st := l.Stats()
		if !st.Full || st.FullRejects != 1 || st.Last != uint64(i-1) || st.Bytes <= 2000 {
			t.Fatalf("stats %+v", st)
		}
		if err := l.Append(context.Background(), rec(i)); !errors.Is(err, ErrFull) {
			t.Fatalf("second append while full: %v", err)
		}
		l.SetConsumer("pipeline", st.Last+1)
		if _, err := l.Retain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("append after consumer caught up: %v", err)
		}
		// That append may take the log over the limit again, and the
		// retention it kicks (in the background for File) blocks on the
		// consumer that has not read it: let the consumer read it too.
		l.SetConsumer("pipeline", st.Last+2)
		if _, err := l.Retain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := l.Stats(); st.Full || st.Bytes > 2000 || st.First == 1 {
			t.Fatalf("after catching up: %+v", st)
		}
	})
}
