package main

// The targets runs of issue 14 (memory and CPU), each side by side with
// mosquitto in the same invocation: the same publishers at the same fixed
// rate, the same subscriber, the broker process's CPU and memory read from
// /proc. Load and steal are printed with every row, because this machine
// is shared and a number without them means little.

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// targetOpts are the knobs of the targets runs.
type targetOpts struct {
	eddyBin  string
	rate     int           // messages/s of the filter and window runs
	dur      time.Duration // length of each steady run
	settle   time.Duration // how long after the window run RSS is read again
	shared   int           // pipelines on one topic in the shared run
	sharedHz int           // messages/s of the shared run
}

// targetRow is one measured run.
type targetRow struct {
	name, broker   string
	rate           int
	sent, received int64
	want           int64   // what received should be without loss
	cpu            float64 // % of one core, over the publishing period
	peakMiB        float64 // VmHWM
	peakAnonMiB    float64 // largest RssAnon sampled (heap, stacks: what eddy allocates)
	fileMiB        float64 // RssFile at the end (the binary's code and data mapped from its file)
	afterMiB       float64 // VmRSS settle after the load (0: not measured)
	load1, steal   float64
	// Window outputs: how long after the window's end each arrived.
	lagP50, lagP99, lagMax time.Duration
}

// reading is one device message: a dozen fields, of which the pipelines
// read one or two, as a real sensor payload would have.
func reading(i int, devices int) string {
	return fmt.Sprintf(`{"device":"dev-%04d","site":"plant-3","line":7,"temperature":%.2f,"humidity":40.2,`+
		`"pressure":1013.2,"battery":0.87,"rssi":-71,"firmware":"2.4.1","status":"ok","seq":%d,"ts":%d}`,
		i%devices, 15+rand.Float64()*20, i, time.Now().UnixMilli())
}

