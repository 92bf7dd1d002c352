package main

import (
	"fmt"
	"os"

	"github.com/eddy-edge/eddy/runner"
)

// setDevices checks the KubeEdge Device/DeviceModel files named by
// --devices (or devices: in the edge config) and hands them to the runner,
// which serves their twins and polls their Modbus devices. Checking before
// the runner starts means a typo in a device file costs no broker restart;
// every problem is reported with file:line.
func setDevices(cfg *runner.Config, files []string) error {
	if len(files) == 0 {
		return nil
	}
	devs, err := runner.LoadDeviceFiles(files)
	if err != nil {
		return fmt.Errorf("device files:\n%w", err)
	}
	node := cfg.Node
	if node == "" {
		node, _ = os.Hostname() // what runner.New defaults to
	}
	mine := runner.NodeDevices(devs, node)
	if cfg.Logger != nil {
		cfg.Logger.Info("devices loaded", "files", len(files), "devices", len(devs), "this_node", len(mine), "node", node)
	}
	cfg.DeviceFiles = append([]string(nil), files...)
	return nil
}
