// Package beamreplay_test runs the beam-replay example as its README says:
// the real eddy and eddy-beam binaries, readings in the shape of KubeEdge's
// testmachine published with Debian's mosquitto_pub, alerts read with
// mosquitto_sub — first from the edge, then from the Beam replay of the
// edge's exported log (published to a Debian mosquitto broker) — and
// requires the same alerts, alert ids included.
package beamreplay_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/beamtest"
	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/testtools"
)

func TestBeamReplayExample(t *testing.T) {
	mqtttest.RequireClients(t)
	mosquitto := testtools.Tool(t, "mosquitto", "apt-get install -y mosquitto, or make deps")
	bin := t.TempDir()
	eddy := e2etest.Build(t, bin, "eddy", "../../cmd/eddy")
	// eddy beam runs eddy-beam from eddy's directory; built as make build-beam builds it.
	if err := beamtest.Build(filepath.Join(bin, "eddy-beam"), "../../cmd/eddy-beam"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	data := filepath.Join(work, "edge")
	yaml, err := filepath.Abs("pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}

	// The edge: eddy run with the example pipeline.
	port := mqtttest.FreePort(t)
	edge := start(t, work, eddy, "run", yaml, "--mqtt-addr", "127.0.0.1:"+port, "--http-addr", "-", "--data-dir", data)
	mqtttest.WaitListening(t, port)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alert", "probe/edge"}, ProbeTopic: "probe/edge", QoS: 1})
	mqtttest.PubLines(t, port, "test", 1, testmachine()...)
	edgeAlerts := payloads(t, sub.Lines(4))
	if err := edge.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("eddy run did not stop cleanly: %v", err)
	}
	states := []string{}
	for _, a := range edgeAlerts {
		states = append(states, fmt.Sprint(a["state"], " ", a["key"]))
	}
	if want := []string{"firing cc2650", "resolved cc2650", "firing cc2650", "resolved cc2650"}; !slices.Equal(states, want) {
		t.Fatalf("edge alerts %v, want %v", states, want)
	}

	// Export the edge's history and replay it on Beam (prism).
	export := filepath.Join(work, "test.jsonl")
	e2etest.Run(t, nil, eddy, "export", "--data-dir", data, "--topic", "test", "-o", export)
	if n := countLines(t, export); n != 20 {
		t.Fatalf("exported %d records, want the 20 readings", n)
	}
	port2 := mqtttest.FreePort(t)
	start(t, work, mosquitto, "-p", port2)
	mqtttest.WaitListening(t, port2)
	sub2 := mqtttest.StartSub(t, port2, mqtttest.SubOptions{Topics: []string{"alert", "probe/beam"}, ProbeTopic: "probe/beam", QoS: 1})
	out := filepath.Join(work, "beam")
	e2etest.Run(t, nil, eddy, "beam", "run", yaml, "--input", export, "--runner", "prism",
		"--output-dir", out, "--mqtt-broker", "tcp://127.0.0.1:"+port2)
	beamAlerts := payloads(t, sub2.Lines(4))
	fileAlerts := e2etest.ReadJSONLines(t, filepath.Join(out, "alerts.jsonl"))
	for what, got := range map[string][]map[string]any{"published by Beam": beamAlerts, "written by Beam": fileAlerts} {
		if !sameSet(got, edgeAlerts) {
			t.Errorf("alerts %s differ from the edge's:\nBeam: %v\nedge: %v", what, got, edgeAlerts)
		}
	}
}

// testmachine returns the 20 readings KubeEdge's testmachine publishes, 2 s
// apart (ID, Device, CreateTime, Label, Units, Value as a string, MachineID).
func testmachine() []string {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	var out []string
	for i := 0; i < 20; i++ {
		value, machine := "80", "M7000"
		switch {
		case i == 1:
			value, machine = "90", "M2000"
		case i > 2 && i < 5:
			value, machine = "100", "M3030"
		case i > 5 && i < 8:
			value, machine = "95", "M5050"
		case i == 8:
			value, machine = "75", "M6000"
		}
		b, _ := json.Marshal(map[string]any{"ID": i, "Device": "cc2650", "CreateTime": t0.Add(time.Duration(2*i) * time.Second).Format(time.RFC3339Nano),
			"Label": "Temperature", "Units": "DegreeCelcius", "Value": value, "MachineID": machine})
		out = append(out, string(b))
	}
	return out
}

// start starts a program in dir (where relative sink paths land).
func start(t *testing.T, dir, name string, args ...string) *e2etest.Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return e2etest.Start(t, cmd)
}

// payloads decodes mosquitto_sub -v lines "topic payload".
func payloads(t *testing.T, lines []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines {
		_, p, _ := strings.Cut(l, " ")
		var m map[string]any
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func sameSet(a, b []map[string]any) bool {
	enc := func(ms []map[string]any) []string {
		var out []string
		for _, m := range ms {
			s, _ := json.Marshal(m)
			out = append(out, string(s))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(enc(a), enc(b))
}
