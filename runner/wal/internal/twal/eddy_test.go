package twal

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the tests in a temporary directory: upstream's tests
// write their logs relative to the working directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "twal-test-")
	if err != nil {
		panic(err)
	}
	if err := os.Chdir(dir); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestTailNotInMemory: eddy's change. The tail segment keeps only the
// positions of its entries, finished segments are not cached when the log
// cycles, and every entry still reads back, before and after a reopen and
// across truncations of the tail.
func TestTailNotInMemory(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, &Options{NoSync: true, SegmentSize: 4096, SegmentCacheSize: 1, AllowEmpty: true})
	if err != nil {
		t.Fatal(err)
	}
	data := func(i uint64) string { return fmt.Sprintf("entry-%d-%0100d", i, i) }
	var b Batch
	const n = 1000
	for i := uint64(1); i <= n; i++ {
		b.Write(i, []byte(data(i)))
		if i%7 == 0 || i == n {
			if err := l.WriteBatch(&b); err != nil {
				t.Fatal(err)
			}
		}
	}
	held := func() (withBuf, withPos int) {
		for _, s := range l.segments {
			if s.ebuf != nil {
				withBuf++
			}
			if s.epos != nil {
				withPos++
			}
		}
		return
	}
	if len(l.segments) < 10 {
		t.Fatalf("%d segments; the test wants the log to cycle", len(l.segments))
	}
	if buf, pos := held(); buf != 0 || pos != 1 {
		t.Errorf("after writing: %d segments hold their bytes and %d their positions; want 0 and 1 (the tail)", buf, pos)
	}
	check := func(when string) {
		t.Helper()
		last, _ := l.LastIndex()
		first, _ := l.FirstIndex()
		for i := first; i <= last; i++ {
			got, err := l.Read(i)
			if err != nil || string(got) != data(i) {
				t.Fatalf("%s: Read(%d) = %q, %v", when, i, got, err)
			}
		}
		if buf, _ := held(); buf > 1 {
			t.Errorf("%s: %d segments hold their bytes; the cache holds 1", when, buf)
		}
	}
	check("written")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(dir, &Options{NoSync: true, SegmentSize: 4096, SegmentCacheSize: 1, AllowEmpty: true}); err != nil {
		t.Fatal(err)
	}
	if l.segments[len(l.segments)-1].ebuf != nil {
		t.Error("after reopening, the tail segment holds its bytes")
	}
	check("reopened")
	last, _ := l.LastIndex()
	if err := l.TruncateBack(last - 3); err != nil {
		t.Fatal(err)
	}
	check("tail truncated at the back")
	last, _ = l.LastIndex()
	tail := l.segments[len(l.segments)-1].index
	if err := l.TruncateFront(tail + 1); err != nil {
		t.Fatal(err)
	}
	check("truncated at the front inside the tail")
	for i := last + 1; i <= last+50; i++ {
		if err := l.Write(i, []byte(data(i))); err != nil {
			t.Fatal(err)
		}
	}
	check("written after truncations")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
