package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

func openFile(t *testing.T, dir string, o Options) *File {
	t.Helper()
	if o.Clock == nil {
		o.Clock = clock.NewFake(t0)
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	l, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tailFile returns the path of the newest segment file in dir.
func tailFile(t *testing.T, dir string) string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return filepath.Join(dir, segs[len(segs)-1].name)
}

// entryOffsets returns the byte offset at which each tidwall entry of a
// segment file starts.
func entryOffsets(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pos []int
	for p := 0; p < len(data); {
		size, n := binary.Uvarint(data[p:])
		pos = append(pos, p)
		p += n + int(size)
	}
	return pos
}

func TestRecovery(t *testing.T) {
	tests := []struct {
		name        string
		damage      func(t *testing.T, path string)
		wantLast    uint64
		wantDropped int
		wantBytes   bool // BytesDropped > 0
		wantReason  string
		wantSkipped []uint64 // offsets that must not be delivered
	}{
		{
			name:   "clean",
			damage: func(t *testing.T, path string) {},
			// nothing dropped
			wantLast: 10,
		},
		{
			name: "torn tail",
			damage: func(t *testing.T, path string) {
				pos := entryOffsets(t, path)
				// cut the last entry in the middle of its data
				fi, _ := os.Stat(path)
				cut := int64(pos[len(pos)-1]) + (fi.Size()-int64(pos[len(pos)-1]))/2
				if err := os.Truncate(path, cut); err != nil {
					t.Fatal(err)
				}
			},
			wantLast: 9, wantDropped: 1, wantBytes: true, wantReason: "torn write",
		},
		{
			name: "zero-filled tail",
			damage: func(t *testing.T, path string) {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(make([]byte, 4096))
				f.Close()
			},
			wantLast: 10, wantDropped: 0, wantBytes: true, wantReason: "zero-filled tail",
		},
		{
			// A crash after the file grew but before its last blocks were
			// written: the last records read back as zeros. Their number
			// cannot be known, so none is counted (it used to count one
			// entry per zero byte).
			name: "last records zeroed from an entry boundary",
			damage: func(t *testing.T, path string) {
				zeroFrom(t, path, entryOffsets(t, path)[7])
			},
			wantLast: 7, wantDropped: 0, wantBytes: true, wantReason: "zero-filled tail",
		},
		{
			name: "last records zeroed from the middle of an entry",
			damage: func(t *testing.T, path string) {
				zeroFrom(t, path, entryOffsets(t, path)[7]+3)
			},
			wantLast: 7, wantDropped: 1, wantBytes: true, wantReason: "zero-filled tail",
		},
		{
			name: "flipped bit in the last entry",
			damage: func(t *testing.T, path string) {
				flipLastByteOfEntry(t, path, 9)
			},
			wantLast: 9, wantDropped: 1, wantBytes: true, wantReason: "offset 10",
		},
		{
			name: "flipped bit in an earlier entry",
			damage: func(t *testing.T, path string) {
				flipLastByteOfEntry(t, path, 3) // offset 4
			},
			wantLast: 10, wantSkipped: []uint64{4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openFile(t, dir, Options{})
			appendN(t, l, 10, 0)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, tailFile(t, dir))

			l = openFile(t, dir, Options{})
			defer l.Close()
			rep := l.Recovery()
			if rep.Last != tt.wantLast || l.Last() != tt.wantLast {
				t.Fatalf("after recovery last = %d (report %d), want %d; report %+v", l.Last(), rep.Last, tt.wantLast, rep)
			}
			if rep.EntriesDropped != tt.wantDropped || rep.Truncated() != tt.wantBytes || !strings.Contains(rep.Reason, tt.wantReason) {
				t.Fatalf("report %+v, want dropped %d, reason containing %q", rep, tt.wantDropped, tt.wantReason)
			}
			if rep.EntriesKept != int(tt.wantLast) || rep.CorruptKept != len(tt.wantSkipped) {
				t.Fatalf("report %+v: want kept %d, corrupt %d", rep, tt.wantLast, len(tt.wantSkipped))
			}
			got := readAll(t, l, 1)
			if len(got) != int(tt.wantLast)-len(tt.wantSkipped) {
				t.Fatalf("read %d records, want %d", len(got), int(tt.wantLast)-len(tt.wantSkipped))
			}
			for _, r := range got {
				for _, s := range tt.wantSkipped {
					if r.Offset == s {
						t.Fatalf("corrupt record %d was delivered", s)
					}
				}
				w := rec(int(r.Offset - 1))
				if string(r.Payload) != string(w.Payload) || r.Topic != w.Topic {
					t.Fatalf("record %d = %q %q, want %q %q", r.Offset, r.Topic, r.Payload, w.Topic, w.Payload)
				}
			}
			if st := l.Stats(); st.CorruptSkipped != uint64(len(tt.wantSkipped)) || st.TruncatedEntries != uint64(tt.wantDropped) {
				t.Fatalf("stats %+v", st)
			}
			// The repaired log takes new appends at the right offsets and
			// survives another reopen.
			appendN(t, l, 2, 100)
			if l.Last() != tt.wantLast+2 {
				t.Fatalf("append after recovery: last %d", l.Last())
			}
			l.Close()
			l = openFile(t, dir, Options{})
			if l.Recovery().Truncated() || l.Last() != tt.wantLast+2 {
				t.Fatalf("second reopen: %+v last %d", l.Recovery(), l.Last())
			}
		})
	}
}

