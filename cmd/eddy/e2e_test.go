package main

// End-to-end tests of the eddy binary with MQTT clients we did not write:
// Debian's mosquitto_pub / mosquitto_sub and paho.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

var eddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-e2e")
	if err != nil {
		panic(err)
	}
	eddyBin, err = e2etest.Compile(dir, "eddy", ".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// eddyProc is a running `eddy run`.
type eddyProc struct {
	*e2etest.Proc
	mqttPort string
	httpPort string
}

// startEddy starts `eddy run` on dataDir with its broker on mqttPort and
// its API on a free port, and waits until a pipeline runs.
func startEddy(t *testing.T, dataDir, mqttPort string, args ...string) *eddyProc {
	t.Helper()
	p := &eddyProc{mqttPort: mqttPort, httpPort: mqtttest.FreePort(t)}
	full := append([]string{"run", "--data-dir", dataDir, "--mqtt-addr", "127.0.0.1:" + mqttPort,
		"--http-addr", "127.0.0.1:" + p.httpPort}, args...)
	p.Proc = e2etest.Start(t, exec.Command(eddyBin, full...))
	p.WaitLog("pipeline running")
	return p
}

func TestE2EFilterWithMosquitto(t *testing.T) {
	dir := t.TempDir()
	spec := e2etest.WriteFile(t, dir, "hot.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  key: device
  steps:
    - filter: "temperature > 30"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - select: [device, temp_f]
  sinks:
    - mqtt: {topic: "hot/{{device}}", qos: 1}
`)
	port := mqtttest.FreePort(t)
	p := startEddy(t, filepath.Join(dir, "data"), port, spec)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"hot/#"}, QoS: 1, ProbeTopic: "hot/probe"})
	mqtttest.Pub(t, port, "factory/d1/data", 1,
		`{"device":"d1","temperature":25}`,
		`{"device":"d1","temperature":31}`,
		`{"device":"d2"}`,
		`not json`,
		`{"device":"d2","temperature":40}`)
	got := sub.Lines(2)
	want := []string{`hot/d1 {"device":"d1","temp_f":87.8}`, `hot/d2 {"device":"d2","temp_f":104}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mosquitto_sub got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p.Stop(syscall.SIGTERM)
	if !strings.Contains(p.Logs(), "pipeline checkpointed") {
		t.Errorf("no checkpoint on SIGTERM:\n%s", p.Logs())
	}
}

func TestE2EWindowAlertWithMosquitto(t *testing.T) {
	dir := t.TempDir()
	spec := e2etest.WriteFile(t, dir, "overheat.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  eventTime: ts
  key: device
  steps:
    - window: {tumbling: 10s}
    - aggregate: {avg_t: "avg(temperature)", max_t: "max(temperature)", n: "count()"}
    - alert:
        when: "avg_t > 30"
        for: 10s
        severity: critical
        message: "{{key}} is overheating: avg {{avg_t}}"
  sinks:
    - mqtt: {topic: "alerts/{{key}}", qos: 1}
`)
	port := mqtttest.FreePort(t)
	startEddy(t, filepath.Join(dir, "data"), port, spec)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alerts/#"}, QoS: 1, ProbeTopic: "alerts/probe"})
	const t0 = 1_700_000_000_000
	var msgs []string
	for s := 0; s < 50; s++ {
		temp := 32.0
		if s >= 30 {
			temp = 20
		}
		msgs = append(msgs, fmt.Sprintf(`{"device":"m1","ts":%d,"temperature":%g}`, t0+s*1000, temp))
	}
	// All on one connection, in order.
	mqtttest.PubLines(t, port, "factory/m1/data", 1, msgs...)
	got := sub.Lines(2)
	// Windows [0,10) [10,20) [20,30) average 32; [30,40) averages 20.
	// Pending at the first window's end (t0+10s), firing once it held 10 s
	// (window [10,20) ending t0+20s), resolved at window [30,40).
	want := []map[string]any{
		{"state": "firing", "severity": "critical", "key": "m1", "message": "m1 is overheating: avg 32",
			"started_at": "2023-11-14T22:13:29.999Z", "ts": "2023-11-14T22:13:39.999Z",
			"values": map[string]any{"avg_t": 32.0, "key": "m1", "max_t": 32.0, "n": 10.0,
				"window_end": float64(t0 + 20000), "window_start": float64(t0 + 10000)}},
		{"state": "resolved", "severity": "critical", "key": "m1", "message": "m1 is overheating: avg 20",
			"started_at": "2023-11-14T22:13:29.999Z", "resolved_at": "2023-11-14T22:13:59.999Z", "ts": "2023-11-14T22:13:59.999Z"},
	}
	var ids []string
	for i, line := range got {
		topic, payload, _ := strings.Cut(line, " ")
		if topic != "alerts/m1" {
			t.Errorf("alert %d on topic %q, want alerts/m1", i, topic)
		}
		var f map[string]any
		if err := json.Unmarshal([]byte(payload), &f); err != nil {
			t.Fatalf("alert %d: %v: %s", i, err, payload)
		}
		for k, v := range want[i] {
			if g, _ := json.Marshal(f[k]); string(g) != mustJSON(v) {
				t.Errorf("alert %d field %s = %s, want %s\n(payload %s)", i, k, g, mustJSON(v), payload)
			}
		}
		ids = append(ids, fmt.Sprint(f["alert_id"]))
	}
	if len(ids) == 2 && (ids[0] != ids[1] || len(ids[0]) != 16) {
		t.Errorf("alert ids %v: firing and resolved of one episode must share a 16-hex id", ids)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestE2EKill9LosesNothingAcknowledged publishes numbered QoS 1 messages,
// SIGKILLs eddy in the middle, restarts it on the same data dir and checks
// that every message the publisher got a PUBACK for reached the pipeline's
// output file. Duplicates (replay since the last checkpoint) are allowed
// and counted.
func TestE2EKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	spec, out := numberedToFile(t, dir, "all", "n/#")
	data := filepath.Join(dir, "data")
	port := mqtttest.FreePort(t)
	p := startEddy(t, data, port, "--checkpoint-interval", "100ms", spec)

	const total = 3000
	// Kill while half is still to be sent and some is in flight.
	acked, nAcked := publishNumbered(t, port, "kill9-pub", total, 10*time.Second, p.Kill)
	if nAcked == 0 {
		t.Fatal("nothing was acknowledged before the kill; the test proves nothing")
	}

	// Restart on the same data dir: the pipeline replays from its checkpoint.
	p2 := startEddy(t, data, port, "--checkpoint-interval", "100ms", spec)
	waitAcknowledgedOut(t, out, acked, nAcked)
	p2.Stop(syscall.SIGTERM)
	seen := readNumbers(t, out)
	dups := 0
	for _, c := range seen {
		if c > 1 {
			dups += c - 1
		}
	}
	t.Logf("published %d, acknowledged %d, output %d distinct, %d duplicates (replayed after the kill)",
		total, nAcked, len(seen), dups)
}

// numberedToFile writes dir/NAME.yaml, a pipeline that passes the
// numbered events ({"n": ...}) published on topic to the JSON Lines file
// dir/out.jsonl, and returns the two paths.
func numberedToFile(t *testing.T, dir, name, topic string) (spec, out string) {
	t.Helper()
	out = filepath.Join(dir, "out.jsonl")
	spec = e2etest.WriteFile(t, dir, name+".yaml", fmt.Sprintf(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {mqtt: {topic: %q}}
  steps:
    - filter: "n >= 0"
  sinks:
    - file: {path: %q}
`, name, topic, out))
	return spec, out
}

// publishNumbered publishes {"n":i} for i in [0, total) to n/<i mod 7>
// with QoS 1 on one paho connection, 64 in flight (group commit shares
// fsyncs). Once half is sent it calls interrupt (which kills or stops
// eddy) in another goroutine, and stops publishing when interrupt returns.
// It reports which messages were acknowledged within ackWait, and how many.
func publishNumbered(t *testing.T, port, clientID string, total int, ackWait time.Duration, interrupt func()) ([]bool, int) {
	t.Helper()
	acked := make([]bool, total)
	var mu sync.Mutex
	opts := paho.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID(clientID).
		SetAutoReconnect(false).SetMaxResumePubInFlight(64)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	interrupted := make(chan struct{})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < total; i++ {
		if i == total/2 {
			go func() { interrupt(); close(interrupted) }()
		}
		select {
		case <-interrupted:
			i = total // stop publishing: the broker is gone
			continue
		case sem <- struct{}{}:
		}
		tok := c.Publish(fmt.Sprintf("n/%d", i%7), 1, false, fmt.Sprintf(`{"n":%d}`, i))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if tok.WaitTimeout(ackWait) && tok.Error() == nil {
				mu.Lock()
				acked[i] = true
				mu.Unlock()
			}
		}(i)
	}
	<-interrupted
	c.Disconnect(0)
	wg.Wait()
	n := 0
	for _, a := range acked {
		if a {
			n++
		}
	}
	return acked, n
}

