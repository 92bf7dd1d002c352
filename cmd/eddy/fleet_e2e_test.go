package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// startProc starts eddy with args and waits until it logs wait.
func startProc(t *testing.T, wait string, args ...string) *e2etest.Proc {
	t.Helper()
	p := e2etest.Start(t, exec.Command(eddyBin, args...))
	p.WaitLog(wait)
	return p
}

const fleetPipeline = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  key: device
  eventTime: ts
  steps:
    - alert: {when: "temperature > %d", message: "seq {{seq}}"}
  sinks:
    - mqtt: {topic: "alerts/{{key}}", qos: 1}
`

// TestE2EFleet runs a real `eddy hub` and two real `eddy edge` processes:
// a pipeline applied to edge-a runs there only, is updated and deleted;
// alerts edge-a raises while the hub is killed (and while edge-a itself
// restarts without the hub) all reach the hub's stream, in order.
func TestE2EFleet(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.yaml")
	pw := map[string]string{}
	for _, u := range []string{"admin", "edge-a", "edge-b"} {
		args := []string{"hub", "credentials", "add", u, "--file", creds}
		if u == "admin" {
			args = append(args, "--admin")
		}
		out := e2etest.Run(t, nil, eddyBin, args...)
		i := strings.Index(out, "password: ")
		pw[u] = strings.Fields(out[i+len("password: "):])[0]
	}
	// The hub and the edges listen on ports of their own choosing (read
	// from their logs); restarted, they take the same ports again.
	hubArgs := []string{"hub", "--data-dir", filepath.Join(dir, "hub"), "--credentials", creds,
		"--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0"}
	hub := startProc(t, "hub running", hubArgs...)
	hubURL, leafURL := hub.LogValue("hub running", "clients"), hub.LogValue("hub running", "leaf_nodes")
	hubArgs = []string{"hub", "--data-dir", filepath.Join(dir, "hub"), "--credentials", creds,
		"--listen", strings.TrimPrefix(hubURL, "nats://"), "--leaf-listen", strings.TrimPrefix(leafURL, "nats-leaf://")}

	edge := func(name, mqttPort string) (*e2etest.Proc, string) {
		cfg := e2etest.WriteFile(t, dir, name+".yaml", fmt.Sprintf(`dataDir: %s
mqttAddr: 127.0.0.1:%s
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
  heartbeatInterval: 1s
  labels: {site: %s}
`, filepath.Join(dir, name), mqttPort, name, leafURL, name, pw[name], name))
		p := startProc(t, "link started", "edge", "--config", cfg)
		_, port, _ := net.SplitHostPort(p.LogValue("MQTT broker listening", "addr"))
		return p, port
	}
	a, portA := edge("edge-a", "0")
	edge("edge-b", "0")

	env := []string{"EDDY_HUB_PASSWORD=" + pw["admin"]}
	hubFlags := []string{"--hub", hubURL, "--user", "admin"}
	fleetCmd := func(args ...string) string {
		return e2etest.Run(t, env, eddyBin, append(append([]string{"fleet"}, args...), hubFlags...)...)
	}
	mqtttest.WaitFor(t, "both nodes registered", func() bool {
		out := fleetCmd("get", "nodes")
		return strings.Contains(out, "edge-a") && strings.Contains(out, "edge-b")
	})
	spec := e2etest.WriteFile(t, dir, "overheat.yaml", fmt.Sprintf(fleetPipeline, 30))
	fleetCmd("apply", "-f", spec, "--selector", "site=edge-a")
	mqtttest.WaitFor(t, "edge-a runs generation 1", func() bool {
		return strings.Contains(fleetCmd("get", "pipelines"), "edge-a  Pipeline  default/overheat  1           1        Running")
	})
	if out := fleetCmd("get", "pipelines", "--node", "edge-b"); strings.Contains(out, "overheat") {
		t.Fatalf("edge-b was given the pipeline:\n%s", out)
	}
	// Update: edge-a hot-swaps and reports generation 2.
	e2etest.WriteFile(t, dir, "overheat.yaml", fmt.Sprintf(fleetPipeline, 35))
	fleetCmd("apply", "-f", spec, "--node", "edge-a")
	mqtttest.WaitFor(t, "edge-a runs generation 2", func() bool {
		return strings.Contains(fleetCmd("get", "pipelines"), "default/overheat  2           2        Running")
	})

	// Alerts while the hub is killed, and while edge-a restarts without it.
	sub := mqtttest.StartSub(t, portA, mqtttest.SubOptions{Topics: []string{"alerts/#"}, QoS: 1, ProbeTopic: "alerts/probe"})
	seq := 0
	publish := func(port string, n int) {
		var msgs []string
		for i := 0; i < n; i++ {
			seq++
			temp := 40 // odd: firing, even: resolved
			if seq%2 == 0 {
				temp = 20
			}
			msgs = append(msgs, fmt.Sprintf(`{"device":"m1","ts":%d,"temperature":%d,"seq":%d}`, 1_700_000_000_000+seq*1000, temp, seq))
		}
		mqtttest.PubLines(t, port, "factory/m1/data", 1, msgs...)
	}
	publish(portA, 20)
	hub.Kill()
	publish(portA, 20)
	if got := sub.Lines(40); len(got) != 40 {
		t.Fatalf("local alerts while the hub is down: %d of 40", len(got))
	}
	a.Kill() // kill -9: the pipeline replays from its last checkpoint
	a, _ = edge("edge-a", portA)
	mqtttest.WaitFor(t, "edge-a runs its last plans from disk", func() bool {
		return strings.Contains(a.Logs(), "applied the last plans from disk")
	})
	publish(portA, 20)
	hub = startProc(t, "hub running", hubArgs...)
	publish(portA, 20)
	total := seq

	nc, err := fleet.Dial(context.Background(), hubURL, fleet.DialOptions{}, nats.UserInfo("admin", pw["admin"]))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.NewWithDomain(nc, fleet.DefaultDomain)
	subject := "eddy.up.edge-a.alerts.default.overheat"
	ctx := context.Background()
	// Every alert arrives, in order; alerts replayed after the kill -9 are
	// stored again (new WAL records) and recognised by alert_id + state.
	var stored uint64
	mqtttest.WaitForErr(t, "every alert in the hub's stream", func() error {
		st, err := js.Stream(ctx, fleet.DefaultUpStream)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return err
		}
		stored = info.State.Subjects[subject]
		if stored < uint64(total) {
			return fmt.Errorf("%d of %d alerts stored", stored, total)
		}
		return nil
	})
	st, err := js.Stream(ctx, fleet.DefaultUpStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	next, dups := 1, 0
	for i := uint64(0); i < stored; i++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var f map[string]any
		json.Unmarshal(msg.Data(), &f)
		id := fmt.Sprint(f["alert_id"], f["state"])
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		if f["message"] != fmt.Sprintf("seq %d", next) {
			t.Fatalf("alert %d in the hub's stream is %s (lost or out of order)", next, msg.Data())
		}
		next++
	}
	if next != total+1 {
		t.Fatalf("%d distinct alerts in the hub's stream, want %d", next-1, total)
	}
	t.Logf("%d alerts, all in order; %d replayed after the kill -9 and stored twice (same alert_id)", total, dups)
	// Delete: edge-a stops the pipeline.
	fleetCmd("delete", "default/overheat", "--node", "edge-a")
	mqtttest.WaitFor(t, "edge-a removes the pipeline", func() bool {
		return strings.Contains(a.Logs(), "removed a pipeline deleted on the hub")
	})
}