// zeroFrom overwrites the segment file from byte pos to its end with zeros.
func zeroFrom(t *testing.T, path string, pos int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clear(data[pos:])
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func flipLastByteOfEntry(t *testing.T, path string, entry int) {
	t.Helper()
	pos := entryOffsets(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(data)
	if entry+1 < len(pos) {
		end = pos[entry+1]
	}
	data[end-1] ^= 0x04
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestReadFromDiskAfterCacheEviction(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, Options{CacheRecords: 4, SegmentSize: 300})
	defer l.Close()
	appendN(t, l, 50, 0)
	got := readAll(t, l, 1)
	if len(got) != 50 {
		t.Fatalf("read %d", len(got))
	}
	for i, r := range got {
		if w := rec(i); r.Offset != uint64(i+1) || string(r.Payload) != string(w.Payload) || r.Client != w.Client {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
	st := l.Stats()
	if st.DiskReads != 46 || st.CacheReads != 4 || st.Segments < 5 {
		t.Fatalf("disk %d cache %d segments %d; want 46 from disk, 4 from cache, several segments", st.DiskReads, st.CacheReads, st.Segments)
	}
}

func TestReopenKeepsEverythingAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, Options{SegmentSize: 256})
	appendN(t, l, 100, 0)
	want := l.Stats()
	l.Close()
	l = openFile(t, dir, Options{SegmentSize: 256})
	defer l.Close()
	st := l.Stats()
	if st.Last != 100 || st.Segments != want.Segments || st.Bytes != want.Bytes {
		t.Fatalf("reopen: segments %d bytes %d last %d; before close %d %d %d (the segment mirror drifted from tidwall)",
			st.Segments, st.Bytes, st.Last, want.Segments, want.Bytes, want.Last)
	}
	if got := readAll(t, l, 1); len(got) != 100 {
		t.Fatalf("read %d", len(got))
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, Options{Clock: clock.Real{}, SegmentSize: 64 << 10})
	const writers, each = 16, 100
	var wg sync.WaitGroup
	acked := make([][]uint64, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r := &Record{Topic: fmt.Sprintf("w/%d", w), Payload: []byte(fmt.Sprintf("%d-%d", w, i)), QoS: 1}
				d := Durable
				if i%4 == 0 {
					d = Buffered
				}
				if err := l.AppendWith(context.Background(), d, r); err != nil {
					t.Error(err)
					return
				}
				acked[w] = append(acked[w], r.Offset)
			}
		}(w)
	}
	wg.Wait()
	st := l.Stats()
	if st.Appends != writers*each || st.Fsyncs >= st.Appends || st.MaxBatchSeen < 2 {
		t.Fatalf("no group commit: %d appends, %d fsyncs, max batch %d", st.Appends, st.Fsyncs, st.MaxBatchSeen)
	}
	if st.FsyncTime <= 0 {
		t.Fatalf("%d fsyncs took %v in all: the time in fsync is not counted", st.Fsyncs, st.FsyncTime)
	}
	t.Logf("%d appends in %d batches with %d fsyncs (max batch %d) taking %v", st.Appends, st.Batches, st.Fsyncs, st.MaxBatchSeen, st.FsyncTime)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openFile(t, dir, Options{})
	defer l.Close()
	byOffset := map[uint64]Record{}
	for _, r := range readAll(t, l, 1) {
		byOffset[r.Offset] = r
	}
	if len(byOffset) != writers*each {
		t.Fatalf("reopened log has %d records, want %d", len(byOffset), writers*each)
	}
	for w, offs := range acked {
		for i, off := range offs {
			r, ok := byOffset[off]
			if !ok || string(r.Payload) != fmt.Sprintf("%d-%d", w, i) {
				t.Fatalf("acknowledged append %d-%d at offset %d: got %q", w, i, off, r.Payload)
			}
			if i > 0 && off <= offs[i-1] {
				t.Fatalf("writer %d offsets not increasing: %v", w, offs[:i+1])
			}
		}
	}
}

