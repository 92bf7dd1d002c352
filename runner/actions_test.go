package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/internal/containerdtest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/actions"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/wal"
)

// actionRunner starts a runner whose actions use ctd.
func actionRunner(t testing.TB, dataDir string, ctd *containerdtest.Containerd, policy actions.Config) *runner.Runner {
	t.Helper()
	policy.Runtime = ctd.Endpoint
	if policy.AllowedImages == nil {
		policy.AllowedImages = []string{"localhost/eddy/busybox:*"}
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return runnertest.Start(t, runner.Config{DataDir: dataDir, AllowAnonymous: true,
		Node: "edge-a", CheckpointInterval: 100 * time.Millisecond, Actions: policy,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
}

func apply(t testing.TB, r *runner.Runner, spec string) {
	t.Helper()
	plans, err := pipeline.Load("test.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		if err := r.Apply(context.Background(), p, []byte(spec)); err != nil {
			t.Fatal(err)
		}
	}
}

func publish(t testing.TB, r *runner.Runner, topic, msg string) {
	t.Helper()
	if err := r.Broker().Publish(topic, []byte(msg), 1, false); err != nil {
		t.Fatal(err)
	}
}

// collect subscribes to the runner's broker and keeps every payload.
type collect struct {
	mu   sync.Mutex
	msgs []map[string]any
}

func collectTopic(t testing.TB, r *runner.Runner, filter string) *collect {
	c := &collect{}
	unsub, err := r.Broker().Subscribe(filter, func(topic string, payload []byte) {
		var m map[string]any
		if json.Unmarshal(payload, &m) == nil {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return c
}

func (c *collect) find(match func(map[string]any) bool) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if match(m) {
			return m, true
		}
	}
	return nil, false
}

// records returns the runner's recent action records in state st.
func records(r *runner.Runner, st actions.State) []actions.Record {
	var out []actions.Record
	for _, rec := range r.Actions().Recent() {
		if rec.State == st {
			out = append(out, rec)
		}
	}
	return out
}

const overheatAction = `apiVersion: eddy.dev/v1alpha1
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
        command: [sh, -c, 'echo cooling $DEV at {{values.t}}; exit 0']
        env: {DEV: "{{key}}"}
        memory: 32Mi
        cpu: 250m
        timeout: 30s
---
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: action-results}
spec:
  source: {stream: {name: actions}}
  sinks: [{mqtt: {topic: "out/actions"}}]
---
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: lifecycle}
spec:
  source: {stream: {name: podlifecycle}}
  steps:
    - filter: "kind == 'container'"
  sinks: [{mqtt: {topic: "out/lifecycle"}}]
`

// TestActionRunsOncePerEpisode: an alert runs its container once, its
// output and exit reach the actions stream and the podlifecycle stream
// (and pipelines reading them); the still-firing alert does not run it
// again, a new episode does.
func TestActionRunsOncePerEpisode(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	results := collectTopic(t, r, "out/actions")
	life := collectTopic(t, r, "out/lifecycle")
	apply(t, r, overheatAction)

	publish(t, r, "sensors/a", `{"t": 60}`)
	mqtttest.WaitFor(t, "the action's exit", func() bool { return len(records(r, actions.Exited)) == 1 })
	ex := records(r, actions.Exited)[0]
	if *ex.ExitCode != 0 || ex.Output != "cooling sensors/a at 60\n" || ex.AlertID == "" || ex.Action != "default/overheat/cool" {
		t.Fatalf("exited record %+v", ex)
	}
	publish(t, r, "sensors/a", `{"t": 70}`) // same episode
	publish(t, r, "sensors/a", `{"t": 10}`) // resolved: not an "on" state
	publish(t, r, "sensors/a", `{"t": 80}`) // a new episode
	mqtttest.WaitFor(t, "the second episode's exit", func() bool { return len(records(r, actions.Exited)) == 2 })
	if n := len(records(r, actions.Started)); n != 2 {
		t.Fatalf("%d starts, want 2", n)
	}
	mqtttest.WaitFor(t, "the results on a pipeline reading the actions stream", func() bool {
		_, ok := results.find(func(m map[string]any) bool {
			return m["state"] == "exited" && m["output"] == "cooling sensors/a at 80\n"
		})
		return ok
	})
	mqtttest.WaitFor(t, "the container's exit on the podlifecycle stream", func() bool {
		_, ok := life.find(func(m map[string]any) bool {
			return m["event"] == "exited" && m["exit_code"] == 0.0 && m["pod"] == ex.Pod && m["namespace"] == actions.PodNamespace
		})
		return ok
	})
	// Pods are removed once the result is durable.
	ctd.WaitPodsGone(t, "the pods to be removed", map[string]string{actions.LabelManaged: "true"})
	st := r.Actions().Stats()
	if len(st) != 1 || st[0].Started != 2 || st[0].Succeeded != 2 || st[0].LatencyP50Ms <= 0 {
		t.Fatalf("stats %+v", st)
	}

	// The API and /metrics show them.
	srv, err := api.New(api.Options{Backend: r})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	var list api.ActionList
	getJSON(t, hs.URL+"/api/v1/actions", &list)
	if list.Runtime != "connected" || len(list.Actions) != 1 || list.Actions[0].Succeeded != 2 || len(list.Recent) != 6 {
		t.Fatalf("GET /api/v1/actions: %+v", list)
	}
	metrics := getText(t, hs.URL+"/metrics")
	for _, want := range []string{`eddy_action_outcomes_total{action="default/overheat/cool",outcome="succeeded"} 2`,
		`eddy_action_runtime_up 1`, `eddy_action_start_latency_seconds{action="default/overheat/cool",quantile="0.99"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, res.Status, b)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getText(t, url)), v); err != nil {
		t.Fatal(err)
	}
}

const slowAction = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: slow}
spec:
  source: {mqtt: {topic: "sensors/+"}}
  steps:
    - alert: {when: "t > 50"}
  sinks:
    - name: slow
      action:
        image: localhost/eddy/busybox:1.35
        command: [sleep, "{{values.sleep}}"]
        concurrency: %s
        timeout: %s
`

func TestActionConcurrencyForbid(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	apply(t, r, fmt.Sprintf(slowAction, "forbid", "30s"))
	publish(t, r, "sensors/a", `{"t": 60, "sleep": 2}`)
	mqtttest.WaitFor(t, "the first run", func() bool { return len(records(r, actions.Started)) == 1 })
	publish(t, r, "sensors/b", `{"t": 60, "sleep": 2}`)
	mqtttest.WaitFor(t, "the skip", func() bool { return len(records(r, actions.Skipped)) == 1 })
	if s := records(r, actions.Skipped)[0]; s.Key != "sensors/b" || !strings.Contains(s.Error, "forbid") {
		t.Fatalf("skipped %+v", s)
	}
	mqtttest.WaitFor(t, "the first run's exit", func() bool { return len(records(r, actions.Exited)) == 1 })
	publish(t, r, "sensors/c", `{"t": 60, "sleep": 0}`)
	mqtttest.WaitFor(t, "a run after the first ended", func() bool { return len(records(r, actions.Exited)) == 2 })
}

func TestActionConcurrencyReplace(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	apply(t, r, fmt.Sprintf(slowAction, "replace", "60s"))
	publish(t, r, "sensors/a", `{"t": 60, "sleep": 60}`)
	mqtttest.WaitFor(t, "the first run", func() bool { return len(records(r, actions.Started)) == 1 })
	publish(t, r, "sensors/b", `{"t": 60, "sleep": 0}`)
	mqtttest.WaitFor(t, "the first run replaced", func() bool { return len(records(r, actions.Replaced)) == 1 })
	mqtttest.WaitFor(t, "the second run's exit", func() bool { return len(records(r, actions.Exited)) == 1 })
	if rep, ex := records(r, actions.Replaced)[0], records(r, actions.Exited)[0]; rep.Key != "sensors/a" || ex.Key != "sensors/b" || *ex.ExitCode != 0 {
		t.Fatalf("replaced %+v, exited %+v", rep, ex)
	}
}

func TestActionTimeout(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	apply(t, r, fmt.Sprintf(slowAction, "allow", "1s"))
	publish(t, r, "sensors/a", `{"t": 60, "sleep": 60}`)
	mqtttest.WaitFor(t, "the timeout", func() bool { return len(records(r, actions.TimedOut)) == 1 })
	to := records(r, actions.TimedOut)[0]
	if to.ExitCode == nil || *to.ExitCode == 0 || to.DurationMs > 10_000 {
		t.Fatalf("timed out record %+v", to)
	}
	ctd.WaitPodsGone(t, "the pod to be removed", nil)
}

// TestActionRefusedImage: an image outside the allow-list is refused,
// reported, and nothing reaches the runtime.
func TestActionRefusedImage(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{AllowedImages: []string{"localhost/eddy/busybox:1.35"}})
	apply(t, r, strings.ReplaceAll(overheatAction, "localhost/eddy/busybox:1.35", "localhost/eddy/pause:1.35"))
	publish(t, r, "sensors/a", `{"t": 60}`)
	mqtttest.WaitFor(t, "the refusal", func() bool { return len(records(r, actions.Refused)) == 1 })
	if ref := records(r, actions.Refused)[0]; !strings.Contains(ref.Error, "allowedImages") {
		t.Fatalf("refused %+v", ref)
	}
	pods, err := r.Actions().Runtime().Pods(context.Background(), nil)
	if err != nil || len(pods) != 0 || len(records(r, actions.Intent)) != 0 {
		t.Fatalf("pods %v (%v), intents %v: a refused action must not run", pods, err, records(r, actions.Intent))
	}
}

// TestActionMissingImage: an allowed image the runtime lacks fails clearly.
func TestActionMissingImage(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{AllowedImages: []string{"*"}})
	apply(t, r, strings.ReplaceAll(overheatAction, "localhost/eddy/busybox:1.35", "localhost/missing:1"))
	publish(t, r, "sensors/a", `{"t": 60}`)
	mqtttest.WaitFor(t, "the failure", func() bool { return len(records(r, actions.Failed)) == 1 })
	if f := records(r, actions.Failed)[0]; !strings.Contains(f.Error, "ctr -n k8s.io images import") {
		t.Fatalf("failed %+v", f)
	}
}

// TestActionCrashAfterIntent: the runner died after recording the intent
// and before asking the runtime (the log holds an intent and nothing
// else). The restarted runner carries it out exactly once, and the
// pipeline's replay of the same alert does not start it again.
func TestActionCrashAfterIntent(t *testing.T) {
	ctd := containerdtest.Start(t)
	dir := t.TempDir()
	r1 := actionRunner(t, dir, ctd, actions.Config{})
	apply(t, r1, overheatAction)
	publish(t, r1, "sensors/a", `{"t": 60}`)
	mqtttest.WaitFor(t, "the first run's exit", func() bool { return len(records(r1, actions.Exited)) == 1 })
	first := records(r1, actions.Intent)[0]
	// Forge the state a kill -9 right after the intent leaves: an intent
	// for a new episode with no pod in the runtime and no result.
	forged := first
	forged.Episode, forged.AlertID, forged.Time = "crash-episode/firing", "crash-episode", 0
	forged.TriggeredAt = time.Now().UnixNano()
	forged.Run = &actions.RunSpec{Image: containerdtest.Busybox, Command: []string{"sh", "-c", "echo recovered"}, HostNetwork: true}
	b, _ := json.Marshal(forged)
	if err := r1.Log().AppendWith(context.Background(), wal.Durable, &wal.Record{Topic: actions.Topic, Payload: b}); err != nil {
		t.Fatal(err)
	}
	r1.Close()

	r2 := actionRunner(t, dir, ctd, actions.Config{})
	apply(t, r2, overheatAction) // replays sensors/a from its checkpoint
	mqtttest.WaitFor(t, "the recovered intent's exit", func() bool {
		for _, rec := range records(r2, actions.Exited) {
			if rec.Episode == forged.Episode {
				return true
			}
		}
		return false
	})
	var starts, exits int
	for _, rec := range r2.Actions().Recent() {
		if rec.Episode == forged.Episode && rec.State == actions.Started {
			starts++
		}
		if rec.Episode == forged.Episode && rec.State == actions.Exited {
			exits++
			if rec.Output != "recovered\n" {
				t.Errorf("output %q", rec.Output)
			}
		}
	}
	if starts != 1 || exits != 1 {
		t.Fatalf("%d starts, %d exits of the recovered episode; want 1 and 1", starts, exits)
	}
	if n := len(records(r2, actions.Started)); n != 2 { // the first episode's start (replayed from the log) and the recovered one
		t.Fatalf("%d started records in all, want 2: %+v", n, r2.Actions().Recent())
	}
}

// TestActionAdoptedAfterRestart: the runner stops while its container runs;
// the next one adopts the container (no second start) and reports its
// exit.
func TestActionAdoptedAfterRestart(t *testing.T) {
	ctd := containerdtest.Start(t)
	dir := t.TempDir()
	r1 := actionRunner(t, dir, ctd, actions.Config{})
	apply(t, r1, fmt.Sprintf(slowAction, "forbid", "60s"))
	publish(t, r1, "sensors/a", `{"t": 60, "sleep": 3}`)
	mqtttest.WaitFor(t, "the run", func() bool { return len(records(r1, actions.Started)) == 1 })
	r1.Close()

	r2 := actionRunner(t, dir, ctd, actions.Config{})
	apply(t, r2, fmt.Sprintf(slowAction, "forbid", "60s"))
	mqtttest.WaitFor(t, "the adopted run's exit", func() bool { return len(records(r2, actions.Exited)) == 1 })
	if n := len(records(r2, actions.Started)); n != 1 {
		t.Fatalf("%d starts, want 1", n)
	}
	mqtttest.WaitFor(t, "the pod to be removed", func() bool {
		cs, err := r2.Actions().Runtime().Containers(context.Background(), "", nil)
		return err == nil && len(cs) == 0
	})
}

const crashLoop = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: crashloop}
spec:
  source: {stream: {name: podlifecycle}}
  key: 'namespace + "/" + pod + "/" + container'
  idleTimeout: 1s
  steps:
    - filter: "event == 'exited' && kind == 'container' && exit_code != 0"
    - window: {sliding: {size: 5m, every: 1s}}
    - aggregate: {restarts: count()}
    - alert: {when: "restarts >= 3", message: "{{key}} restarted {{restarts}} times in 5m"}
  sinks:
    - mqtt: {topic: "out/crashloop"}
    - name: diagnose
      action:
        image: localhost/eddy/busybox:1.35
        command: [sh, -c, 'echo "diagnosing $TARGET"']
        env: {TARGET: "{{key}}"}
`

// TestCrashLoopPipeline: the example pipeline fires on a container that
// crash-loops (restarted like the kubelet would) and runs its diagnostic
// container once.
func TestCrashLoopPipeline(t *testing.T) {
	ctd := containerdtest.Start(t)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	alerts := collectTopic(t, r, "out/crashloop")
	apply(t, r, crashLoop)
	rt := ctd.Runtime(t)
	ctx := context.Background()
	l, err := rt.Run(ctx, cri.RunSpec{Name: "flaky", Namespace: "factory", UID: "flaky-1", Image: containerdtest.Busybox,
		HostNetwork: true, Command: []string{"sh", "-c", "exit 2"}})
	if err != nil {
		t.Fatal(err)
	}
	id := l.ContainerID
	for i := 0; i < 3; i++ {
		st, err := rt.Wait(ctx, id)
		if err != nil || st.ExitCode != 2 {
			t.Fatalf("wait: %v %+v", err, st)
		}
		if i < 2 {
			if err := rt.Restart(ctx, id, time.Second); err != nil {
				t.Fatal(err)
			}
			cs, err := rt.Containers(ctx, l.SandboxID, nil)
			if err != nil || len(cs) != 1 || cs[0].Attempt != uint32(i+1) {
				t.Fatalf("after restart: %+v %v", cs, err)
			}
			id = cs[0].ID
		}
	}
	mqtttest.WaitFor(t, "the crash-loop alert", func() bool {
		_, ok := alerts.find(func(m map[string]any) bool { return m["state"] == "firing" && m["key"] == "factory/flaky/flaky" })
		return ok
	})
	mqtttest.WaitFor(t, "the diagnostic container's exit", func() bool { return len(records(r, actions.Exited)) == 1 })
	if ex := records(r, actions.Exited)[0]; ex.Output != "diagnosing factory/flaky/flaky\n" {
		t.Fatalf("diagnostic %+v", ex)
	}
}

const stopMotor = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: motor}
spec:
  source: {mqtt: {topic: "motors/+"}}
  steps:
    - alert: {when: "rpm > 5000"}
  sinks:
    - name: guard
      action:
        do: %s
        target: {namespace: factory, pod: motor, container: controller}
`

// runMotor starts a container Eddy did not start: namespace factory, pod
// motor, container controller.
func runMotor(t *testing.T, rt *cri.Runtime) cri.Launched {
	t.Helper()
	l, err := rt.Run(context.Background(), cri.RunSpec{Name: "motor", ContainerName: "controller", Namespace: "factory", UID: "motor", Image: containerdtest.Busybox,
		HostNetwork: true, Command: []string{"sleep", "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestActionStopForeignContainer: stopping a container Eddy did not start
// is refused without a foreignTargets pattern (and nothing is touched),
// and done with one.
func TestActionStopForeignContainer(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	ctx := context.Background()
	motor := runMotor(t, rt)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{})
	apply(t, r, fmt.Sprintf(stopMotor, "stop"))
	publish(t, r, "motors/m1", `{"rpm": 6000}`)
	mqtttest.WaitFor(t, "the refusal", func() bool { return len(records(r, actions.Refused)) == 1 })
	if ref := records(r, actions.Refused)[0]; !strings.Contains(ref.Error, "factory/motor/controller") || !strings.Contains(ref.Error, "foreignTargets") {
		t.Fatalf("refused %+v", ref)
	}
	if st, err := rt.Container(ctx, motor.ContainerID); err != nil || st.State != cri.StateRunning {
		t.Fatalf("the motor must still run: %+v %v", st, err)
	}
	r.Close()

	r2 := actionRunner(t, t.TempDir(), ctd, actions.Config{ForeignTargets: []string{"factory/motor/*"}})
	apply(t, r2, fmt.Sprintf(stopMotor, "stop"))
	publish(t, r2, "motors/m1", `{"rpm": 6000}`)
	mqtttest.WaitFor(t, "the stop", func() bool { return len(records(r2, actions.Done)) == 1 })
	if d := records(r2, actions.Done)[0]; len(d.Targets) != 1 || d.Targets[0] != "factory/motor/controller" {
		t.Fatalf("done %+v", d)
	}
	if st, err := rt.Container(ctx, motor.ContainerID); err != nil || st.State != cri.StateExited {
		t.Fatalf("the motor must be stopped: %+v %v", st, err)
	}
}

// TestActionRestartForeignContainer: restart re-creates the container in
// its pod with the restart count one higher, as the kubelet does.
func TestActionRestartForeignContainer(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	ctx := context.Background()
	motor := runMotor(t, rt)
	r := actionRunner(t, t.TempDir(), ctd, actions.Config{ForeignTargets: []string{"factory/*/controller"}})
	apply(t, r, fmt.Sprintf(stopMotor, "restart"))
	publish(t, r, "motors/m1", `{"rpm": 6000}`)
	mqtttest.WaitFor(t, "the restart", func() bool { return len(records(r, actions.Done)) == 1 })
	cs, err := rt.Containers(ctx, motor.SandboxID, nil)
	if err != nil || len(cs) != 1 || cs[0].ID == motor.ContainerID || cs[0].Attempt != 1 || cs[0].State != cri.StateRunning || cs[0].Name != "controller" {
		t.Fatalf("after restart: %+v %v", cs, err)
	}
}

// TestActionSweepsFinishedPods: a pod whose episode already has its result
// in the log (its removal failed, or the runner stopped first) is removed
// at the next start.
func TestActionSweepsFinishedPods(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	dir := t.TempDir()
	r1 := actionRunner(t, dir, ctd, actions.Config{})
	for _, rec := range []actions.Record{
		{State: actions.Intent, Action: "default/x/y", Episode: "e1"},
		{State: actions.Exited, Action: "default/x/y", Episode: "e1"},
	} {
		b, _ := json.Marshal(rec)
		if err := r1.Log().AppendWith(context.Background(), wal.Durable, &wal.Record{Topic: actions.Topic, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	r1.Close()
	sum := sha256.Sum256([]byte("default/x/y\x00e1"))
	uid := hex.EncodeToString(sum[:16])
	if _, err := rt.Run(context.Background(), cri.RunSpec{Name: "leftover", UID: uid, Image: containerdtest.Busybox, HostNetwork: true,
		Command: []string{"true"}, Labels: map[string]string{actions.LabelManaged: "true", actions.LabelNode: "edge-a", actions.LabelEpisode: uid}}); err != nil {
		t.Fatal(err)
	}
	actionRunner(t, dir, ctd, actions.Config{})
	ctd.WaitPodsGone(t, "the leftover pod to be removed", nil)
}
