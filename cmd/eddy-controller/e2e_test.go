package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-controller-e2e")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, b := range []struct{ out, pkg string }{{"eddy", "../eddy"}, {"eddy-controller", "."}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.out, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
}

// start runs one of the built binaries until the test ends, waiting until
// it logs wait.
func start(t *testing.T, env []string, wait, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(filepath.Join(binDir, bin), args...), logs: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s %s logs:\n%s", bin, args[0], p.logs.String())
		}
	})
	// A generous deadline: on a loaded 2-core machine a cold process
	// (TLS to the API server, discovery, the hub's buckets) takes a while.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.logs.String(), wait) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within 60s", bin, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, bin), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// logged waits for a log line of the process containing msg and returns
// the value of key in it (slog's key=value). Processes listen on port 0
// and tests read the address they got from their logs: a port a test
// picks and hands to another process can be taken in between by anything
// else on a loaded machine.
func (p *proc) logged(t *testing.T, msg, key string) string {
	t.Helper()
	var v string
	mqtttest.WaitForErr(t, fmt.Sprintf("a log line %q with %s=", msg, key), func() error {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if !strings.Contains(line, msg) {
				continue
			}
			for _, f := range strings.Fields(line) {
				if after, ok := strings.CutPrefix(f, key+"="); ok {
					v = strings.Trim(after, `"`)
					return nil
				}
			}
		}
		return fmt.Errorf("not logged yet")
	})
	return v
}

// startHub runs `eddy hub` on random ports and returns the process, its
// client URL and its leaf URL.
func startHub(t *testing.T, dataDir, creds string) (hub *proc, clientURL, leafURL string) {
	t.Helper()
	hub = start(t, nil, "hub running", "eddy", "hub", "--data-dir", dataDir, "--credentials", creds,
		"--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0")
	return hub, hub.logged(t, "hub running", "clients"), hub.logged(t, "hub running", "leaf_nodes")
}