func TestBufferedSyncedByTicker(t *testing.T) {
	clk := clock.NewFake(t0)
	l := openFile(t, t.TempDir(), Options{Durability: Buffered, Clock: clk, SyncInterval: 50 * time.Millisecond})
	defer l.Close()
	appendN(t, l, 3, 0)
	if st := l.Stats(); st.Fsyncs != 0 || st.Last != 3 {
		t.Fatalf("buffered appends fsynced or invisible: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Fsyncs == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sync ticker never fsynced buffered records")
		}
		clk.Advance(50 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if err := l.AppendWith(context.Background(), Durable, rec(3)); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Fsyncs != 2 {
		t.Fatalf("durable append: fsyncs %d, want 2", st.Fsyncs)
	}
}

func TestRetentionRemovesSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	l := openFile(t, dir, Options{SegmentSize: 256, RetentionOptions: RetentionOptions{MaxBytes: 1024, Interval: time.Hour}})
	defer l.Close()
	appendN(t, l, 200, 0)
	if _, err := l.Retain(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ := listSegments(dir)
	var size int64
	for _, s := range segs {
		size += s.size
	}
	st := l.Stats()
	if size > 1024 || st.Bytes != size || st.Segments != len(segs) || segs[0].start != st.First {
		t.Fatalf("on disk %d bytes in %d segments (first %d); stats %+v", size, len(segs), segs[0].start, st)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "", Options{}); err == nil || !strings.Contains(err.Error(), "NewMemory") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := Open(ctx, t.TempDir(), Options{RetentionOptions: RetentionOptions{Policy: "keep"}}); err == nil || !strings.Contains(err.Error(), "drop-oldest") {
		t.Fatalf("bad policy: %v", err)
	}
	l := openFile(t, t.TempDir(), Options{})
	if err := l.AppendWith(ctx, Durability(7), rec(1)); err == nil {
		t.Fatal("unknown durability accepted")
	}
	l.Close()
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

// TestDropCache: after DropCache the records are read from the segment
// files, unchanged, and new appends are cached again.
func TestDropCache(t *testing.T) {
	l, err := Open(context.Background(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 10 {
		if err := l.Append(context.Background(), &Record{Topic: "t", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	l.DropCache()
	if l.cache.n != 0 {
		t.Fatalf("cache holds %d records after DropCache", l.cache.n)
	}
	buf := make([]Record, 16)
	n, err := l.Read(context.Background(), 1, buf)
	if err != nil || n != 10 {
		t.Fatalf("read %d, %v", n, err)
	}
	for i := range n {
		if buf[i].Offset != uint64(i+1) || buf[i].Payload[0] != byte(i) {
			t.Fatalf("record %d: %+v", i, buf[i])
		}
	}
	if err := l.Append(context.Background(), &Record{Topic: "t", Payload: []byte{10}}); err != nil {
		t.Fatal(err)
	}
	if l.cache.get(11) == nil {
		t.Fatal("a new append is not cached after DropCache")
	}
}

// TestConcurrentDiskReads: many readers of old segments at once, with one
// cached segment, read every record intact (tidwall/wal evicts a segment's
// buffer under its read lock; File serialises its Reads).
func TestConcurrentDiskReads(t *testing.T) {
	l, err := Open(context.Background(), t.TempDir(), Options{SegmentSize: 4 << 10, SegmentCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 3000
	for i := range n {
		if err := l.Append(context.Background(), &Record{Topic: "t", Payload: []byte(fmt.Sprintf("%08d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	l.DropCache()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]Record, 64)
			for from := uint64(1 + g*97); from <= n; {
				k, err := l.Read(context.Background(), from, buf)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range buf[:k] {
					if string(r.Payload) != fmt.Sprintf("%08d", r.Offset-1) {
						errs <- fmt.Errorf("offset %d: payload %q", r.Offset, r.Payload)
						return
					}
				}
				from += uint64(k)
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSegmentCacheReachesTidwall: the number of older segments kept in
// memory is the option's (the budget's), not a
// constant (it was 2 whatever the budget said).
func TestSegmentCacheReachesTidwall(t *testing.T) {
	for _, n := range []int{1, 3} {
		o := Options{SegmentCache: n}
		o.defaults()
		if got := o.twOptions().SegmentCacheSize; got != n {
			t.Errorf("SegmentCache %d: tidwall/wal keeps %d segments", n, got)
		}
	}
}
