// Package checkpoint stores one checkpoint per pipeline: the next WAL
// offset the pipeline will read and its operators' state snapshot, so a
// restarted runner resumes where the last checkpoint left off.
//
// It owns the checkpoint file format and its crash safety. It must not know
// what the state bytes mean, must not read the WAL and must not decide what
// a pipeline does after a failed load: that is the engine's call.
//
// # Crash safety and corruption policy
//
// The file store writes a new checkpoint to a temporary file, fsyncs it,
// moves the current checkpoint aside as "<name>.prev", renames the new one
// into place and fsyncs the directory. A crash at any point leaves either
// the new or the previous checkpoint readable. Every file carries a CRC-32C;
// Load never returns a checkpoint whose checksum fails. When the current
// file is missing or damaged, Load falls back to the previous generation and
// logs an error (the pipeline replays a little more WAL: at-least-once
// output). When no generation is valid, Load returns an error wrapping
// ErrCorrupt that names the files; the engine then starts that pipeline from
// scratch with a loud log, or an operator deletes the files.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Checkpoint is a pipeline's durable progress.
type Checkpoint struct {
	// Pipeline is the pipeline's name (the key).
	Pipeline string
	// PlanHash identifies the compiled plan the state belongs to; a restored
	// state is only valid for the same plan.
	PlanHash string
	// Offset is the next WAL offset to read.
	Offset uint64
	// State is the operators' snapshot.
	State []byte
	// Time is when the checkpoint was taken.
	Time time.Time
}

// Store keeps the latest checkpoint of each pipeline.
type Store interface {
	// Save replaces the pipeline's checkpoint. When it returns nil the
	// checkpoint survives a crash (for the file store).
	Save(ctx context.Context, cp Checkpoint) error
	// Load returns the pipeline's checkpoint; ok is false when there is none.
	Load(ctx context.Context, pipeline string) (cp Checkpoint, ok bool, err error)
	// Delete removes the pipeline's checkpoint; deleting a missing one is
	// not an error.
	Delete(ctx context.Context, pipeline string) error
}

// ErrCorrupt is wrapped by Load's error when no valid checkpoint file is left.
var ErrCorrupt = errors.New("checkpoint: corrupt checkpoint")

func checkName(pipeline string) error {
	if pipeline == "" {
		return errors.New("checkpoint: pipeline name is empty; every checkpoint needs the pipeline's name")
	}
	return nil
}

// MemoryStore is a Store in memory, for tests and runs without a data dir.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Checkpoint
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]Checkpoint{}} }

// Save implements Store. The state is copied.
func (s *MemoryStore) Save(ctx context.Context, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(cp.Pipeline); err != nil {
		return err
	}
	cp.State = append([]byte(nil), cp.State...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[cp.Pipeline] = cp
	return nil
}

// Load implements Store. The returned state is a copy.
func (s *MemoryStore) Load(ctx context.Context, pipeline string) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.m[pipeline]
	cp.State = append([]byte(nil), cp.State...)
	return cp, ok, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, pipeline string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, pipeline)
	return nil
}

// Error wraps ErrCorrupt with what was found.
func corruptError(pipeline string, detail string) error {
	return fmt.Errorf("%w for pipeline %q: %s; delete the files to start the pipeline from scratch", ErrCorrupt, pipeline, detail)
}
