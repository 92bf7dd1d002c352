// Package containeractions_test runs the container-actions example as
// written: a private containerd with the busybox image, an Eddy runner
// with the policy of edge.yaml loading both pipeline files, readings
// published with mosquitto_pub, results read with mosquitto_sub, and a
// crash-looping container restarted as the kubelet would.
package containeractions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/internal/containerdtest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/actions"
)

// edgePolicy reads the actions section of edge.yaml.
func edgePolicy(t *testing.T) actions.Config {
	src, err := os.ReadFile("edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		DataDir   string         `json:"dataDir"`
		Node      string         `json:"node"`
		Actions   actions.Config `json:"actions"`
		Pipelines []string       `json:"pipelines"`
	}
	docs, errs := strictyaml.Split("edge.yaml", src)
	if len(errs) == 0 {
		errs = docs[0].Decode(&cfg)
	}
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg.Actions
}

func TestContainerActionsExample(t *testing.T) {
	mqtttest.RequireClients(t)
	ctd := containerdtest.Start(t)
	policy := edgePolicy(t)
	policy.Runtime = ctd.Endpoint // the test's private containerd
	ctx := context.Background()
	r := runnertest.Start(t, runner.Config{DataDir: t.TempDir(), AllowAnonymous: true, Node: "edge-a", Actions: policy,
		Logger: slog.New(slog.DiscardHandler)})
	for _, f := range []string{"restart-on-overheat.yaml", "crashloop.yaml"} {
		if err := r.ApplyFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	port := runnertest.BrokerPort(r)
	sub := runnertest.Subscribe(t, r, mqtttest.SubOptions{Topics: []string{"actions/#", "lifecycle/#", "alerts/#"}, ID: "ops", QoS: 1})

	// press-1 reads 35 °C for 20 s of event time, then 20 °C.
	t0 := time.Now().Add(-time.Minute).Truncate(10 * time.Second).UnixMilli()
	var lines []string
	for s := int64(0); s < 30; s++ {
		temp := 35
		if s >= 20 {
			temp = 20
		}
		lines = append(lines, fmt.Sprintf(`{"device":"press-1","temperature":%d,"ts":%d}`, temp, t0+s*1000))
	}
	mqtttest.PubLines(t, port, "factory/line-1/data", 1, lines...)

	// next returns the first message (seen before or arriving now) that
	// want accepts: the streams interleave.
	type msg struct {
		topic string
		m     map[string]any
	}
	var seen []msg
	next := func(what string, want func(topic string, m map[string]any) bool) map[string]any {
		t.Helper()
		for i := 0; ; i++ {
			if i == len(seen) {
				line := sub.Next()
				topic, payload, _ := strings.Cut(line, " ")
				var m map[string]any
				if err := json.Unmarshal([]byte(payload), &m); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				seen = append(seen, msg{topic, m})
			}
			if want(seen[i].topic, seen[i].m) {
				return seen[i].m
			}
		}
	}
	exited := next("cooling container exit", func(topic string, m map[string]any) bool { return topic == "actions/exited" })
	if exited["exit_code"] != 0.0 || exited["output"] != "cooling press-1 (avg 35 C)\nfan=100\n" || exited["key"] != "press-1" {
		t.Fatalf("cooling result %v", exited)
	}
	next("the container's exit on the podlifecycle stream", func(topic string, m map[string]any) bool {
		return strings.HasPrefix(topic, "lifecycle/exited/") && m["pod"] == exited["pod"] && m["exit_code"] == 0.0
	})

	// A container that crash-loops: it exits with 2 and is restarted three
	// times in a row.
	rt := ctd.Runtime(t)
	l, err := rt.Run(ctx, cri.RunSpec{Name: "flaky", Namespace: "factory", UID: "flaky", Image: containerdtest.Busybox,
		HostNetwork: true, Command: []string{"sh", "-c", "echo starting; exit 2"}})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ContainerID
	for i := 0; i < 3; i++ {
		if _, err := rt.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			break
		}
		if err := rt.Restart(ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
		cs, err := rt.Containers(ctx, l.SandboxID, nil)
		if err != nil || len(cs) != 1 {
			t.Fatalf("containers after restart: %v %v", cs, err)
		}
		id = cs[0].ID
	}
	alert := next("the crash-loop alert", func(topic string, m map[string]any) bool {
		return topic == "alerts/crashloop/factory/flaky/flaky" && m["state"] == "firing"
	})
	if alert["message"] != "factory/flaky/flaky restarted 3 times in 5m" {
		t.Fatalf("alert %v", alert)
	}
	diag := next("the diagnostic container's result", func(topic string, m map[string]any) bool {
		return topic == "actions/exited" && strings.Contains(fmt.Sprint(m["action"]), "diagnose")
	})
	if !strings.HasPrefix(fmt.Sprint(diag["output"]), "diagnosing factory/flaky/flaky\n") {
		t.Fatalf("diagnostic result %v", diag)
	}
}
