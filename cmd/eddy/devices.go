package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/eddy-edge/eddy/runner"
)

// loadDevices loads KubeEdge Device/DeviceModel files into the runner.
func loadDevices(ctx context.Context, r *runner.Runner, files []string) error {
	if len(files) == 0 {
		return nil
	}
	return fmt.Errorf("--devices is not wired in this build yet")
}

// setupHTTP installs the API and dashboard handler.
func setupHTTP(cfg *runner.Config, s *runnerSettings, g *globals) {
	cfg.HTTPHandler = func(r *runner.Runner) (http.Handler, error) { return nil, fmt.Errorf("no API") }
	cfg.HTTPHandler = nil
}
