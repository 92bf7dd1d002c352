// Package overheat_test runs the overheat example as written: an Eddy
// runner in-process loading overheat.yaml, readings published with Debian's
// mosquitto_pub, alerts read with mosquitto_sub.
package overheat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/broker"
)

func TestOverheatExample(t *testing.T) {
	mqtttest.RequireClients(t)
	ctx := context.Background()
	r, err := runner.New(runner.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPAddr: "-",
		AllowAnonymous: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.ApplyFile(ctx, "overheat.yaml"); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(r.Broker().Addr().String())
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alerts/#"}, ID: "alerts", QoS: 1,
		Ready: func() bool {
			return slices.ContainsFunc(r.Broker().Clients(), func(c broker.ClientInfo) bool {
				return c.ID == "alerts" && slices.Contains(c.Subscriptions, "alerts/#")
			})
		}})

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
}
