package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/runner"
)

// serveDevices hands the devices to the running runner. `eddy run` ("run
// these here") serves every device it is given and warns about those whose
// nodeName names another node; `eddy edge` serves only its node's devices
// (and those without a node), as KubeEdge's edgecore does.
func serveDevices(ctx context.Context, r *runner.Runner, log *slog.Logger, node string, edge bool, devs []devices.Device) error {
	if len(devs) == 0 {
		return nil
	}
	if node == "" {
		node, _ = os.Hostname() // what runner.New defaults to
	}
	serve := devs
	if edge {
		serve = runner.NodeDevices(devs, node)
		if n := len(devs) - len(serve); n > 0 {
			log.Info("devices bound to other nodes are not served here", "skipped", n, "node", node)
		}
	} else {
		for _, d := range devicesElsewhere(devs, node) {
			log.Warn("device names another node; eddy run serves it here anyway (eddy edge would skip it)",
				"device", d.ID(), "nodeName", d.NodeName, "node", node, "at", fmt.Sprintf("%s:%d", d.Pos().File, d.Pos().Line))
		}
	}
	return r.SetDevices(ctx, serve)
}