// waitAcknowledgedOut waits until every acknowledged message (acked[n]) is
// in the JSON Lines output file out.
func waitAcknowledgedOut(t *testing.T, out string, acked []bool, nAcked int) {
	t.Helper()
	mqtttest.WaitForErr(t, "every acknowledged message in the output", func() error {
		seen := readNumbers(t, out)
		missing := 0
		for i, a := range acked {
			if a && seen[i] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged messages never reached the output", missing, nAcked)
		}
		return nil
	})
}

// readNumbers counts each n in the JSON Lines output file. eddy may be
// appending while this reads: a line still being written is read on the
// next call.
func readNumbers(t *testing.T, path string) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for _, m := range e2etest.ReadJSONLines(t, path) {
		n, ok := m["n"].(float64)
		if !ok || n != math.Trunc(n) {
			t.Fatalf("output line %v is not a numbered event", m)
		}
		seen[int(n)]++
	}
	return seen
}

func TestValidateReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	bad := e2etest.WriteFile(t, dir, "bad.yaml", `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bad}
spec:
  source: {mqtt: {topik: "a/b"}}
  steps:
    - window: {tumbling: "10"}
    - aggregate: {n: "cnt()"}
  sinks: [{mqtt: {topic: "x"}}]
`)
	out, err := exec.Command(eddyBin, "validate", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("validate succeeded on a bad file:\n%s", out)
	}
	for _, want := range []string{
		bad + `:5: spec.source.mqtt.topik: unknown field "topik" (did you mean "topic"?)`,
		bad + `:7: spec.steps[0].window.tumbling: "10" has no unit; use e.g. 10s`,
		bad + `:8: spec.steps[1].aggregate.n: unknown aggregate function "cnt"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	good := e2etest.WriteFile(t, dir, "good.yaml", strings.NewReplacer(`topik`, `topic`, `"10"`, `10s`, `cnt()`, `count()`).Replace(string(must(os.ReadFile(bad)))))
	if out, err := exec.Command(eddyBin, "validate", good).CombinedOutput(); err != nil {
		t.Fatalf("validate failed on a good file: %v\n%s", err, out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
