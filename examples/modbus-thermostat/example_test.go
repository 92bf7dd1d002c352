// Package thermostat_test runs the modbus-thermostat example end to end: a
// simulated Modbus TCP thermostat, an Eddy runner in-process loading the
// example's devices.yaml and pipeline.yaml, and Debian's mosquitto clients
// on the outside.
package thermostat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/internal/modbustest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/runner"
)

func TestModbusThermostatExample(t *testing.T) {
	mqtttest.RequireClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The simulated thermostat, on a random port; its registers are set
	// where the example's Device says they are.
	src, err := os.ReadFile("devices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	devs, err := runner.LoadDeviceFiles([]string{"devices.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	dev := devs[0]
	visitor := func(name string) (*devices.ModbusVisitor, devices.PropertyType) {
		p := dev.Property(name)
		return p.Modbus, p.Type
	}
	regs := modbus.NewRegisters()
	set := func(name string, v any) {
		vis, typ := visitor(name)
		if err := regs.Set(vis, typ, v); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) any {
		vis, typ := visitor(name)
		v, err := regs.Get(vis, typ)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	set("temperature", 35.0)
	set("limit", int64(30))
	_, slavePort, _ := net.SplitHostPort(modbustest.Serve(t, modbus.SlaveOptions{SlaveID: 1, Registers: regs}))
	devFile := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(devFile, []byte(strings.Replace(string(src), "port: 5020", "port: "+slavePort, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The runner, as `eddy run --node edge-1 --devices devices.yaml pipeline.yaml` would start it.
	r := runnertest.Start(t, runner.Config{DataDir: t.TempDir(), AllowAnonymous: true,
		Node: "edge-1", DeviceFiles: []string{devFile}, Logger: slog.New(slog.DiscardHandler)})
	port := runnertest.BrokerPort(r)

	// Alerts as an outside consumer sees them, and inline for pacing.
	sub := runnertest.Subscribe(t, r, mqtttest.SubOptions{Topics: []string{"alerts/#"}, ID: "alerts", QoS: 1})
	var mu sync.Mutex
	var states []string
	unsub, err := r.Broker().Subscribe("alerts/#", func(_ string, payload []byte) {
		var a struct{ State string }
		_ = json.Unmarshal(payload, &a)
		mu.Lock()
		states = append(states, a.State)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	seen := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(states) >= n }
	}
	if err := r.ApplyFile(ctx, "pipeline.yaml"); err != nil {
		t.Fatal(err)
	}

	// 1. 35 °C is above the twin's limit of 30: the alert fires.
	mqtttest.WaitFor(t, "the first alert", seen(1))
	// 2. It cools to 25 °C: the alert resolves.
	set("temperature", 25.0)
	mqtttest.WaitFor(t, "the resolved alert", seen(2))
	// 3. An app lowers the limit to 20 through the twin protocol; the runner
	// writes it to the thermostat's register, reads it back into the twin,
	// and 25 °C is now above the limit: the alert fires again.
	msg := fmt.Sprintf(`{"event_id":"set-limit","timestamp":%d,"twin":{"limit":{"expected":{"value":"20"}}}}`, time.Now().UnixMilli())
	mqtttest.Pub(t, port, "$hw/events/device/default/thermostat-1/twin/update", 1, msg)
	mqtttest.WaitFor(t, "the new limit in the thermostat's register", func() bool { return get("limit") == int64(20) })
	mqtttest.WaitFor(t, "the second alert", seen(3))

	got := sub.Lines(3)
	want := []map[string]any{
		{"state": "firing", "message": "default/thermostat-1: temperature 35 C is above its limit 30 C",
			"values": map[string]any{"temperature": 35.0, "twin_limit": 30.0}},
		{"state": "resolved", "message": "default/thermostat-1: temperature 25 C is above its limit 30 C",
			"values": map[string]any{"temperature": 25.0, "twin_limit": 30.0}},
		{"state": "firing", "message": "default/thermostat-1: temperature 25 C is above its limit 20 C",
			"values": map[string]any{"temperature": 25.0, "twin_limit": 20.0}},
	}
	idRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	var ids []string
	for i, line := range got {
		topic, payload, _ := strings.Cut(line, " ")
		if topic != "alerts/default/thermostat-1" {
			t.Errorf("alert %d on topic %q, want alerts/default/thermostat-1", i, topic)
		}
		var a map[string]any
		if err := json.Unmarshal([]byte(payload), &a); err != nil {
			t.Fatalf("alert %d is not JSON: %v: %s", i, err, payload)
		}
		id, _ := a["alert_id"].(string)
		if !idRE.MatchString(id) {
			t.Errorf("alert %d alert_id = %q, want 16 hex digits", i, id)
		}
		ids = append(ids, id)
		for k, v := range map[string]any{"key": "default/thermostat-1", "severity": "warning",
			"pipeline": "default/thermostat-limit", "rule": "alert-2", "state": want[i]["state"], "message": want[i]["message"]} {
			if a[k] != v {
				t.Errorf("alert %d %s = %#v, want %#v", i, k, a[k], v)
			}
		}
		vals, _ := a["values"].(map[string]any)
		wantVals := want[i]["values"].(map[string]any)
		for k, v := range map[string]any{"device": "thermostat-1", "namespace": "default", "device_id": "default/thermostat-1"} {
			wantVals[k] = v
		}
		ts, _ := vals["timestamp"].(float64)
		if ts <= 0 {
			t.Errorf("alert %d values.timestamp = %v, want the reading's time in ms", i, vals["timestamp"])
		}
		delete(vals, "timestamp")
		if fmt.Sprint(vals) != fmt.Sprint(wantVals) {
			t.Errorf("alert %d values = %v, want %v", i, vals, wantVals)
		}
		for _, k := range []string{"started_at", "ts"} {
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a[k])); err != nil {
				t.Errorf("alert %d %s = %v: %v", i, k, a[k], err)
			}
		}
	}
	if len(ids) == 3 && (ids[0] != ids[1] || ids[1] == ids[2]) {
		t.Errorf("alert ids %q: the resolve must share the first episode's id and the new episode get a new one", ids)
	}
}
