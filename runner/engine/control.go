package engine

import (
	"context"
	"errors"
	"fmt"
)

// SkipResult tells what Skip did.
type SkipResult struct {
	// Skipped is the offset of the record whose output was dropped (0 for
	// output of a timer, e.g. a window closed by the idle clock).
	Skipped uint64 `json:"skipped"`
	// Resume is the offset the pipeline goes on from.
	Resume uint64 `json:"resume"`
}

// Skip is the operator's escape hatch for a poison record: the pipeline
// must be degraded (a sink keeps refusing the output of one record with an
// error that looks retryable). The run is stopped, the output it is stuck
// on is dropped, a checkpoint is written just past that record with the
// operator state as it is, and the pipeline starts again from there. It
// is logged as a warning. A pipeline that is not blocked is left alone
// and an error says so (Seek moves a cursor anywhere).
func (e *Engine) Skip(ctx context.Context, id string) (SkipResult, error) {
	s, err := e.lock(id, false)
	if err != nil {
		return SkipResult{}, err
	}
	defer s.mu.Unlock()
	r := s.run.Load()
	if st := r.currentState(); st != StateDegraded {
		return SkipResult{}, fmt.Errorf("pipeline %s is %s, not degraded: %w; use seek to move its cursor", id, st, ErrNotBlocked)
	}
	res := SkipResult{Skipped: r.blockedAt.Load()}
	// With skip set, the run's exit checkpoints past the record it is
	// blocked on, and the new run starts from there.
	r.skip.Store(true)
	err = e.restart(ctx, s, func() error { return nil })
	if err != nil {
		return res, err
	}
	if !r.abandoned { // safe: the run has ended
		r.logger.Info("skip asked for, but the sink recovered before the pipeline stopped: nothing was skipped")
		return SkipResult{Resume: r.cursor}, nil
	}
	if cp, ok, err := e.opts.Checkpoints.Load(ctx, id); err == nil && ok {
		res.Resume = cp.Offset
	}
	r.logger.Warn("operator skipped a record", "offset", res.Skipped, "resume", res.Resume)
	return res, nil
}

// SeekResult tells what Seek did.
type SeekResult struct {
	// From is the checkpointed cursor before the seek.
	From uint64 `json:"from"`
	// To is the cursor the pipeline goes on from.
	To uint64 `json:"to"`
}

// Seek moves a pipeline's cursor to offset: the run is stopped (final
// checkpoint), the checkpoint's cursor is set to offset with the operator
// state kept, and the pipeline starts again if it was running (a stopped
// one stays stopped, resuming there on Start). offset must lie within
// what the log holds, [First, Last+1] (Last+1: only new records). Records
// skipped over are never processed; records seeked back to are processed
// again (their output repeats). It is logged as a warning.
func (e *Engine) Seek(ctx context.Context, id string, offset uint64) (SeekResult, error) {
	s, err := e.lock(id, false)
	if err != nil {
		return SeekResult{}, err
	}
	defer s.mu.Unlock()
	r := s.run.Load()
	first, last := e.opts.Log.First(), e.opts.Log.Last()
	if offset < first || offset > last+1 {
		return SeekResult{}, fmt.Errorf("offset %d is outside the log, which holds %d..%d; seek to %d..%d (%d: only new records)",
			offset, first, last, first, last+1, last+1)
	}
	var res SeekResult
	move := func() error {
		cp, ok, err := e.opts.Checkpoints.Load(ctx, id)
		if err != nil {
			return fmt.Errorf("loading the checkpoint of %s: %w", id, err)
		}
		if !ok {
			cp = checkpointOf(r.plan, 0, nil, e.opts.Clock.Now())
		}
		res.From, res.To = cp.Offset, offset
		cp.Offset, cp.Time = offset, e.opts.Clock.Now()
		if err := e.opts.Checkpoints.Save(ctx, cp); err != nil {
			return fmt.Errorf("saving the moved checkpoint of %s: %w", id, err)
		}
		if t, ok := e.opts.Log.(ConsumerTracker); ok {
			t.SetConsumer(id, offset)
		}
		return nil
	}
	if !r.currentState().Active() {
		r.stop()
		if err := move(); err != nil {
			return res, err
		}
	} else if err := e.restart(ctx, s, move); err != nil {
		return res, err
	}
	r.logger.Warn("operator moved the cursor", "from", res.From, "to", res.To)
	return res, nil
}

// ErrNotBlocked is matched (errors.Is) by the error of Skip on a pipeline
// that is not degraded.
var ErrNotBlocked = errors.New("it is not blocked on a record, so there is nothing to skip")
