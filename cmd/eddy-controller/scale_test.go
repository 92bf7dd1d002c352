//go:build scale

package main

// TestScale is the controller's scale benchmark (make bench runs it with
// -tags scale): one eddy-controller process, one in-process hub, a real
// kube-apiserver, and N simulated edge nodes — lightweight in-process NATS
// clients that register, watch their own plans and report status through
// the fleet contract, as runner/link does. It prints one Markdown table row
// per node count: registration time, time from `kubectl apply` of a
// Pipeline selecting every node until every node reports it Running and
// until the Pipeline's status says N/N, the controller's CPU time and peak
// RSS, and its write rate to the API server.
//
//	EDDY_SCALE_NODES=1000,10000 go test -tags scale -run TestScale -v -timeout 30m ./cmd/eddy-controller
//
// EDDY_SCALE_SHARDS sets the hub's plan buckets (default 32);
// EDDY_SCALE_PROFILE=DIR writes CPU profiles of the controller and of the
// hub + simulated nodes during the apply; EDDY_SCALE_QPS sets the
// controller's --kube-api-qps (registration is bounded by it) and
// EDDY_SCALE_WRITERS its --writers (plan writes in flight).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eddy-edge/eddy/controller"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/fleet"
)

const scalePipeline = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: fleetwide, namespace: default}
spec:
  nodeSelector: {matchLabels: {fleet: scale}}
  source: {mqtt: {topic: "factory/+/data"}}
  steps:
    - alert: {when: "temperature > 80"}
  sinks:
    - mqtt: {topic: "alerts/{{key}}"}
