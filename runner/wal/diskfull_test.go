package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/tmpfstest"
)

// With the WAL on a full filesystem, durable appends are refused (none
// acknowledged that is not on disk), Stats says why, and when space comes
// back the log heals by itself: appends are taken again, every record
// acknowledged before is still there in order, and a reopen agrees.
func TestDiskFullHeals(t *testing.T) {
	fs := tmpfstest.Mount(t, "8m")
	dir := filepath.Join(fs, "wal")
	l, err := Open(context.Background(), dir, Options{SegmentSize: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	ballast := filepath.Join(fs, "ballast")
	tmpfstest.Fill(t, ballast, 2<<20)

	ctx := context.Background()
	payload := make([]byte, 1000)
	acked := 0
	var failErr error
	for i := 0; i < 10000; i++ {
		r := &Record{Topic: "t", Payload: append([]byte(fmt.Sprintf("%06d", i)), payload...)}
		if err := l.AppendWith(ctx, Durable, r); err != nil {
			failErr = err
			break
		}
		if r.Offset != uint64(i+1) {
			t.Fatalf("record %d got offset %d", i, r.Offset)
		}
		acked++
	}
	if failErr == nil || !errors.Is(failErr, syscall.ENOSPC) {
		t.Fatalf("no ENOSPC after %d appends to a 2 MiB space: %v", acked, failErr)
	}
	st := l.Stats()
	t.Logf("%d records acknowledged before the disk was full; then: %v", acked, failErr)
	if st.WriteError == "" || st.WriteFailures != 1 {
		t.Fatalf("stats while failing: %+v", st)
	}
	if err := l.Append(ctx, &Record{Topic: "t", Payload: []byte("refused")}); err == nil {
		t.Fatal("an append was taken while the disk is full")
	}

	// Space comes back: the log takes appends again without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := l.Append(ctx, &Record{Topic: "t", Payload: []byte("after")})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log did not heal within 15s after space came back: %v (stats %+v)", err, l.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st = l.Stats()
	if st.WriteError != "" || st.Heals != 1 || st.Last != uint64(acked)+1 {
		t.Fatalf("after healing: %+v (acked %d)", st, acked)
	}
	check := func(l *File) {
		t.Helper()
		got := readAll(t, l, 1)
		if len(got) != acked+1 {
			t.Fatalf("read %d records, want %d acknowledged + 1", len(got), acked)
		}
		for i, r := range got[:acked] {
			if want := fmt.Sprintf("%06d", i); r.Offset != uint64(i+1) || string(r.Payload[:6]) != want {
				t.Fatalf("record %d: offset %d payload %q, want %q", i, r.Offset, r.Payload[:6], want)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(ctx, dir, Options{SegmentSize: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	check(l)
}
