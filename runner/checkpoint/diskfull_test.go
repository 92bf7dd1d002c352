package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/eddy-edge/eddy/internal/tmpfstest"
)

// A checkpoint save that fails with ENOSPC on a real full filesystem (an
// 8 MiB tmpfs) loses no state and leaves no torn or temporary file: Load
// still returns the last saved checkpoint, and once space is back the next
// save works.
func TestSaveOnFullDisk(t *testing.T) {
	fs := tmpfstest.Mount(t, "8m")
	dir := filepath.Join(fs, "checkpoints")
	s, err := NewFileStore(dir, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := Checkpoint{Pipeline: "default/p", PlanHash: "h1", Offset: 10, State: bytes.Repeat([]byte("a"), 100<<10)}
	if err := s.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Fill the filesystem.
	ballast := filepath.Join(fs, "ballast")
	tmpfstest.Fill(t, ballast, 0)
	second := Checkpoint{Pipeline: "default/p", PlanHash: "h1", Offset: 20, State: bytes.Repeat([]byte("b"), 1<<20)}
	err = s.Save(ctx, second)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("save on a full disk: %v, want ENOSPC", err)
	}
	got, ok, err := s.Load(ctx, "default/p")
	if err != nil || !ok || got.Offset != 10 || !bytes.Equal(got.State, first.State) {
		t.Fatalf("after a failed save: %v %v offset %d; want the first checkpoint intact", ok, err, got.Offset)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, second); err != nil {
		t.Fatalf("save after space came back: %v", err)
	}
	if got, _, err := s.Load(ctx, "default/p"); err != nil || got.Offset != 20 {
		t.Fatalf("after space came back: offset %d, %v", got.Offset, err)
	}
}
