package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/internal/containerdtest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/actions"
)

const benchAction = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {mqtt: {topic: "sensors/+"}}
  steps:
    - alert: {when: "t > 50"}
  sinks:
    - name: act
      action:
        image: localhost/eddy/busybox:1.35
        command: ["true"]
        concurrency: allow
---
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: lifecycle}
spec:
  source: {stream: {name: podlifecycle}}
  sinks: [{mqtt: {topic: "out/lifecycle"}}]
`

func quantiles(v []float64) (p50, p99 float64) {
	if len(v) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2], s[int(0.99*float64(len(s)-1)+0.5)]
}

// BenchmarkActionStart measures, against a real containerd, the latency
// from an MQTT publish that fires an alert to the action's container
// running (publish → alert → durable intent → RunPodSandbox, CreateContainer,
// StartContainer), the sink's own trigger → started latency, and the
// podlifecycle stream: events and WAL bytes per action and the delay from
// containerd's event timestamp to the event reaching a pipeline's output.
// Peers in the same run: the same three CRI calls made directly (the
// runtime's floor), and `ctr run --rm` (containerd's own CLI, a whole
// create-start-wait-delete cycle).
func BenchmarkActionStart(b *testing.B) {
	ctd := containerdtest.Start(b)
	r := actionRunner(b, b.TempDir(), ctd, actions.Config{MaxConcurrent: 64})
	var mu sync.Mutex
	var lifeLat []float64
	var lifeEvents, lifeBytes int
	unsub, err := r.Broker().Subscribe("out/lifecycle", func(topic string, payload []byte) {
		var m map[string]any
		if json.Unmarshal(payload, &m) != nil {
			return
		}
		now := float64(time.Now().UnixNano()) / 1e6
		mu.Lock()
		defer mu.Unlock()
		lifeEvents++
		lifeBytes += len(payload)
		if ts, ok := m["time"].(float64); ok && m["event"] == "started" && m["kind"] == "container" {
			lifeLat = append(lifeLat, now-ts)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer unsub()
	apply(b, r, benchAction)

	var e2e, sink []float64
	started := func() int { return len(records(r, actions.Started)) }
	exited := func() int { return len(records(r, actions.Exited)) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n0, x0 := started(), exited()
		t0 := time.Now()
		publish(b, r, fmt.Sprintf("sensors/k%d", i), `{"t": 60}`)
		for started() == n0 {
			time.Sleep(200 * time.Microsecond)
		}
		e2e = append(e2e, float64(time.Since(t0).Microseconds())/1e3)
		recs := records(r, actions.Started)
		sink = append(sink, recs[len(recs)-1].LatencyMs)
		mqtttest.WaitFor(b, "the run's exit", func() bool { return exited() > x0 })
	}
	b.StopTimer()
	runs := b.N
	mqtttest.WaitFor(b, "the lifecycle events", func() bool { mu.Lock(); defer mu.Unlock(); return len(lifeLat) >= runs })
	// Every action's pod is gone once its deleted events are in.
	ctd.WaitPodsGone(b, "the pods to be removed", nil)
	time.Sleep(500 * time.Millisecond) // the last deleted events
	mu.Lock()
	events, bytes := lifeEvents, lifeBytes
	lat := append([]float64(nil), lifeLat...)
	mu.Unlock()

	// Peer 1: the same CRI calls, made directly.
	rt := ctd.Runtime(b)
	ctx := context.Background()
	var direct []float64
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		l, err := rt.Run(ctx, cri.RunSpec{Name: fmt.Sprintf("peer-%d", i), UID: fmt.Sprintf("peer-%d", i), Image: containerdtest.Busybox,
			HostNetwork: true, Command: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, float64(time.Since(t0).Microseconds())/1e3)
		if _, err := rt.Wait(ctx, l.ContainerID); err != nil {
			b.Fatal(err)
		}
		if err := rt.RemovePod(ctx, l.SandboxID); err != nil {
			b.Fatal(err)
		}
	}
	// Peer 2: ctr run --rm, a whole cycle.
	var ctrRun []float64
	sock := filepath.Join(ctd.Dir, "c.sock")
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		out, err := exec.Command("ctr", "-a", sock, "-n", "k8s.io", "run", "--rm", "--net-host", containerdtest.Busybox,
			fmt.Sprintf("ctr-peer-%d", i), "true").CombinedOutput()
		if err != nil {
			b.Fatalf("ctr run: %v %s", err, out)
		}
		ctrRun = append(ctrRun, float64(time.Since(t0).Microseconds())/1e3)
	}

	report := func(name string, v []float64) {
		p50, p99 := quantiles(v)
		b.ReportMetric(p50, name+"-p50-ms")
		b.ReportMetric(p99, name+"-p99-ms")
	}
	report("publish-to-started", e2e)
	report("trigger-to-started", sink)
	report("cri-direct-started", direct)
	report("ctr-run-rm", ctrRun)
	report("lifecycle-to-pipeline", lat)
	b.ReportMetric(float64(events)/float64(runs), "lifecycle-events/action")
	b.ReportMetric(float64(bytes)/float64(events), "B/lifecycle-event")
	b.ReportMetric(0, "ns/op") // the latencies above are the result
	b.Logf("runs=%d  publish→started p50/p99 %v  cri direct %v  ctr run %v  lifecycle %v", runs,
		fmtQ(e2e), fmtQ(direct), fmtQ(ctrRun), fmtQ(lat))
}

func fmtQ(v []float64) string {
	p50, p99 := quantiles(v)
	return fmt.Sprintf("%.1f/%.1f ms", p50, p99)
}