func runTargets(o targetOpts, want map[string]bool) error {
	var rows []targetRow
	var idleMiB, idleAnon, idleFile float64
	if want["idle"] {
		e, err := startEddy(o.eddyBin)
		if err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
		idleMiB = float64(e.rss("VmRSS")) / 1024
		idleAnon, idleFile = float64(e.rss("RssAnon"))/1024, float64(e.rss("RssFile"))/1024
		e.stop()
	}
	if want["filter"] {
		spec := `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: plausible}
spec:
  source: {mqtt: {topic: "bench/in"}}
  steps:
    - filter: "temperature != nil && temperature > -40 && temperature < 150"
  sinks:
    - mqtt: {topic: "out/bench"}
`
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		r, err := steady(o, "filter (forward all)", "mosquitto", m.port, m.pid(), "bench/in", "bench/in", 1000, false)
		m.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
		e, err := startEddyWith(o.eddyBin, spec)
		if err != nil {
			return err
		}
		r, err = steady(o, "filter (forward all)", "eddy", e.port, e.cmd.Process.Pid, "bench/in", "out/bench", 1000, false)
		e.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if want["window"] {
		spec := `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: per-device}
spec:
  source: {mqtt: {topic: "bench/in"}}
  key: device
  steps:
    - window: {tumbling: 1s}
    - aggregate: {avg_t: "avg(temperature)", max_t: "max(temperature)", n: "count()"}
  sinks:
    - mqtt: {topic: "out/win"}
`
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		r, err := steady(o, "1s window, 1000 devices", "mosquitto", m.port, m.pid(), "bench/in", "bench/in", 1000, false)
		m.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
		e, err := startEddyWith(o.eddyBin, spec)
		if err != nil {
			return err
		}
		r, err = steady(o, "1s window, 1000 devices", "eddy", e.port, e.cmd.Process.Pid, "bench/in", "out/win", 1000, true)
		if err == nil {
			time.Sleep(o.settle)
			r.afterMiB = float64(e.rss("VmRSS")) / 1024
		}
		e.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if want["shared"] {
		m, err := startMosquitto()
		if err != nil {
			return err
		}
		so := o
		so.rate = o.sharedHz
		r, err := steady(so, "1 topic, forward", "mosquitto", m.port, m.pid(), "bench/in", "bench/in", 1000, false)
		m.stop()
		if err != nil {
			return err
		}
		rows = append(rows, r)
		// The load: n pipelines, one in ten passing every event to
		// a sink; then the marginal cost: one pipeline, and the same with
		// n more that drop everything.
		for _, c := range []struct {
			name       string
			pass, drop int
		}{
			{fmt.Sprintf("%d filter pipelines (1 in 10 pass), 1 topic", o.shared), o.shared / 10, o.shared - o.shared/10},
			{"1 filter pipeline, 1 topic", 1, 0},
			{fmt.Sprintf("1 + %d dropping filter pipelines, 1 topic", o.shared), 1, o.shared},
		} {
			e, err := startEddyWith(o.eddyBin, sharedSpec(c.pass, c.drop))
			if err != nil {
				return err
			}
			r, err := steady(so, c.name, "eddy", e.port, e.cmd.Process.Pid, "bench/in", "out/#", 1000, false)
			e.stop()
			if err != nil {
				return err
			}
			r.want *= int64(c.pass)
			rows = append(rows, r)
		}
	}
	printTargets(rows, [3]float64{idleMiB, idleAnon, idleFile}, o)
	return nil
}

// sharedSpec is filter pipelines on one topic: pass of them forward every
// event to an MQTT sink of their own, drop of them drop everything.
func sharedSpec(pass, drop int) string {
	var b strings.Builder
	for i := range pass + drop {
		filter, sink := "temperature > 1000", fmt.Sprintf("out/p%d", i)
		if i < pass {
			filter = "temperature > -40"
		}
		fmt.Fprintf(&b, `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: p%d}
spec:
  source: {mqtt: {topic: "bench/in"}}
  steps:
    - filter: "%s"
  sinks:
    - mqtt: {topic: "%s"}
---
`, i, filter, sink)
	}
	return b.String()
}

// steady publishes o.rate messages/s at QoS 0 for o.dur from 8 publishers
// and counts what one subscriber gets on subTopic; pid's CPU is measured
// over the publishing period. With sumN the subscriber adds up the "n"
// field of each output (window counts) instead of counting messages.
func steady(o targetOpts, name, broker string, port, pid int, pubTopic, subTopic string, devices int, sumN bool) (targetRow, error) {
	row := targetRow{name: name, broker: broker, rate: o.rate}
	var got atomic.Int64
	var lagMu sync.Mutex
	var lags []time.Duration // window outputs: arrival − window_end
	sub, err := client(port, "target-sub")
	if err != nil {
		return row, err
	}
	defer sub.Disconnect(0)
	if t := sub.Subscribe(subTopic, 0, func(_ paho.Client, m paho.Message) {
		if !sumN {
			got.Add(1)
			return
		}
		p := string(m.Payload())
		if n, ok := jsonInt(p, "n"); ok {
			got.Add(n)
		}
		if end, ok := jsonInt(p, "window_end"); ok {
			lagMu.Lock()
			lags = append(lags, time.Since(time.UnixMilli(end)))
			lagMu.Unlock()
		}
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return row, fmt.Errorf("subscribe: %v", t.Error())
	}
	settle(pid)
	// Peak RSS of the load, not of start-up: "5" resets VmHWM.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	const pubs = 8
	var sent atomic.Int64
	cpu0 := cpuTicks(pid)
	steal0, total0 := stealTicks()
	start := time.Now()
	var peakAnon atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // RssAnon every 100ms: VmHWM mixes in the binary's file pages
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if a := procField(pid, "RssAnon"); a > peakAnon.Load() {
				peakAnon.Store(a)
			}
			select {
			case <-t.C:
			case <-stopSampling:
				return
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
		}
		<-sampled
	}()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := range pubs {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			c, err := client(port, fmt.Sprintf("target-pub-%d", p))
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(250)
			per := float64(o.rate) / pubs
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			done := 0
			for now := range tick.C {
				el := now.Sub(start)
				if el >= o.dur {
					break
				}
				for target := int(el.Seconds() * per); done < target; done++ {
					c.Publish(pubTopic, 0, false, reading(done*pubs+p, devices))
					sent.Add(1)
				}
			}
		}(p)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1 := cpuTicks(pid)
	steal1, total1 := stealTicks()
	select {
	case err := <-errs:
		return row, err
	default:
	}
	// Let the tail arrive (a window closes up to a second later).
	for last := got.Load(); ; {
		time.Sleep(1500 * time.Millisecond)
		if cur := got.Load(); cur == last {
			break
		} else {
			last = cur
		}
	}
	row.sent, row.received, row.want = sent.Load(), got.Load(), sent.Load()
	row.cpu = float64(cpu1-cpu0) / clkTck / elapsed.Seconds() * 100
	if total1 > total0 {
		row.steal = float64(steal1-steal0) / float64(total1-total0) * 100
	}
	close(stopSampling)
	<-sampled
	row.peakMiB = float64(procField(pid, "VmHWM")) / 1024
	row.peakAnonMiB = float64(peakAnon.Load()) / 1024
	row.fileMiB = float64(procField(pid, "RssFile")) / 1024
	row.load1 = load1()
	lagMu.Lock()
	if len(lags) > 0 {
		slices.Sort(lags)
		row.lagP50, row.lagP99, row.lagMax = lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1]
	}
	lagMu.Unlock()
	return row, nil
}

// jsonInt finds "key":<integer> in a flat JSON object.
func jsonInt(p, key string) (int64, bool) {
	i := strings.Index(p, `"`+key+`":`)
	if i < 0 {
		return 0, false
	}
	rest := p[i+len(key)+3:]
	end := strings.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(rest[:end], 10, 64)
	return n, err == nil
}

// clkTck is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clkTck = 100

// cpuTicks is the process's user + system time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

// stealTicks returns the machine's steal and total jiffies from /proc/stat.
func stealTicks() (steal, total int64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	for i, v := range strings.Fields(sc.Text())[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i == 7 {
			steal = n
		}
	}
	return steal, total
}

func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// procField reads a kB figure from /proc/<pid>/status.
func procField(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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

// mosquittoProc is a mosquitto broker on a random loopback port.
type mosquittoProc struct {
	cmd  *exec.Cmd
	port int
	dir  string
}

func (m *mosquittoProc) pid() int { return m.cmd.Process.Pid }

// startMosquitto starts Debian's mosquitto (installed by scripts/deps.sh)
// with its defaults, anonymous, on 127.0.0.1.
func startMosquitto() (*mosquittoProc, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("mosquitto not found: run scripts/deps.sh (apt-get install mosquitto)")
		}
	}
	dir, err := os.MkdirTemp("", "mosq-bench")
	if err != nil {
		return nil, err
	}
	m := &mosquittoProc{port: freePort(), dir: dir}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", m.port)), 0o644); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, "-c", conf)
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting mosquitto: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := client(m.port, "probe"); err == nil {
			c.Disconnect(0)
			return m, nil
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("mosquitto did not start on port %d", m.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *mosquittoProc) stop() {
	m.cmd.Process.Signal(os.Interrupt)
	m.cmd.Wait()
	os.RemoveAll(m.dir)
}

func printTargets(rows []targetRow, idle [3]float64, o targetOpts) {
	fmt.Printf("\n### Memory and CPU targets (QoS 0, %s per run, %d cores, %s)\n\n", o.dur, numCPU(), time.Now().UTC().Format("2006-01-02 15:04Z"))
	fmt.Println("| run | broker | msg/s in | sent | received / expected | CPU % of a core | peak RSS MiB | of which anon (peak) / file | RSS after MiB | load1 | steal % |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		after := ""
		if r.afterMiB > 0 {
			after = fmt.Sprintf("%.1f (%s later)", r.afterMiB, o.settle)
		}
		fmt.Printf("| %s | %s | %d | %d | %d / %d | %.1f | %.1f | %.1f / %.1f | %s | %.2f | %.1f |\n",
			r.name, r.broker, r.rate, r.sent, r.received, r.want, r.cpu, r.peakMiB, r.peakAnonMiB, r.fileMiB, after, r.load1, r.steal)
	}
	for _, r := range rows {
		if r.lagMax > 0 {
			fmt.Printf("\n%s (%s): window results arrived %s (p50) / %s (p99) / %s (max) after the window closed (processing time, no eventTime)\n",
				r.name, r.broker, r.lagP50.Round(time.Millisecond), r.lagP99.Round(time.Millisecond), r.lagMax.Round(time.Millisecond))
		}
	}
	if idle[0] > 0 {
		fmt.Printf("\neddy idle RSS (broker, WAL, 1 pipeline, HTTP, 2 s after start): %.1f MiB (anon %.1f, file %.1f)\n", idle[0], idle[1], idle[2])
	}
	for i := 0; i+1 < len(rows); i++ {
		a, b := rows[i], rows[i+1]
		if a.broker == "mosquitto" && b.broker == "eddy" && a.name == b.name && a.cpu > 0 {
			fmt.Printf("%s: eddy CPU / mosquitto CPU = %.2f\n", a.name, b.cpu/a.cpu)
		}
	}
	var one, more *targetRow
	for i := range rows {
		switch {
		case rows[i].name == "1 filter pipeline, 1 topic":
			one = &rows[i]
		case strings.HasPrefix(rows[i].name, "1 + "):
			more = &rows[i]
		}
	}
	if one != nil && more != nil && more.sent > 0 {
		extra := float64(o.shared)
		perEvent := (more.cpu - one.cpu) / 100 * o.dur.Seconds() / float64(more.sent) / extra * 1e6
		fmt.Printf("one more filter pipeline on the topic: %.2f µs of CPU per event (%d dropping pipelines added)\n", perEvent, o.shared)
	}
}

// settle waits until pid is quiet (under 5 % of a core over half a second,
// at most 60 s): eddy applies its pipelines after its broker listens, and
// that work must not be counted as the load's.
func settle(pid int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c0 := cpuTicks(pid)
		time.Sleep(500 * time.Millisecond)
		if float64(cpuTicks(pid)-c0)/clkTck/0.5 < 0.05 {
			return
		}
	}
}
