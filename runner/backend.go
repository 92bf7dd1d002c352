package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/eddy-edge/eddy/runner/actions"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// The Runner is the API's backend: these methods expose its parts to
// runner/api (which does not import this package).
var _ api.Backend = (*Runner)(nil)

// Pipelines returns every pipeline's status.
func (r *Runner) Pipelines() []engine.Status { return r.engine.List() }

// Pipeline returns one pipeline's status.
func (r *Runner) Pipeline(id string) (engine.Status, bool) { return r.engine.Status(id) }

// Remove stops a pipeline and deletes its checkpoint and source.
func (r *Runner) Remove(ctx context.Context, id string) error {
	if err := r.engine.Remove(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.sources, id)
	r.mu.Unlock()
	return nil
}

// StartPipeline resumes a stopped pipeline from its checkpoint.
func (r *Runner) StartPipeline(ctx context.Context, id string) error { return r.engine.Start(ctx, id) }

// StopPipeline stops a pipeline and keeps its checkpoint.
func (r *Runner) StopPipeline(id string) error { return r.engine.Stop(id) }

var _ api.PipelineControl = (*Runner)(nil)

// SkipPipeline drops the output a degraded pipeline is blocked on.
func (r *Runner) SkipPipeline(ctx context.Context, id string) (engine.SkipResult, error) {
	return r.engine.Skip(ctx, id)
}

// SeekPipeline moves a pipeline's cursor.
func (r *Runner) SeekPipeline(ctx context.Context, id string, offset uint64) (engine.SeekResult, error) {
	return r.engine.Seek(ctx, id, offset)
}

// Tap attaches a bounded tap to a pipeline's output.
func (r *Runner) Tap(id string, buf int) (*engine.Tap, func(), error) { return r.engine.Tap(id, buf) }

// Alerts returns recent alert notifications.
func (r *Runner) Alerts() []engine.AlertRecord { return r.engine.Alerts() }

// Devices returns the devices and their twins (none without device files).
func (r *Runner) Devices() []*twin.DeviceRecord {
	if t := r.Twins(); t != nil {
		return t.Devices()
	}
	return nil
}

// BrokerStats returns the broker's counters.
func (r *Runner) BrokerStats() broker.Stats { return r.broker.Stats() }

// BrokerClients returns the broker's sessions.
func (r *Runner) BrokerClients() []broker.ClientInfo { return r.broker.Clients() }

// BrokerTopics returns the broker's topics.
func (r *Runner) BrokerTopics() []broker.TopicInfo { return r.broker.Topics() }

// WALStats returns the log's counters.
func (r *Runner) WALStats() wal.Stats { return r.log.Stats() }

// ReadOnly is true when pipelines are managed by the cloud controller.
// Runners started from files manage their own pipelines.
func (r *Runner) ReadOnly() bool { return r.cfg.ReadOnly }

// Ready is nil once the log, engine and broker run.
func (r *Runner) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("runner is shutting down")
	case r.log == nil || r.engine == nil || r.broker == nil:
		return errors.New("runner is starting")
	}
	// While the log refuses appends, so does the broker: not ready.
	switch st := r.log.Stats(); {
	case st.WriteError != "":
		return fmt.Errorf("the write-ahead log refuses appends until a probe write succeeds: %s", st.WriteError)
	case st.Full:
		return errors.New("the write-ahead log is full (retention policy block): publishes are refused until pipelines catch up")
	}
	return nil
}

// The Runner runs container actions.
var _ api.ActionSource = (*Runner)(nil)

// ActionStats returns every action's counters.
func (r *Runner) ActionStats() []actions.Stats {
	if r.actions == nil {
		return nil
	}
	return r.actions.Stats()
}

// ActionRecords returns the latest action records, oldest first.
func (r *Runner) ActionRecords() []actions.Record {
	if r.actions == nil {
		return nil
	}
	return r.actions.Recent()
}

// ActionRuntime is the container runtime's state as the lifecycle watcher
// last saw it.
func (r *Runner) ActionRuntime() string {
	if r.actions == nil {
		return ""
	}
	return r.actions.RuntimeState()
}
