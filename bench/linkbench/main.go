// Command linkbench measures the cloud–edge link on this machine and prints
// a Markdown table (make bench runs it): uplink throughput from the WAL to
// the hub's stream, with a plain JetStream publisher as the peer in the same
// run; catch-up time of a 100k-record backlog after the hub comes back;
// plan fan-out to 1,000 simulated nodes; edge RSS with and without the
// link. Everything runs on 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/wal"
)

func main() {
	records := flag.Int("records", 200_000, "records for the uplink throughput run")
	backlog := flag.Int("backlog", 100_000, "records in the catch-up backlog")
	nodes := flag.Int("nodes", 1000, "simulated nodes for the fan-out run")
	eddyBin := flag.String("eddy", "bin/eddy", "eddy binary for the RSS run (skipped if missing)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the uplink run to this file")
	flag.Parse()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n### Cloud–edge link (bench/linkbench), load %s\n", strings.TrimSpace(string(load)))
	fmt.Println("| measurement | result | peer in the same run | target |")
	fmt.Println("|---|---:|---:|---|")
	dir, err := os.MkdirTemp("", "linkbench")
	check(err)
	defer os.RemoveAll(dir)

	h := startHub(dir, freeAddr(), freeAddr())
	edge := startEdge(filepath.Join(dir, "edge"), h.leaf)
	waitFor("edge connected", 20*time.Second, func() bool { return edge.Link().State == "connected" })

	// Uplink throughput: records appended as fast as the WAL takes them,
	// forwarded while they arrive.
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
	}
	start := time.Now()
	appendRecords(edge, *records, "bench.rate")
	waitFor("uplink", 120*time.Second, func() bool { return edge.Link().Forwarded >= uint64(*records) })
	uplink := time.Since(start)
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	peer := peerPublish(h.client, *records)
	fmt.Printf("| uplink WAL → hub stream, %d records | %.0f rec/s | plain JetStream PublishAsync client: %.0f msg/s (ratio %.2f) | ≥ 50k rec/s |\n",
		*records, float64(*records)/uplink.Seconds(), float64(*records)/peer.Seconds(), peer.Seconds()/uplink.Seconds())

	// Catch-up: the hub goes away, a backlog builds, the hub comes back.
	h.h.Close()
	waitFor("edge disconnected", 20*time.Second, func() bool { return edge.Link().State == "disconnected" })
	before := edge.Link().Forwarded
	appendRecords(edge, *backlog, "bench.backlog")
	h = restartHub(h)
	reachable := time.Now()
	waitFor("catch-up", 120*time.Second, func() bool { return edge.Link().Forwarded >= before+uint64(*backlog) })
	catchUp := time.Since(reachable)
	fmt.Printf("| catch-up of a %d-record backlog | last record acked %.2f s after the hub is reachable | leaf reconnect interval 500 ms | ≤ 5 s |\n",
		*backlog, catchUp.Seconds())
	edge.Close()

	// Plan fan-out to simulated nodes.
	fan, stored := fanOut(h.client, *nodes)
	fmt.Printf("| plan fan-out to %d simulated nodes | all reported %.2f s after the first put | puts stored after %.2f s | ≤ 2 s |\n",
		*nodes, fan.Seconds(), stored.Seconds())

	// RSS of an idle edge with and without the link.
	if _, err := os.Stat(*eddyBin); err == nil {
		without := edgeRSS(*eddyBin, filepath.Join(dir, "rss1"), "")
		with := edgeRSS(*eddyBin, filepath.Join(dir, "rss2"), h.leaf)
		fmt.Printf("| idle `eddy edge` RSS with the link (leaf embedded, connected) | %.1f MiB | without a link: %.1f MiB (+%.1f MiB) | |\n",
			with, without, with-without)
	}
	h.h.Close()
}

type testHub struct {
	h            *hub.Hub
	client, leaf string
	dir          string
}

func startHub(dir, client, leaf string) *testHub {
	h, err := hub.New(hub.Config{ClientAddr: client, LeafAddr: leaf, DataDir: filepath.Join(dir, "hub")})
	check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check(h.Start(ctx))
	return &testHub{h: h, client: client, leaf: leaf, dir: dir}
}

func restartHub(h *testHub) *testHub { return startHub(h.dir, h.client, h.leaf) }

func startEdge(dir, leaf string) *runner.Runner {
	r, err := runner.New(runner.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPAddr: "-", AllowAnonymous: true, Node: "bench-edge",
		Link: link.Config{Hub: []string{"nats-leaf://" + leaf}, LocalAddr: "-"}})
	check(err)
	check(r.Start(context.Background()))
	return r
}

// appendRecords writes n records bound for the hub in batches of 1000.
func appendRecords(r *runner.Runner, n int, subject string) {
	payload := []byte(`{"device":"d-1","temperature":21.5,"humidity":40}`)
	batch := make([]*wal.Record, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, &wal.Record{Topic: link.UpTopicPrefix + subject, Payload: payload, Time: time.Now().UnixNano()})
		if len(batch) == cap(batch) || i == n-1 {
			check(r.Log().AppendWith(context.Background(), wal.Buffered, batch...))
			batch = batch[:0]
		}
	}
}

