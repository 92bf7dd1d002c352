package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
)

func TestAppendsLinesAndTrimsTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "out.jsonl")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Write(ctx, &pipeline.Event{Raw: []byte(`{ "a": 1 }`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &pipeline.Event{Fields: map[string]any{"b": "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves half a line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"c":`)
	f.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(ctx, &pipeline.Event{Fields: map[string]any{"c": 3}})
	s.Close()
	got, _ := os.ReadFile(path)
	if want := "{\"a\":1}\n{\"b\":\"x\"}\n{\"c\":3}\n"; string(got) != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
}

func TestRawThatIsNotJSONIsAnError(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "o.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), &pipeline.Event{Raw: []byte("not json")}); err == nil {
		t.Fatal("want an error for a raw payload that is not JSON")
	}
}

// A full disk (real ENOSPC from /dev/full) is a retryable error that loses
// nothing: the lines stay buffered, the failed event is left out so its
// retry adds it once, and when writes work again every line lands once.
func TestFullDiskIsRetryableAndLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	good := s.f
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	defer full.Close()
	s.f = full // the disk fills up
	ctx := context.Background()
	pad := strings.Repeat("x", 1000)
	var failed error
	n := 0
	for ; n < 200 && failed == nil; n++ {
		failed = s.Write(ctx, &pipeline.Event{Fields: map[string]any{"n": n, "pad": pad}})
	}
	if failed == nil || pipeline.IsPermanent(failed) || !strings.Contains(failed.Error(), "no space left") {
		t.Fatalf("write on a full disk: %v; want a retryable ENOSPC error", failed)
	}
	if err := s.Flush(ctx); err == nil {
		t.Fatal("Flush on a full disk succeeded")
	}
	s.f = good // space is freed; the engine retries the failed event
	if err := s.Write(ctx, &pipeline.Event{Fields: map[string]any{"n": n - 1, "pad": pad}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf(`{"n":%d,`, i)) {
			t.Fatalf("line %d = %.20s…; want n=%d (each line once, in order)", i, l, i)
		}
	}
}
