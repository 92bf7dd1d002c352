package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// TestE2EDeviceOnlineState runs a real kube-apiserver, `eddy hub`, one
// `eddy edge`, the controller and `eddy sim modbus` (the thermostat of
// examples/modbus-thermostat): the Device's status.state follows the
// device: online while the simulated thermostat answers, offline once it
// stops answering, online again when it is back, with lastOnlineTime set.
func TestE2EDeviceOnlineState(t *testing.T) {
	cl := k8stest.Start(t, k8stest.Options{})
	defer cl.Stop()
	dir := t.TempDir()

	creds := filepath.Join(dir, "creds.yaml")
	pw := map[string]string{}
	for _, u := range []string{"controller", "edge-1"} {
		args := []string{"hub", "credentials", "add", u, "--file", creds}
		if u == "controller" {
			args = append(args, "--admin")
		}
		out := runBin(t, "eddy", args...)
		i := strings.Index(out, "password: ")
		pw[u] = strings.Fields(out[i+len("password: "):])[0]
	}
	_, hubURL, leafURL := startHub(t, filepath.Join(dir, "hub"), creds)
	startEdge(t, filepath.Join(dir, "edge-1.yaml"), fmt.Sprintf(`dataDir: %s
mqttAddr: 127.0.0.1:0
httpAddr: "-"
allowAnonymous: true
node: edge-1
link:
  hub: [%s]
  user: edge-1
  password: %s
  localAddr: "-"
  reconnectInterval: 200ms
  heartbeatInterval: 500ms
`, filepath.Join(dir, "edge-1"), leafURL, pw["edge-1"]))
	start(t, []string{"EDDY_HUB_PASSWORD=" + pw["controller"]}, "eddy-controller starting", "eddy-controller",
		"--kubeconfig", cl.Kubeconfig(), "--hub", hubURL, "--user", "controller",
		"--metrics-addr", "0", "--health-addr", "", "--status-interval", "200ms")

	// The thermostat listens on a port of its own choosing; restarted
	// below, it takes the same one again.
	sim := start(t, nil, "simulated Modbus thermostat ready", "eddy", "sim", "modbus", "--addr", "127.0.0.1:0")
	modbusAddr := sim.logged(t, "simulated Modbus thermostat ready", "addr")
	_, modbusPort, _ := net.SplitHostPort(modbusAddr)
	// The example's KubeEdge YAML, on this test's port.
	b, err := os.ReadFile(filepath.Join(k8stest.RepoDir(), "examples", "modbus-thermostat", "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cl.MustKubectl(t, strings.Replace(string(b), "port: 5020", "port: "+modbusPort, 1), "apply", "-f", "-")

	state := func() (string, string) {
		out, _ := cl.Kubectl("", "get", "device", "thermostat-1", "-o", `jsonpath={.status.state}/{.status.lastOnlineTime}`)
		s, at, _ := strings.Cut(out, "/")
		return s, at
	}
	waitState := func(want string) string {
		t.Helper()
		var at string
		mqtttest.WaitForErr(t, "Device status.state "+want, func() error {
			var s string
			s, at = state()
			if s != want {
				return fmt.Errorf("state %q (lastOnlineTime %q)", s, at)
			}
			if _, err := time.Parse(time.RFC3339, at); err != nil {
				return fmt.Errorf("lastOnlineTime %q: %v", at, err)
			}
			return nil
		})
		return at
	}
	waitState("online")

	// The thermostat stops answering: its mapper on the edge reports it
	// offline, and so does the Device.
	sim.cmd.Process.Kill()
	sim.cmd.Wait()
	offlineAt := waitState("offline")

	// Back: online again, with a later lastOnlineTime.
	start(t, nil, "simulated Modbus thermostat ready", "eddy", "sim", "modbus", "--addr", modbusAddr)
	if onlineAt := waitState("online"); onlineAt < offlineAt {
		t.Errorf("lastOnlineTime went back: %s after %s", onlineAt, offlineAt)
	}
}
