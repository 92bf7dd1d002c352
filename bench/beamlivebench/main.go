// Command beamlivebench measures live Beam jobs (pipeline/beam, ?live=true)
// on prism against a real embedded hub, each with a peer in the same run:
//
//   - throughput: N readings already in the hub's up stream, read by a
//     live job until every window result is out, and by a replay (the
//     bounded hub input) of the same stream on prism;
//
//   - window close under continuous traffic: readings published every few
//     milliseconds stamped with the wall clock, 1-second tumbling windows;
//     for each window result, how long after the window's end it appeared.
//     The peer is Beam's own natsio.Read (publishing-time policy) with the
//     same windows: its watermark advances only on an empty fetch.
//
//     go run ./bench/beamlivebench -n 100000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/natsio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

const spec = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: live}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  idleTimeout: %s
  steps:
    - window: {tumbling: %s}
    - aggregate: {n: count(), avg_t: avg(temperature)}
  sinks:
    - file: {path: out.jsonl}
`

func main() {
	n := flag.Int("n", 100000, "readings for the throughput runs")
	traffic := flag.Duration("traffic", 10*time.Second, "how long the continuous traffic runs")
	every := flag.Duration("every", 2*time.Millisecond, "interval between readings of the continuous traffic")
	flag.Parse()
	beam.Init()
	if err := run(*n, *traffic, *every); err != nil {
		fmt.Fprintln(os.Stderr, "beamlivebench:", err)
		os.Exit(1)
	}
}

func run(n int, traffic, every time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "beamlivebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "hub")})
	if err != nil {
		return err
	}
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Close()
	nc, err := nats.Connect(h.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		return err
	}

	fmt.Printf("### Live Beam jobs on prism (hub on loopback; load before: %s)\n\n", loadavg())
	// Throughput: n readings of 4 devices, 10 ms apart in event time.
	base := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		t := base.Add(time.Duration(i) * 10 * time.Millisecond)
		if _, err := js.PublishMsgAsync(reading("eddy.up.edge-1.readings", i%4, t, i%40)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return fmt.Errorf("publishing %d readings: no acks within a minute", n)
	}
	url := h.ClientURL() + "/eddy_up?subject=eddy.up.edge-1.>&domain=hub"
	plan, err := load(fmt.Sprintf(spec, "1s", "10s"))
	if err != nil {
		return err
	}
	replayOut := filepath.Join(dir, "replay")
	start := time.Now()
	bp, err := eddybeam.Translate(plan, eddybeam.Options{Input: url, OutputDir: replayOut})
	if err != nil {
		return err
	}
	if _, err := prism.Execute(ctx, bp); err != nil {
		return err
	}
	replay := time.Since(start)
	want := countLines(filepath.Join(replayOut, "out.jsonl"))
	if want == 0 {
		return fmt.Errorf("the replay wrote no window results")
	}

	liveOut := filepath.Join(dir, "live")
	bp, err = eddybeam.Translate(plan, eddybeam.Options{Input: url + "&live=true", OutputDir: liveOut})
	if err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	start = time.Now()
	go prism.Execute(lctx, bp)
	var live time.Duration
	for deadline := start.Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if countLines(filepath.Join(liveOut, "out.jsonl")) >= want {
			live = time.Since(start)
			break
		}
	}
	cancel()
	if live == 0 {
		return fmt.Errorf("the live job wrote %d of %d window results in 10 minutes", countLines(filepath.Join(liveOut, "out.jsonl")), want)
	}
	fmt.Println("| run | readings | window results | wall time | readings/s |")
	fmt.Println("|---|---:|---:|---:|---:|")
	fmt.Printf("| replay of the stream (bounded hub input) | %d | %d | %.2f s | %.0f |\n", n, want, replay.Seconds(), float64(n)/replay.Seconds())
	fmt.Printf("| live job, until the last window is out (idle timeout 1 s) | %d | %d | %.2f s | %.0f |\n", n, want, live.Seconds(), float64(n)/live.Seconds())
	fmt.Println()

	// Window close under continuous traffic.
	if err := js.DeleteStream(ctx, "eddy_up"); err != nil {
		return err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "traffic", Subjects: []string{"traffic.>"}}); err != nil {
		return err
	}
	plan, err = load(fmt.Sprintf(spec, "1h", "1s"))
	if err != nil {
		return err
	}
	trafficOut := filepath.Join(dir, "traffic")
	bp, err = eddybeam.Translate(plan, eddybeam.Options{Input: h.ClientURL() + "/traffic?domain=hub&live=true", OutputDir: trafficOut})
	if err != nil {
		return err
	}
	peerOut := filepath.Join(dir, "natsio.jsonl")
	peer := natsioPipeline(h.ClientURL(), peerOut)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go prism.Execute(tctx, bp)
	go prism.Execute(tctx, peer)
	seen := map[string]time.Duration{} // window end -> lag
	peerSeen := map[string]time.Duration{}
	var lagMu sync.Mutex
	pollDone := make(chan struct{})
	stopPoll := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(20 * time.Millisecond):
			}
			now := time.Now()
			lagMu.Lock()
			windowLags(filepath.Join(trafficOut, "out.jsonl"), "window_end", now, seen)
			windowLags(peerOut, "end", now, peerSeen)
			lagMu.Unlock()
		}
	}()
	begin := time.Now()
	i := 0
	for time.Since(begin) < traffic {
		t := time.Now()
		if _, err := js.PublishMsgAsync(reading("traffic.edge-1.readings", i%4, t, i%40)); err != nil {
			return err
		}
		i++
		time.Sleep(every)
	}
	trafficEnd := time.Since(begin)
	time.Sleep(2 * time.Second) // results of the last windows, for the live job
	close(stopPoll)
	<-pollDone
	lagMu.Lock()
	defer lagMu.Unlock()
	fmt.Printf("Continuous traffic: %d readings in %.1f s (every %v, event time = wall clock), 1 s tumbling windows, 4 keys; load after: %s\n\n", i, trafficEnd.Seconds(), every, loadavg())
	fmt.Println("| reader | window results during the traffic | lag after window end p50 | max |")
	fmt.Println("|---|---:|---:|---:|")
	for _, r := range []struct {
		name string
		m    map[string]time.Duration
	}{{"eddy live reader (manual watermark on event time)", seen}, {"Beam natsio.Read (publishing-time policy)", peerSeen}} {
		var lags []time.Duration
		for _, l := range r.m {
			lags = append(lags, l)
		}
		slices.Sort(lags)
		if len(lags) == 0 {
			fmt.Printf("| %s | 0 | - | - |\n", r.name)
			continue
		}
		fmt.Printf("| %s | %d | %d ms | %d ms |\n", r.name, len(lags), lags[len(lags)/2].Milliseconds(), lags[len(lags)-1].Milliseconds())
	}
	return nil
}

// reading is a message as an edge's outbox forwards it.
func reading(subject string, dev int, t time.Time, v int) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(fmt.Sprintf(`{"device":"m%d","ts":%d,"temperature":%d}`, dev, t.UnixMilli(), 20+v))
	m.Header.Set("Eddy-Topic", fmt.Sprintf("factory/m%d/data", dev))
	m.Header.Set("Eddy-Time", strconv.FormatInt(t.UnixNano(), 10))
	return m
}

func load(y string) (*pipeline.Plan, error) {
	plans, err := pipeline.Load("live.yaml", []byte(y))
	if err != nil {
		return nil, err
	}
	return plans[0], nil
}

func countLines(path string) int {
	files, _ := filepath.Glob(path + "*")
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

// windowLags records, for each window end (field, unix ms) not seen yet in
// the file, how long after the end it was first seen.
func windowLags(path, field string, now time.Time, seen map[string]time.Duration) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		end, ok := m[field].(float64)
		if !ok {
			continue
		}
		k := strconv.FormatFloat(end, 'f', 0, 64) + "/" + fmt.Sprint(m["key"])
		if _, ok := seen[k]; !ok {
			seen[k] = now.Sub(time.UnixMilli(int64(end)))
		}
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// natsioPipeline counts readings per 1 s window with Beam's natsio.Read
// (publishing time as element timestamp) and appends {"end":ms} lines.
func natsioPipeline(url, out string) *beam.Pipeline {
	p, s := beam.NewPipelineWithRoot()
	msgs := natsio.Read(s, url, "traffic", "traffic.>", natsio.ReadPublishingTimePolicy())
	w := beam.WindowInto(s, window.NewFixedWindows(time.Second), msgs)
	counts := stats.Count(s, beam.ParDo(s, one, w))
	beam.ParDo0(s, &appendFn{Path: out}, counts)
	return p
}

func one(natsio.ConsumerMessage) int { return 1 }

type appendFn struct {
	Path string
	mu   sync.Mutex
}

func (f *appendFn) ProcessElement(w beam.Window, _ int, _ int) error {
	iw := w.(window.IntervalWindow)
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = fmt.Fprintf(fh, "{\"end\":%d,\"key\":\"all\"}\n", int64(iw.End))
	return err
}

func init() {
	beam.RegisterFunction(one)
	beam.RegisterType(reflect.TypeOf((*appendFn)(nil)).Elem())
}
