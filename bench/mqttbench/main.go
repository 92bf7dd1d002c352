// Command mqttbench measures whole-system MQTT throughput, latency and
// memory: the raw embedded broker (mochi, no WAL) against `eddy run` with an
// ingest -> filter -> MQTT-out pipeline, at QoS 0 and at durable QoS 1. It
// prints a Markdown table. `make bench` runs it; see docs/benchmarks.md.
//
// Every run only talks to 127.0.0.1 and is bounded in messages and time.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/runner/broker"
)

func main() {
	eddy := flag.String("eddy", "bin/eddy", "path to the eddy binary")
	n := flag.Int("n", 200000, "messages per throughput run")
	pubs := flag.Int("publishers", 16, "concurrent publishers")
	rate := flag.Int("rate", 10000, "messages per second for the latency run")
	latencyFor := flag.Duration("latency-duration", 5*time.Second, "length of the latency run")
	cases := flag.String("cases", "raw,mosquitto,qos0,qos1,idle,filter,window,shared",
		"comma-separated runs: raw (plain broker, QoS 0 and 1), mosquitto (QoS 0 and 1 through mosquitto), qos0, qos1 (eddy, with the latency run), qos1-latency (the latency run alone); "+
			"targets at a fixed rate side by side with mosquitto: idle (RSS), filter, window (1000 devices, RSS after -settle), shared (-shared pipelines on one topic)")
	pprof := flag.Bool("pprof", false, "start eddy with --pprof and print its HTTP address (to take a profile during a run)")
	repeat := flag.Int("repeat", 1, "run raw/mosquitto/qos0/qos1 this many times (report ranges, not the best run)")
	to := targetOpts{}
	flag.IntVar(&to.rate, "target-rate", 25000, "messages/s of the filter and window target runs")
	flag.DurationVar(&to.dur, "target-duration", 20*time.Second, "length of each target run")
	flag.DurationVar(&to.settle, "settle", time.Minute, "after the window run, RSS is read again this much later")
	flag.IntVar(&to.shared, "shared", 300, "pipelines on one topic in the shared run")
	flag.IntVar(&to.sharedHz, "shared-rate", 500, "messages/s of the shared run")
	flag.StringVar(&eddyMemoryLimit, "memory-limit", "", "pass --memory-limit to eddy")
	flag.IntVar(&eddyCPUs, "cpus", 0, "pass --cpus to eddy (the cores it runs Go code on; 0: all)")
	flag.Parse()
	want := map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		want[strings.TrimSpace(c)] = true
	}
	eddyPprof = *pprof
	fmt.Printf("mqttbench started %s, load %s", time.Now().UTC().Format(time.RFC3339), mustRead("/proc/loadavg"))
	for i := range *repeat {
		if *repeat > 1 {
			fmt.Printf("\n## run %d of %d\n", i+1, *repeat)
		}
		if err := run(*eddy, *n, *pubs, *rate, *latencyFor, want); err != nil {
			fmt.Fprintln(os.Stderr, "mqttbench:", err)
			os.Exit(1)
		}
	}
	to.eddyBin = *eddy
	if want["idle"] || want["filter"] || want["window"] || want["shared"] {
		if err := runTargets(to, want); err != nil {
			fmt.Fprintln(os.Stderr, "mqttbench:", err)
			os.Exit(1)
		}
	}
}

type result struct {
	name     string
	sent     int
	received int
	dur      time.Duration
	p50, p99 time.Duration
}

func (r result) rate() float64 { return float64(r.received) / r.dur.Seconds() }

// eddyPprof makes startEddy pass --pprof (set from the -pprof flag).
var eddyPprof bool

// eddyMemoryLimit is passed to eddy as --memory-limit when set.
var eddyMemoryLimit string

// eddyCPUs is passed to eddy as --cpus when set.
var eddyCPUs int

