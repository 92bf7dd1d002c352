package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var ts = time.Date(2026, 11, 22, 10, 0, 0, 123, time.UTC)

type storeImpl struct {
	name string
	open func(t *testing.T) Store
}

var stores = []storeImpl{
	{"memory", func(t *testing.T) Store { return NewMemoryStore() }},
	{"file", func(t *testing.T) Store {
		s, err := NewFileStore(t.TempDir(), FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func TestStoreBehaviour(t *testing.T) {
	ctx := context.Background()
	for _, im := range stores {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			if _, ok, err := s.Load(ctx, "p1"); ok || err != nil {
				t.Fatalf("load of missing: ok=%v err=%v", ok, err)
			}
			state := []byte("window-state")
			for i, cp := range []Checkpoint{
				{Pipeline: "p1", PlanHash: "h1", Offset: 10, State: state, Time: ts},
				{Pipeline: "p1", PlanHash: "h2", Offset: 20, State: nil, Time: ts.Add(time.Second)},
				{Pipeline: "ns/p 2", PlanHash: "", Offset: 1 << 50, State: bytes.Repeat([]byte{0}, 1000)},
			} {
				if err := s.Save(ctx, cp); err != nil {
					t.Fatalf("save %d: %v", i, err)
				}
				wantState := append([]byte(nil), cp.State...)
				state[0] = 'X' // the store must not alias the caller's slice
				got, ok, err := s.Load(ctx, cp.Pipeline)
				if err != nil || !ok {
					t.Fatalf("load %d: ok=%v err=%v", i, ok, err)
				}
				if got.Pipeline != cp.Pipeline || got.PlanHash != cp.PlanHash || got.Offset != cp.Offset ||
					!bytes.Equal(got.State, wantState) || !got.Time.Equal(cp.Time) {
					t.Fatalf("load %d = %+v, want %+v", i, got, cp)
				}
			}
			if err := s.Delete(ctx, "p1"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := s.Load(ctx, "p1"); ok {
				t.Fatal("deleted checkpoint still loads")
			}
			if _, ok, _ := s.Load(ctx, "ns/p 2"); !ok {
				t.Fatal("deleting p1 removed another pipeline")
			}
			if err := s.Delete(ctx, "never"); err != nil {
				t.Fatalf("delete of missing: %v", err)
			}
			if err := s.Save(ctx, Checkpoint{}); err == nil {
				t.Fatal("checkpoint without pipeline name saved")
			}
		})
	}
}

func TestFileStoreCorruption(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		saves      int
		damage     func(path string) error
		wantOK     bool
		wantOffset uint64
		wantCorupt bool
	}{
		{"torn current, previous kept", 2, func(p string) error { return truncateHalf(p) }, true, 1, false},
		{"flipped bit, previous kept", 2, func(p string) error { return flip(p) }, true, 1, false},
		{"current missing (crash between renames)", 2, os.Remove, true, 1, false},
		{"torn, no previous", 1, func(p string) error { return truncateHalf(p) }, false, 0, true},
		{"both damaged", 2, func(p string) error {
			if err := flip(p); err != nil {
				return err
			}
			return os.WriteFile(p+".prev", []byte("garbage"), 0o640)
		}, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := NewFileStore(dir, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= tt.saves; i++ {
				if err := s.Save(ctx, Checkpoint{Pipeline: "overheat", Offset: uint64(i), State: []byte("state")}); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "overheat.ckpt")
			if err := tt.damage(path); err != nil {
				t.Fatal(err)
			}
			cp, ok, err := s.Load(ctx, "overheat")
			if ok != tt.wantOK || cp.Offset != tt.wantOffset || errors.Is(err, ErrCorrupt) != tt.wantCorupt {
				t.Fatalf("load: ok=%v offset=%d err=%v", ok, cp.Offset, err)
			}
			if tt.wantCorupt && !strings.Contains(err.Error(), "overheat.ckpt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			// A new save repairs it.
			if err := s.Save(ctx, Checkpoint{Pipeline: "overheat", Offset: 99}); err != nil {
				t.Fatal(err)
			}
			if cp, ok, err := s.Load(ctx, "overheat"); !ok || err != nil || cp.Offset != 99 {
				t.Fatalf("after repair: %+v %v %v", cp, ok, err)
			}
		})
	}
}

func TestNewFileStoreNeedsDir(t *testing.T) {
	if _, err := NewFileStore("", FileOptions{}); err == nil {
		t.Fatal("empty dir accepted")
	}
}

func truncateHalf(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	return os.Truncate(p, fi.Size()/2)
}

func flip(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[len(b)-2] ^= 1
	return os.WriteFile(p, b, 0o640)
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(Checkpoint{Pipeline: "p", PlanHash: "h", Offset: 3, State: []byte("s"), Time: ts}))
	f.Add([]byte("EDCK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(cp); !bytes.Equal(again, b) {
			t.Fatalf("accepted file does not re-encode to itself")
		}
	})
}

func BenchmarkFileSave(b *testing.B) {
	s, err := NewFileStore(b.TempDir(), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cp := Checkpoint{Pipeline: "bench", Offset: 1, State: make([]byte, 4096), Time: ts}
	b.ReportAllocs()
	for b.Loop() {
		cp.Offset++
		if err := s.Save(context.Background(), cp); err != nil {
			b.Fatal(err)
		}
	}
}