// startEdge runs `eddy edge` with the config cfg (a format string taking
// nothing more: its mqttAddr must be 127.0.0.1:0) and returns the process
// and its MQTT port.
func startEdge(t *testing.T, cfgFile, cfg string) (*proc, int) {
	t.Helper()
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "link started", "eddy", "edge", "--config", cfgFile)
	_, port, err := net.SplitHostPort(p.logged(t, "MQTT broker listening", "addr"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return p, n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestE2EKubectlToEdges runs a real kube-apiserver + etcd, a real `eddy
// hub`, two real `eddy edge` processes and the eddy-controller binary, and
// drives everything with kubectl and mosquitto clients: the repository's
// examples apply unchanged, the pipeline runs on the selected edge with
// real counters, edits hot-swap, the KubeEdge device's desired value
// arrives as a twin delta on the edge, a reported value comes back into the
// Device status, and deletes propagate.
func TestE2EKubectlToEdges(t *testing.T) {
	mqtttest.RequireClients(t)
	cl := k8stest.Start(t, k8stest.Options{})
	defer cl.Stop()
	dir := t.TempDir()

	creds := filepath.Join(dir, "creds.yaml")
	pw := map[string]string{}
	for _, u := range []string{"controller", "edge-1", "edge-2"} {
		args := []string{"hub", "credentials", "add", u, "--file", creds}
		if u == "controller" {
			args = append(args, "--admin")
		}
		out := runBin(t, "eddy", args...)
		i := strings.Index(out, "password: ")
		pw[u] = strings.Fields(out[i+len("password: "):])[0]
	}
	_, hubURL, leafURL := startHub(t, filepath.Join(dir, "hub"), creds)

	edge := func(name, site string) int {
		_, port := startEdge(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`dataDir: %s
mqttAddr: 127.0.0.1:0
httpAddr: "-"
allowAnonymous: true
node: %s
checkpointInterval: 200ms
link:
  hub: [%s]
  user: %s
  password: %s
  localAddr: "-"
  reconnectInterval: 200ms
  heartbeatInterval: 500ms
  labels: {site: %s}
`, filepath.Join(dir, name), name, leafURL, name, pw[name], site))
		return port
	}
	port1 := edge("edge-1", "plant-1")
	edge("edge-2", "plant-2")

	start(t, []string{"EDDY_HUB_PASSWORD=" + pw["controller"]}, "eddy-controller starting", "eddy-controller",
		"--kubeconfig", cl.Kubeconfig(), "--hub", hubURL, "--user", "controller",
		"--metrics-addr", "0", "--health-addr", "", "--status-interval", "200ms")

	mqtttest.WaitForErr(t, "both edges registered as Ready EdgeNodes", func() error {
		out, err := cl.Kubectl("", "get", "en", "--no-headers")
		if err != nil || strings.Count(out, "True") != 2 {
			return fmt.Errorf("kubectl get en: %v\n%s", err, out)
		}
		return nil
	})

	// The repository's example, unchanged: selects site=plant-1.
	example := filepath.Join(k8stest.RepoDir(), "examples", "overheat", "overheat.yaml")
	cl.MustKubectl(t, "", "apply", "-f", example)
	jp := func(path string) string {
		out, _ := cl.Kubectl("", "get", "pl", "overheat", "-o", "jsonpath="+path)
		return out
	}
	mqtttest.WaitForErr(t, "overheat Running on edge-1 only", func() error {
		if got := jp(`{.status.conditions[?(@.type=="Running")].status}/{.status.nodes}`); got != "True/1/1" {
			return fmt.Errorf("Running/nodes = %q; %s", got, jp(`{.status.conditions}`))
		}
		return nil
	})
	if got := jp(`{.status.nodeStatuses[0].node}`); got != "edge-1" {
		t.Errorf("placed on %q, want edge-1", got)
	}
	// Real counters from the edge.
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf(`{"device":"m1","ts":%d,"temperature":25}`, time.Now().UnixMilli()+int64(i)))
	}
	mqtttest.PubLines(t, fmt.Sprint(port1), "factory/m1/data", 1, lines...)
	mqtttest.WaitForErr(t, "messagesIn counts the 20 events", func() error {
		if got := jp(`{.status.messagesIn}`); got != "20" {
			return fmt.Errorf("messagesIn %q", got)
		}
		return nil
	})

	// Edit: the edge hot-swaps; observedGeneration follows.
	b, _ := os.ReadFile(example)
	edited := strings.Replace(string(b), "avg_t > 30", "avg_t > 35", 1)
	cl.MustKubectl(t, edited, "apply", "-f", "-")
	mqtttest.WaitForErr(t, "generation 2 running", func() error {
		got := jp(`{.status.observedGeneration}/{.status.conditions[?(@.type=="Running")].status}/{.status.nodeStatuses[0].version}`)
		if got != "2/True/2" {
			return fmt.Errorf("observedGeneration/Running/version = %q", got)
		}
		return nil
	})

	// KubeEdge device YAML, unchanged (nodeName edge-1).
	devs := filepath.Join(k8stest.RepoDir(), "examples", "modbus-thermostat", "devices.yaml")
	delta := "$hw/events/device/default/thermostat-1/twin/update/delta"
	sub := mqtttest.StartSub(t, fmt.Sprint(port1), mqtttest.SubOptions{Topics: []string{delta, "probe/ctl"}, ProbeTopic: "probe/ctl"})
	cl.MustKubectl(t, "", "apply", "-f", devs)
	mqtttest.WaitForErr(t, "device delivered", func() error {
		out, _ := cl.Kubectl("", "get", "device", "thermostat-1", "-o", `jsonpath={.status.conditions[?(@.type=="Delivered")].status}`)
		if out != "True" {
			return fmt.Errorf("Delivered=%q", out)
		}
		return nil
	})
	cl.MustKubectl(t, "", "patch", "device", "thermostat-1", "--type=json",
		`-p=[{"op":"replace","path":"/spec/properties/1/desired/value","value":"42"}]`)
	mqtttest.WaitForErr(t, "a twin delta with the new desired value on edge-1", func() error {
		for {
			line := sub.Next()
			if line == "" {
				return fmt.Errorf("no delta yet")
			}
			if strings.Contains(line, `"limit":"42"`) {
				return nil
			}
		}
	})

	// A device reports a value over MQTT (KubeEdge's twin protocol): it
	// reaches the Device status.
	mqtttest.Pub(t, fmt.Sprint(port1), "$hw/events/device/default/thermostat-1/twin/update", 1,
		fmt.Sprintf(`{"event_id":"e1","timestamp":%d,"twin":{"temperature":{"actual":{"value":"23.5"}}}}`, time.Now().UnixMilli()))
	mqtttest.WaitForErr(t, "the reported value in the Device status", func() error {
		out, _ := cl.Kubectl("", "get", "device", "thermostat-1", "-o", `jsonpath={.status.twins[?(@.propertyName=="temperature")].reported.value}`)
		if out != "23.5" {
			return fmt.Errorf("reported %q", out)
		}
		return nil
	})

	// Deletes propagate: the edge stops the pipeline.
	cl.MustKubectl(t, "", "delete", "-f", example, "--wait=true", "--timeout=30s")
	out := runBin(t, "eddy", "fleet", "get", "pipelines", "--hub", hubURL,
		"--user", "controller", "--password-file", writePw(t, dir, pw["controller"]))
	if strings.Contains(out, "overheat") {
		t.Errorf("the deleted pipeline is still in the plans:\n%s", out)
	}
}

func writePw(t *testing.T, dir, pw string) string {
	p := filepath.Join(dir, "pw")
	os.WriteFile(p, []byte(pw), 0o600)
	return p
}