// peerPublish publishes n messages with message ids straight to the hub's
// stream from a client over TCP, 4096 in flight: what the outbox does,
// without the WAL and the leaf.
func peerPublish(addr string, n int) time.Duration {
	nc, err := nats.Connect("nats://" + addr)
	check(err)
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, fleet.DefaultDomain, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	check(err)
	payload := []byte(`{"device":"d-1","temperature":21.5,"humidity":40}`)
	start := time.Now()
	for i := 0; i < n; i++ {
		msg := nats.NewMsg("eddy.up.peer.bench")
		msg.Data = payload
		msg.Header.Set(jetstream.MsgIDHeader, "peer-"+strconv.Itoa(i))
		for {
			_, err := js.PublishMsgAsync(msg)
			if err == nil {
				break
			}
			// Stalled at 4096 in flight: wait for acks and resend.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		log.Fatal("peer publisher: acks did not complete")
	}
	return time.Since(start)
}

// fanOut simulates n nodes (20 per connection), each watching its keys and
// writing a status record when it sees a plan; then writes one plan per
// node and measures until every node's report is stored.
func fanOut(addr string, n int) (all, stored time.Duration) {
	obj := mustPipeline()
	var reported atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready sync.WaitGroup
	for c := 0; c < (n+19)/20; c++ {
		nc, err := nats.Connect("nats://" + addr)
		check(err)
		defer nc.Close()
		cl, err := fleet.NewClient(nc, fleet.Options{})
		check(err)
		for i := c * 20; i < min(n, (c+1)*20); i++ {
			node := fmt.Sprintf("sim-%04d", i)
			w, err := cl.WatchPlans(ctx, node)
			check(err)
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer w.Stop()
				initial := true
				for ent := range w.Updates() {
					if ent == nil {
						if initial {
							ready.Done()
							initial = false
						}
						continue
					}
					env, err := fleet.DecodeEnvelope(ent.Key(), ent.Value())
					if err != nil {
						log.Fatalf("%s: %v", node, err)
					}
					st := &fleet.NodeStatus{Node: node, ReportedAt: time.Now(), Objects: []fleet.ObjectStatus{{
						Key: ent.Key(), Kind: env.Kind, Namespace: env.Namespace, Name: env.Name,
						Generation: env.Generation, Hash: env.Hash, State: fleet.StateRunning}}}
					if err := cl.PutNodeStatus(ctx, st); err != nil {
						if ctx.Err() != nil {
							return
						}
						log.Fatalf("%s: status: %v", node, err)
					}
					reported.Add(1)
				}
			}()
		}
	}
	ready.Wait()
	nc, err := nats.Connect("nats://" + addr)
	check(err)
	defer nc.Close()
	admin, err := fleet.NewClient(nc, fleet.Options{Writer: "linkbench"})
	check(err)
	start := time.Now()
	var puts sync.WaitGroup
	next := atomic.Int64{}
	for g := 0; g < 16; g++ {
		puts.Add(1)
		go func() {
			defer puts.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				_, err := admin.Put(ctx, obj.Envelope(fmt.Sprintf("sim-%04d", i), "", time.Now()))
				check(err)
			}
		}()
	}
	puts.Wait()
	stored = time.Since(start)
	waitFor("every node reports", 60*time.Second, func() bool { return reported.Load() >= int64(n) })
	all = time.Since(start)
	cancel()
	return all, stored
}

func mustPipeline() fleet.Object {
	objs, err := fleet.Load("bench.yaml", []byte(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  key: device
  steps:
    - window: {tumbling: 10s}
    - aggregate: {avg_t: "avg(temperature)"}
    - alert: {when: "avg_t > 30", severity: critical}
  sinks:
    - mqtt: {topic: "alerts/{{key}}", qos: 1}
`))
	check(err)
	return objs[0]
}

// edgeRSS starts `eddy edge` (with a link when leaf is set), waits 3 s
// idle and returns its RSS in MiB.
func edgeRSS(bin, dir, leaf string) float64 {
	check(os.MkdirAll(dir, 0o755))
	cfg := fmt.Sprintf("dataDir: %s\nmqttAddr: %s\nhttpAddr: \"-\"\nallowAnonymous: true\nnode: rss-edge\n", filepath.Join(dir, "data"), freeAddr())
	if leaf != "" {
		cfg += fmt.Sprintf("link:\n  hub: [nats-leaf://%s]\n  localAddr: %s\n", leaf, freeAddr())
	}
	path := filepath.Join(dir, "edge.yaml")
	check(os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command(bin, "edge", "--config", path)
	check(cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(3 * time.Second)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(what string, d time.Duration, cond func() bool) {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			log.Fatalf("linkbench: timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal("linkbench: ", err)
	}
}