func run(eddyBin string, n, pubs, rate int, latencyFor time.Duration, want map[string]bool) error {
	var rows []result
	// Raw broker, in this process, no WAL.
	for _, qos := range []byte{0, 1} {
		if !want["raw"] {
			break
		}
		b, err := broker.New(broker.Options{Addr: "127.0.0.1:0", AllowAnonymous: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		if err := b.Start(context.Background()); err != nil {
			return err
		}
		port := b.Addr().(*net.TCPAddr).Port
		r, err := throughput(fmt.Sprintf("raw mochi broker, QoS %d (pub->sub)", qos), port, "bench/in", "bench/in", qos, n, pubs)
		b.Close()
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	// mosquitto with its defaults, same clients.
	for _, qos := range []byte{0, 1} {
		if !want["mosquitto"] {
			break
		}
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		r, err := throughput(fmt.Sprintf("mosquitto 2.0, QoS %d (pub->sub)", qos), m.port, "bench/in", "bench/in", qos, n, pubs)
		m.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	// Eddy: ingest -> WAL -> filter -> MQTT out.
	var idleRSS, peakRSS int64
	for _, qos := range []byte{0, 1} {
		// qos1-latency: only the latency run, on a fresh eddy (no
		// throughput run before it to warm it up or size its cores).
		latencyOnly := qos == 1 && want["qos1-latency"] && !want["qos1"]
		if !want[fmt.Sprintf("qos%d", qos)] && !latencyOnly {
			continue
		}
		e, err := startEddy(eddyBin)
		if err != nil {
			return err
		}
		if idleRSS == 0 {
			idleRSS = e.rss("VmRSS")
		}
		label := "eddy ingest->filter->MQTT out, QoS 0"
		if qos == 1 {
			label = "eddy ingest->filter->MQTT out, QoS 1 durable (fsync before PUBACK)"
		}
		var r result
		if !latencyOnly {
			r, err = throughput(label, e.port, "bench/in", "out/bench", qos, n, pubs)
		}
		if err == nil {
			var lr result
			name := fmt.Sprintf("eddy latency at %d msg/s, QoS 0", rate)
			if qos == 1 {
				name = fmt.Sprintf("eddy latency at %d msg/s, QoS 1 durable", rate)
			}
			lr, err = latency(name, e.port, qos, rate, latencyFor)
			rows = append(rows, lr)
		}
		peakRSS = max(peakRSS, e.rss("VmHWM"))
		e.stop()
		if err != nil {
			return err
		}
		if !latencyOnly {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].p50 == 0 && rows[j].p50 != 0 })
	host, _ := os.Hostname()
	fmt.Printf("\n### MQTT end to end (%s, %d cores, %s)\n\n", host, numCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| run | sent | received | loss | msg/s | p50 | p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		lat50, lat99 := "", ""
		if r.p50 > 0 {
			lat50, lat99 = r.p50.Round(time.Microsecond).String(), r.p99.Round(time.Microsecond).String()
		}
		fmt.Printf("| %s | %d | %d | %d | %.0f | %s | %s |\n", r.name, r.sent, r.received, r.sent-r.received, r.rate(), lat50, lat99)
	}
	fmt.Printf("\n| memory | MiB |\n|---|---:|\n| eddy idle RSS (broker, WAL, 1 pipeline, HTTP) | %.1f |\n| eddy peak RSS (VmHWM) | %.1f |\n",
		float64(idleRSS)/1024, float64(peakRSS)/1024)
	byName := map[string]result{}
	for _, r := range rows {
		byName[r.name] = r
	}
	ratio := func(label, a, b string) {
		if ra, ok := byName[a]; ok {
			if rb, ok := byName[b]; ok && rb.rate() > 0 {
				fmt.Printf("%s = %.2f\n", label, ra.rate()/rb.rate())
			}
		}
	}
	fmt.Println()
	ratio("Eddy QoS 0 / raw QoS 0", "eddy ingest->filter->MQTT out, QoS 0", "raw mochi broker, QoS 0 (pub->sub)")
	ratio("Eddy durable QoS 1 / mosquitto QoS 1 (received)", "eddy ingest->filter->MQTT out, QoS 1 durable (fsync before PUBACK)", "mosquitto 2.0, QoS 1 (pub->sub)")
	fmt.Printf("load at the end: %s", mustRead("/proc/loadavg"))
	return nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

type eddyProc struct {
	cmd  *exec.Cmd
	port int
	dir  string
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// filterSpec is the pipeline of the throughput and latency runs.
const filterSpec = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bench}
spec:
  source: {mqtt: {topic: "bench/in"}}
  steps:
    - filter: "n >= 0"
  sinks:
    - mqtt: {topic: "out/bench"}
`

func startEddy(bin string) (*eddyProc, error) { return startEddyWith(bin, filterSpec) }

// startEddyWith starts `eddy run` on spec (YAML, one or more pipelines)
// with its WAL in a temporary directory, plus -memory-limit if given.
func startEddyWith(bin, specYAML string) (*eddyProc, error) {
	dir, err := os.MkdirTemp("", "eddy-bench")
	if err != nil {
		return nil, err
	}
	spec := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(spec, []byte(specYAML), 0o644); err != nil {
		return nil, err
	}
	e := &eddyProc{port: freePort(), dir: dir}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	args := []string{"run", "--log-level", "warn", "--data-dir", filepath.Join(dir, "data"),
		"--mqtt-addr", fmt.Sprintf("127.0.0.1:%d", e.port), "--http-addr", httpAddr}
	if eddyMemoryLimit != "" {
		args = append(args, "--memory-limit", eddyMemoryLimit)
	}
	if eddyCPUs > 0 {
		args = append(args, "--cpus", strconv.Itoa(eddyCPUs))
	}
	if eddyPprof {
		args = append(args, "--pprof")
		fmt.Fprintf(os.Stderr, "mqttbench: eddy profiler at http://%s/debug/pprof/\n", httpAddr)
	}
	e.cmd = exec.Command(bin, append(args, spec)...)
	e.cmd.Stderr = os.Stderr
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("eddy did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the pipeline start and settle before measuring idle RSS
	return e, nil
}

// rss reads a memory figure (kB) of the process from /proc.
func (e *eddyProc) rss(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func (e *eddyProc) stop() {
	e.cmd.Process.Signal(os.Interrupt)
	e.cmd.Wait()
	os.RemoveAll(e.dir)
}

func client(port int, id string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).SetClientID(id).
		SetWriteTimeout(30 * time.Second))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect: %v", t.Error())
	}
	return c, nil
}

// throughput publishes n messages from pubs publishers (at most 64 in
// flight each) and counts what one subscriber on subTopic receives.
func throughput(name string, port int, pubTopic, subTopic string, qos byte, n, pubs int) (result, error) {
	var got, lastAt atomic.Int64
	done := make(chan struct{})
	sub, err := client(port, "bench-sub")
	if err != nil {
		return result{}, err
	}
	defer sub.Disconnect(0)
	var once sync.Once
	if t := sub.Subscribe(subTopic, qos, func(_ paho.Client, m paho.Message) {
		lastAt.Store(time.Now().UnixNano())
		if got.Add(1) == int64(n) {
			once.Do(func() { close(done) })
		}
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return result{}, fmt.Errorf("subscribe: %v", t.Error())
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			c, err := client(port, fmt.Sprintf("bench-pub-%d", p))
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(100)
			inflight := make(chan paho.Token, 64)
			acked := make(chan struct{})
			go func() {
				defer close(acked)
				for t := range inflight {
					t.WaitTimeout(30 * time.Second)
				}
			}()
			for i := p; i < n; i += pubs {
				inflight <- c.Publish(pubTopic, qos, false, fmt.Sprintf(`{"n":%d}`, i))
			}
			close(inflight)
			<-acked // disconnecting earlier would drop what paho still queues
		}(p)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return result{}, err
	default:
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	// Anything still arriving after the last message is counted until
	// the stream has been quiet for a moment.
	for last := got.Load(); ; {
		time.Sleep(200 * time.Millisecond)
		if cur := got.Load(); cur == last {
			break
		} else {
			last = cur
		}
	}
	// The run ends with the last message received, not with the quiet
	// period above.
	end := time.Unix(0, lastAt.Load())
	if lastAt.Load() == 0 {
		end = time.Now()
	}
	return result{name: name, sent: n, received: int(got.Load()), dur: end.Sub(start)}, nil
}

// latency publishes at a fixed rate for d and measures publish-to-output
// time from a send timestamp carried in the payload.
func latency(name string, port int, qos byte, rate int, d time.Duration) (result, error) {
	sub, err := client(port, "lat-sub")
	if err != nil {
		return result{}, err
	}
	defer sub.Disconnect(0)
	var mu sync.Mutex
	var lats []time.Duration
	if t := sub.Subscribe("out/bench", qos, func(_ paho.Client, m paho.Message) {
		p := string(m.Payload())
		i := strings.Index(p, `"t":`)
		if i < 0 {
			return
		}
		ns, _ := strconv.ParseInt(strings.TrimRight(p[i+4:], "}"), 10, 64)
		mu.Lock()
		lats = append(lats, time.Duration(time.Now().UnixNano()-ns))
		mu.Unlock()
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return result{}, fmt.Errorf("subscribe: %v", t.Error())
	}
	// Several publishers so that durable group commit can batch fsyncs.
	const pubs = 8
	per := time.Duration(float64(time.Second) * pubs / float64(rate))
	total := int(d.Seconds() * float64(rate))
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			c, err := client(port, fmt.Sprintf("lat-pub-%d", p))
			if err != nil {
				return
			}
			defer c.Disconnect(100)
			tick := time.NewTicker(per)
			defer tick.Stop()
			var last paho.Token
			for i := p; i < total; i += pubs {
				<-tick.C
				last = c.Publish("bench/in", qos, false, fmt.Sprintf(`{"n":%d,"t":%d}`, i, time.Now().UnixNano()))
			}
			if last != nil {
				last.WaitTimeout(30 * time.Second)
			}
		}(p)
	}
	wg.Wait()
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(lats) == 0 {
		return result{}, fmt.Errorf("latency run received nothing")
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return result{name: name, sent: total, received: len(lats), dur: d,
		p50: lats[len(lats)/2], p99: lats[len(lats)*99/100]}, nil
}

func mustRead(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