`

func TestScale(t *testing.T) {
	counts := []int{1000, 10000}
	if v := os.Getenv("EDDY_SCALE_NODES"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("EDDY_SCALE_NODES=%q: %v", v, err)
			}
			counts = append(counts, n)
		}
	}
	fmt.Println("| nodes | plan buckets | register (EdgeNodes created) | apply → every node Running | apply → status N/N | controller CPU | controller peak RSS | API writes/s (during apply) | load before |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, n := range counts {
		scaleRun(t, n)
	}
}

func scaleRun(t *testing.T, n int) {
	load, _ := os.ReadFile("/proc/loadavg")
	cl := k8stest.Start(t, k8stest.Options{})
	defer cl.Stop()
	// A plain nats-server with JetStream (domain hub), as a production
	// fleet would run, not `eddy hub`: nats-server 2.15 allows 1,000
	// consumers per stream by default (JSDefaultMaxConsumersPerStream) and
	// every edge's plan watch is one consumer of the plans bucket, so a
	// fleet above ~1,000 nodes needs default_max_consumers: -1 (or a
	// larger number) in the server's jetstream block. fleet/hub does not
	// set it yet (see docs/scale.md).
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, JetStreamDomain: fleet.DefaultDomain,
		StoreDir: t.TempDir(), NoSigs: true, MaxPayload: 2 * fleet.MaxValueSize,
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer srv.Shutdown()
	h := srv
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	{
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		fc, _ := fleet.NewClient(nc, fleet.Options{PlanShards: scaleShards(t)})
		if err := fc.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		nc.Close()
	}

	metricsPort, pprofPort := freePort(t), freePort(t)
	args := []string{"--kubeconfig", cl.Kubeconfig(), "--hub", h.ClientURL(),
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--health-addr", "", "--log-level", "info",
		"--node-not-ready-after", "10m", "--status-interval", "2s", "--pprof-addr", fmt.Sprintf("127.0.0.1:%d", pprofPort)}
	if qps := os.Getenv("EDDY_SCALE_QPS"); qps != "" {
		args = append(args, "--kube-api-qps", qps)
	}
	if w := os.Getenv("EDDY_SCALE_WRITERS"); w != "" {
		args = append(args, "--writers", w)
	}
	ctrl := start(t, nil, "eddy-controller starting", "eddy-controller", args...)
	pid := ctrl.cmd.Process.Pid

	// The simulated nodes share 16 NATS connections.
	const conns = 16
	clients := make([]*fleet.Client, conns)
	for i := range clients {
		nc, err := nats.Connect(h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		clients[i], _ = fleet.NewClient(nc, fleet.Options{})
	}
	var running atomic.Int64
	var lastRunning atomic.Int64 // unix nanos of the last node's Running report
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("sim-%05d", i)
		c := clients[i%conns]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &fleet.NodeStatus{Node: name, Labels: map[string]string{"fleet": "scale"}, Version: "sim",
				StartedAt: time.Now(), ReportedAt: time.Now(), HeartbeatInterval: fleet.Duration{Duration: 5 * time.Minute}}
			if err := c.PutNodeStatus(ctx, st); err != nil {
				t.Error(err)
			}
			w, err := c.WatchPlans(ctx, name)
			<-sem
			if err != nil {
				t.Error(err)
				return
			}
			go simNode(ctx, c, w, st, &running, &lastRunning)
		}()
	}
	wg.Wait()
	k := mustClient(t, cl)
	waitUntil(t, 60*time.Second+time.Duration(n)*50*time.Millisecond, fmt.Sprintf("%d EdgeNodes", n), func() bool {
		var list eddyv1alpha1.EdgeNodeList
		return k.List(ctx, &list) == nil && len(list.Items) == n
	})
	register := time.Since(start)

	cpu0, writes0 := cpuTime(t, pid), apiWrites(t, metricsPort)
	stopProfiles := profile(t, n, pprofPort)
	defer stopProfiles()
	t0 := time.Now()
	go func() {
		// Progress, to see the shape of a slow run (a stall or a rate).
		for range time.Tick(5 * time.Second) {
			if ctx.Err() != nil {
				return
			}
			t.Logf("%s after apply: %d of %d nodes running", time.Since(t0).Round(time.Second), running.Load(), n)
		}
	}()
	cl.MustKubectl(t, scalePipeline, "apply", "-f", "-")
	deadline := 20*time.Second + time.Duration(n)*5*time.Millisecond
	waitUntil(t, deadline, "every node reports Running", func() bool {
		return running.Load() == int64(n)
	})
	t.Logf("%d nodes running", running.Load())
	edges := time.Unix(0, lastRunning.Load()).Sub(t0)
	stopProfiles()
	waitUntil(t, deadline, "status N/N", func() bool {
		var p eddyv1alpha1.Pipeline
		if err := k.Get(ctx, types.NamespacedName{Namespace: "default", Name: "fleetwide"}, &p); err != nil {
			return false
		}
		return p.Status.NodesRunning == int32(n)
	})
	status := time.Since(t0)
	cpu, writes := cpuTime(t, pid)-cpu0, apiWrites(t, metricsPort)-writes0
	fmt.Printf("| %d | %d | %.1f s | %.2f s | %.2f s | %.2f s | %d MiB | %.1f | %s |\n", n, scaleShards(t), register.Seconds(), edges.Seconds(),
		status.Seconds(), cpu.Seconds(), peakRSS(t, pid)>>20, float64(writes)/status.Seconds(), strings.Join(strings.Fields(string(load))[:3], " "))
}

// simNode applies its plans as an edge would: every new value is reported
// Running with its generation.
func simNode(ctx context.Context, c *fleet.Client, w jetstream.KeyWatcher, st *fleet.NodeStatus, running, last *atomic.Int64) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ent, ok := <-w.Updates():
			if !ok {
				return
			}
			if ent == nil || ent.Operation() != jetstream.KeyValuePut {
				continue
			}
			env, err := fleet.DecodeEnvelope(ent.Key(), ent.Value())
			if err != nil {
				continue
			}
			first := len(st.Objects) == 0
			st.Objects = []fleet.ObjectStatus{{Key: ent.Key(), Kind: env.Kind, Namespace: env.Namespace, Name: env.Name,
				Generation: env.Generation, Hash: env.Hash, Revision: ent.Revision(), State: fleet.StateRunning,
				Pipeline: &fleet.PipelineCounters{}}}
			st.ReportedAt = time.Now()
			// Retry like an edge does: the report must get through.
			for c.PutNodeStatus(ctx, st) != nil {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			if first {
				running.Add(1)
				last.Store(time.Now().UnixNano())
			}
		}
	}
}

// profile, when EDDY_SCALE_PROFILE names a directory, records CPU
// profiles from now until the returned function is called: of this test
// process (the hub and the simulated nodes) and of the controller (through
// its --pprof-addr), as <dir>/<n>-hub.pprof and <dir>/<n>-controller.pprof.
func profile(t *testing.T, n, pprofPort int) func() {
	dir := os.Getenv("EDDY_SCALE_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d-hub.pprof", n)))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		// The controller's profile covers a fixed window; 30s is longer
		// than any run that meets its target.
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=30", pprofPort))
		if err != nil {
			t.Logf("controller profile: %v", err)
			return
		}
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d-controller.pprof", n)), []byte(body), 0o644)
	}()
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
			t.Logf("profiled %s; waiting for the controller's 30s profile", time.Since(started).Round(time.Millisecond))
			<-done
		})
	}
}

// scaleShards is how many buckets the hub splits the plans over:
// EDDY_SCALE_SHARDS, default 32 (docs/scale.md: one bucket's fan-out costs
// the hub O(nodes²)).
func scaleShards(t *testing.T) int {
	if v := os.Getenv("EDDY_SCALE_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDDY_SCALE_SHARDS=%q: want a positive number", v)
		}
		return n
	}
	return 32
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustClient(t *testing.T, cl *k8stest.Cluster) client.Client {
	c, err := client.New(cl.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cpuTime is the process's user+system CPU time (/proc/PID/stat, clock ticks of 10ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// peakRSS is VmHWM of the process.
func peakRSS(t *testing.T, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// apiWrites sums the controller's non-GET requests to the API server
// (controller-runtime's rest_client_requests_total).
func apiWrites(t *testing.T, port int) int64 {
	out, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "rest_client_requests_total{") || strings.Contains(line, `method="GET"`) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += int64(v)
	}
	return total
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
