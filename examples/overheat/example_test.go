// Package overheat_test runs the overheat example as the README says: the
// real eddy binary runs overheat.yaml (`eddy run examples/overheat/overheat.yaml`,
// on free ports), readings are published with Debian's mosquitto_pub and
// alerts read with mosquitto_sub. The whole output is checked: the two
// alerts, and nothing else once every window has closed.
package overheat_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

func TestOverheatExample(t *testing.T) {
	mqtttest.RequireClients(t)
	bin := e2etest.Build(t, t.TempDir(), "eddy", "../../cmd/eddy")
	port, httpPort := mqtttest.FreePort(t), mqtttest.FreePort(t)
	// The README's command, with this test's ports and data dir.
	e2etest.Start(t, exec.Command(bin, "run", "overheat.yaml", "--mqtt-addr", "127.0.0.1:"+port,
		"--http-addr", "127.0.0.1:"+httpPort, "--data-dir", t.TempDir()))
	mqtttest.WaitListening(t, port)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alerts/#"}, ProbeTopic: "alerts/probe", QoS: 1})

	// thermo-1 reads 35 °C for 60 s, then 20 °C; thermo-2 stays at 22 °C.
	// One reading per device per second of event time.
	const t0 = 1_700_000_000_000 // ms, a multiple of 10 s
	var lines []string
	for s := int64(0); s < 80; s++ {
		hot := 35.0
		if s >= 60 {
			hot = 20
		}
		lines = append(lines,
			fmt.Sprintf(`{"device":"thermo-1","temperature":%g,"ts":%d}`, hot, t0+s*1000),
			fmt.Sprintf(`{"device":"thermo-2","temperature":22,"ts":%d}`, t0+s*1000))
	}
	// A last, cool reading 20 s later moves the event clock past every
	// window above, so they all close; its own window stays open.
	lines = append(lines, fmt.Sprintf(`{"device":"thermo-2","temperature":22,"ts":%d}`, t0+100_000))
	mqtttest.PubLines(t, port, "factory/line-1/data", 1, lines...)

	// Windows [0,10) ... [50,60) average 35. The alert is pending from the
	// first window's end (t0+9.999s) and fires at the window ending 30 s
	// later; [60,70) averages 20, so it resolves there.
	got := sub.Lines(2)
	want := []map[string]any{
		{"state": "firing", "key": "thermo-1", "severity": "warning", "message": "thermo-1 is overheating: avg 35",
			"started_at": "2023-11-14T22:13:29.999Z", "ts": "2023-11-14T22:13:59.999Z"},
		{"state": "resolved", "key": "thermo-1", "message": "thermo-1 is overheating: avg 20",
			"started_at": "2023-11-14T22:13:29.999Z", "resolved_at": "2023-11-14T22:14:29.999Z"},
	}
	var ids []any
	for i, line := range got {
		topic, payload, _ := strings.Cut(line, " ")
		if topic != "alerts/thermo-1" {
			t.Errorf("alert %d on %q, want alerts/thermo-1", i, topic)
		}
		var f map[string]any
		if err := json.Unmarshal([]byte(payload), &f); err != nil {
			t.Fatalf("alert %d: %v", i, err)
		}
		for k, v := range want[i] {
			if f[k] != v {
				t.Errorf("alert %d: %s = %v, want %v\n%s", i, k, f[k], v, payload)
			}
		}
		ids = append(ids, f["alert_id"])
	}
	if len(ids) == 2 && ids[0] != ids[1] {
		t.Errorf("firing and resolved carry different alert ids %v", ids)
	}

	// Nothing else: once every window but the last reading's has closed
	// (the API shows one open window), a marker published now must be the
	// next line: an extra alert would come before it.
	mqtttest.WaitFor(t, "every window but the last to close", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + httpPort + "/api/v1/pipelines/default/overheat")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var got struct {
			Status struct {
				Steps []struct {
					Kind      string `json:"kind"`
					StateSize int    `json:"stateSize"`
				} `json:"steps"`
			} `json:"status"`
		}
		if json.NewDecoder(resp.Body).Decode(&got) != nil {
			return false
		}
		for _, s := range got.Status.Steps {
			if s.Kind == "window" {
				return s.StateSize == 1
			}
		}
		return false
	})
	mqtttest.Pub(t, port, "alerts/zz-end", 1, "end")
	if line := sub.Next(); line != "alerts/zz-end end" {
		t.Fatalf("an extra line arrived after the two alerts: %s", line)
	}
}
