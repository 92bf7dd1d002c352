package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/eddy-edge/eddy/internal/containerdtest"
	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/actions"
)

// TestE2EActionSurvivesKill9: eddy edge runs an action container, is
// killed with SIGKILL while the container runs, and is started again on the
// same data dir: the container is adopted, never started a second time, and
// its exit is reported once it ends.
func TestE2EActionSurvivesKill9(t *testing.T) {
	mqtttest.RequireClients(t)
	ctd := containerdtest.Start(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data") // file sinks of eddy edge write under its data dir
	pipelines := e2etest.WriteFile(t, dir, "pipelines.yaml", `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "sensors/+"}}
  steps:
    - alert: {when: "t > 50"}
  sinks:
    - name: cool
      action:
        image: localhost/eddy/busybox:1.35
        command: [sh, -c, "sleep 3; echo cooled {{key}}"]
        timeout: 1m
---
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: results}
spec:
  source: {stream: {name: actions}}
  sinks: [{file: {path: "`+filepath.Join(data, "actions.jsonl")+`"}}]
---
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: lifecycle}
spec:
  source: {stream: {name: podlifecycle}}
  steps: [{filter: "kind == 'container' && namespace == 'eddy-actions'"}]
  sinks: [{file: {path: "`+filepath.Join(data, "lifecycle.jsonl")+`"}}]
`)
	mqttPort := mqtttest.FreePort(t)
	cfg := e2etest.WriteFile(t, dir, "edge.yaml", fmt.Sprintf(`dataDir: %s
mqttAddr: 127.0.0.1:%s
httpAddr: 127.0.0.1:%s
allowAnonymous: true
node: e2e
checkpointInterval: 100ms
pipelines: [%s]
actions:
  runtime: %s
  allowedImages: ["localhost/eddy/*"]
`, data, mqttPort, mqtttest.FreePort(t), pipelines, ctd.Endpoint))

	p1 := startProc(t, "pipeline running", "edge", "--config", cfg)
	mqtttest.Pub(t, mqttPort, "sensors/a", 1, `{"t": 60}`)
	rt := ctd.Runtime(t)
	ctx := context.Background()
	mqtttest.WaitFor(t, "the action's container to run", func() bool {
		cs, err := rt.Containers(ctx, "", map[string]string{actions.LabelManaged: "true"})
		return err == nil && len(cs) == 1 && cs[0].State == "running"
	})
	p1.Kill()

	startProc(t, "pipeline running", "edge", "--config", cfg)
	mqtttest.Pub(t, mqttPort, "sensors/a", 1, `{"t": 70}`) // same episode: nothing new
	mqtttest.WaitFor(t, "the adopted container's exit in the actions stream", func() bool {
		for _, r := range e2etest.ReadJSONLines(t, filepath.Join(data, "actions.jsonl")) {
			if r["state"] == "exited" {
				return true
			}
		}
		return false
	})
	ctd.WaitPodsGone(t, "the pod to be removed", map[string]string{actions.LabelManaged: "true"})
	started, exited := map[string]bool{}, map[string]bool{}
	for _, r := range e2etest.ReadJSONLines(t, filepath.Join(data, "actions.jsonl")) {
		switch r["state"] {
		case "started":
			started[fmt.Sprint(r["container_id"])] = true
		case "exited":
			exited[fmt.Sprint(r["container_id"])] = true
			if r["output"] != "cooled sensors/a\n" || r["exit_code"] != 0.0 {
				t.Errorf("exit record %v", r)
			}
		}
	}
	// The file sink is at-least-once (a replay after the kill may write a
	// record twice); the containers are what must be unique.
	if len(started) != 1 || len(exited) != 1 {
		t.Fatalf("started %v, exited %v: want one container", started, exited)
	}
	ran := map[string]bool{}
	for _, r := range e2etest.ReadJSONLines(t, filepath.Join(data, "lifecycle.jsonl")) {
		if r["event"] == "started" {
			ran[fmt.Sprint(r["container_id"])] = true
		}
	}
	if len(ran) > 1 {
		t.Fatalf("the runtime started %d action containers: %v", len(ran), ran)
	}
}
