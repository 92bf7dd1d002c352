// Command beambench measures one pipeline over the same recorded events on
// the edge engine and on Beam (direct and prism): events per second and
// the peak RSS of each, every run in a process of its own. `make bench`
// prints its table (docs/benchmarks.md).
//
//	go run ./bench/beambench -n 1000000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/file"
	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/wal"
)

const spec = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  steps:
    - window: {tumbling: 10s, allowedLateness: 2s}
    - aggregate: {n: count(), avg_t: avg(temperature), max_t: max(temperature), p95: p95(temperature)}
    - alert: {when: "avg_t > 30", for: 20s}
  sinks:
    - file: {path: out.jsonl}
`

func main() {
	n := flag.Int("n", 1_000_000, "recorded events")
	devices := flag.Int("devices", 1000, "devices (keys)")
	mode := flag.String("mode", "", "internal: run one measurement (edge, direct, prism) in this process")
	input := flag.String("input", "", "internal: the recording")
	profile := flag.String("profile", "", "write CPU and allocation profiles of each run (cpu-MODE.pprof, allocs-MODE.pprof) to this directory")
	modes := flag.String("modes", "edge,direct,prism", "runners to measure, comma-separated")
	flag.Parse()
	beam.Init()
	if *mode != "" {
		if err := measure(*mode, *input, *profile); err != nil {
			fmt.Fprintln(os.Stderr, "beambench:", err)
			os.Exit(1)
		}
		return
	}
	dir, err := os.MkdirTemp("", "beambench")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in.jsonl")
	if err := record(in, *n, *devices); err != nil {
		panic(err)
	}
	fmt.Printf("### The same pipeline on the edge engine and on Beam (%d recorded events, %d keys, tumbling 10s + 4 aggregates + alert)\n\n", *n, *devices)
	fmt.Println("| runner | events/s | wall | peak RSS |")
	fmt.Println("|---|---:|---:|---:|")
	self, _ := os.Executable()
	if *profile != "" {
		if *profile, err = filepath.Abs(*profile); err != nil {
			panic(err)
		}
	}
	for _, m := range strings.Split(*modes, ",") {
		cmd := exec.Command(self, "-mode", m, "-input", in, "-profile", *profile)
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fmt.Printf("| %s | failed: %v | | |\n", m, err)
			continue
		}
		f := strings.Fields(string(out))
		secs, _ := strconv.ParseFloat(f[0], 64)
		fmt.Printf("| %s | %.0f | %.1f s | %s MiB |\n", m, float64(*n)/secs, secs, f[1])
	}
}

// record writes n readings of devices, one per device every 100 ms of
// event time, as `eddy export` would.
func record(path string, n, devices int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var b []byte
	for i := 0; i < n; i++ {
		d := i % devices
		ts := t0.Add(time.Duration(i/devices) * 100 * time.Millisecond)
		payload := fmt.Sprintf(`{"device":"d%d","temperature":%d.5,"ts":%d}`, d, 20+(i*7)%15, ts.UnixMilli())
		if b, err = walexport.Append(b[:0], walexport.Record{Offset: uint64(i + 1), Time: ts, Topic: fmt.Sprintf("factory/d%d/data", d), Payload: []byte(payload)}); err != nil {
			return err
		}
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// measure runs one mode and prints "seconds peakRSSMiB". With a profile
// directory it also writes the run's CPU profile and its allocations.
func measure(mode, input, profile string) error {
	plans, err := pipeline.Load("bench.yaml", []byte(spec))
	if err != nil {
		return err
	}
	if profile != "" {
		f, err := os.Create(filepath.Join(profile, "cpu-"+mode+".pprof"))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			if a, err := os.Create(filepath.Join(profile, "allocs-"+mode+".pprof")); err == nil {
				pprof.Lookup("allocs").WriteTo(a, 0)
				a.Close()
			}
		}()
	}
	start := time.Now()
	switch mode {
	case "edge":
		err = runEdge(plans[0], input)
	case "direct", "prism":
		var p *beam.Pipeline
		if p, err = eddybeam.Translate(plans[0], eddybeam.Options{Input: input, OutputDir: mode}); err != nil {
			return err
		}
		if mode == "direct" {
			_, err = direct.Execute(context.Background(), p)
		} else {
			_, err = prism.Execute(context.Background(), p)
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%f %s\n", time.Since(start).Seconds(), peakRSS())
	return nil
}

// runEdge appends the recording to a file WAL (not timed separately: an
// edge writes it as it arrives) and runs the engine over it until every
// window closed.
func runEdge(plan *pipeline.Plan, input string) error {
	ctx := context.Background()
	l, err := wal.Open(ctx, "edge-wal", wal.Options{Durability: wal.Buffered})
	if err != nil {
		return err
	}
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var last time.Time
	for sc.Scan() {
		r, err := walexport.Parse(sc.Bytes())
		if err != nil {
			return err
		}
		last = r.Time
		if err := l.AppendWith(ctx, wal.Async, &wal.Record{Topic: r.Topic, Payload: r.Payload, Time: r.Time.UnixNano()}); err != nil {
			return err
		}
	}
	f.Close()
	clk := clock.NewFake(last)
	reg := engine.NewRegistry()
	reg.RegisterSink("file", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		return file.Open(filepath.Join("edge", s.File.Path))
	})
	os.MkdirAll("edge", 0o755)
	eng, err := engine.New(engine.Options{Log: l, Checkpoints: checkpoint.NewMemoryStore(), Registry: reg, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		return err
	}
	if err := eng.Apply(ctx, plan); err != nil {
		return err
	}
	for {
		st, _ := eng.Status(plan.ID())
		if st.Cursor > l.Last() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for open := true; open; {
		clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
		st, _ := eng.Status(plan.ID())
		open = false
		for _, s := range st.Steps {
			open = open || (s.Kind == "window" && s.StateSize > 0)
		}
	}
	if err := eng.Close(); err != nil {
		return err
	}
	return l.Close()
}

// peakRSS returns this process's peak resident set (VmHWM) in MiB.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return strconv.Itoa(kb / 1024)
		}
	}
	return "?"
}
