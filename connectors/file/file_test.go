package file

import (
	"context"
	"os"
	"path/filepath"
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
