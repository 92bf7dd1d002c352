package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/engine"
)

func (p *eddyProc) client() *api.Client {
	return api.NewClient("127.0.0.1:"+p.httpPort, "")
}

func (p *eddyProc) status(t *testing.T, id string) engine.Status {
	t.Helper()
	st, err := p.client().Stats(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Reproduction 1 with real clients: one poison event per class (a topic
// field holding a wildcard, a division by zero giving +Inf, undecodable
// bytes) goes to the errors: sink with its reason; the good event after
// it comes out, the pipeline stays running with lag 0, and a restart does
// not bring a stall back.
func TestE2EPoisonEventsAreDeadLettered(t *testing.T) {
	dir := t.TempDir()
	spec := e2etest.WriteFile(t, dir, "poison.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: poison}
spec:
  source: {mqtt: {topic: "sensors/+"}}
  steps:
    - map: {ratio: "temperature / zero"}
  sinks:
    - mqtt: {topic: "alerts/{{device}}", qos: 1}
  errors:
    - mqtt: {topic: "dead/poison", qos: 1}
`)
	data := filepath.Join(dir, "data")
	port := mqtttest.FreePort(t)
	p := startEddy(t, data, port, spec)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alerts/#", "dead/#"}, QoS: 1, ProbeTopic: "alerts/probe"})
	mqtttest.Pub(t, port, "sensors/s1", 1,
		`{"device":"a/+","temperature":50,"zero":1}`,
		`{"device":"b","temperature":50,"zero":0}`,
		`{"device":"c\u0000","temperature":50,"zero":1}`,
		"{not json",
		`{"device":"ok","temperature":50,"zero":2}`)
	got := sub.Lines(5)
	want := []struct{ topic, has string }{
		{"dead/poison", `"error":"mqtt sink: topic \"alerts/a/+\" contains a wildcard`},
		{"dead/poison", `"ratio":"+Inf"`},
		{"dead/poison", `"step":"sink-mqtt-0"`},
		{"dead/poison", `"step":"source"`},
		{"alerts/ok", `{"device":"ok","ratio":25,"temperature":50,"zero":2}`},
	}
	for i, w := range want {
		topic, payload, _ := strings.Cut(got[i], " ")
		if topic != w.topic || !strings.Contains(payload, w.has) {
			t.Errorf("line %d = %s; want topic %s with %s", i, got[i], w.topic, w.has)
		}
	}
	mqtttest.WaitForErr(t, "the pipeline to be running with lag 0", func() error {
		st := p.status(t, "poison")
		if st.State != engine.StateRunning || st.Lag != 0 || st.DeadLettered != 4 {
			return fmt.Errorf("state %s lag %d deadLettered %d", st.State, st.Lag, st.DeadLettered)
		}
		return nil
	})
	p.Stop(syscall.SIGTERM)
	sub.Close()

	p2 := startEddy(t, data, port, spec)
	sub2 := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"alerts/#"}, QoS: 1, ProbeTopic: "alerts/probe"})
	mqtttest.Pub(t, port, "sensors/s1", 1, `{"device":"after","temperature":1,"zero":1}`)
	if line := sub2.Next(); line != `alerts/after {"device":"after","ratio":1,"temperature":1,"zero":1}` {
		t.Fatalf("after restart: %s", line)
	}
	p2.Stop(syscall.SIGTERM)
}

// Reproduction 4 with real clients: SIGTERM while paho publishes QoS 1 as
// fast as it can to a pipeline with an MQTT sink (read by a subscriber)
// and a file sink. eddy exits 0 well within the 10 s bound, writes its
// final checkpoint, and a restart on the same data dir delivers every
// acknowledged message to the file.
func TestE2ESigtermUnderQoS1Load(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	spec := e2etest.WriteFile(t, dir, "load.yaml", fmt.Sprintf(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: load}
spec:
  source: {mqtt: {topic: "n/#"}}
  sinks:
    - mqtt: {topic: "out/{{n}}", qos: 1}
    - file: {path: %q}
`, out))
	data := filepath.Join(dir, "data")
	port := mqtttest.FreePort(t)
	p := startEddy(t, data, port, "--checkpoint-interval", "1s", spec)
	sub := mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: []string{"out/#"}, QoS: 1, ProbeTopic: "out/probe"})
	defer sub.Close()

	const total = 6000
	var exited time.Duration
	var exitErr error
	acked, nAcked := publishNumbered(t, port, "sigterm-pub", total, 15*time.Second, func() {
		t0 := time.Now()
		exitErr = p.Stop(syscall.SIGTERM)
		exited = time.Since(t0)
	})
	logs := p.Logs()
	if exitErr != nil {
		t.Fatalf("eddy after SIGTERM: %v", exitErr)
	}
	if exited > 10*time.Second {
		t.Fatalf("eddy took %v to exit after SIGTERM; the bound is 10s", exited)
	}
	for _, want := range []string{"mqtt intake stopped", "pipeline checkpointed", "shutdown complete"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the logs of the shutdown", want)
		}
	}
	if nAcked < 100 {
		t.Fatalf("only %d messages acknowledged before SIGTERM; the test proves nothing", nAcked)
	}
	p2 := startEddy(t, data, port, spec)
	waitAcknowledgedOut(t, out, acked, nAcked)
	p2.Stop(syscall.SIGTERM)
	t.Logf("acknowledged %d of %d before SIGTERM; eddy exited in %v", nAcked, total, exited)
}

// countFDs counts the open descriptors of a process, and lists them.
func countFDs(t *testing.T, pid int) (int, string) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		names = append(names, l)
	}
	return len(ents), strings.Join(names, " ")
}

// Reproduction 3 with real clients: 100 concurrent PUT/DELETE pairs of one
// pipeline with a file sink leave exactly one run or none, the open file
// descriptors come back to the baseline, and a later event is written once.
func TestE2EConcurrentPutDelete(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	doc := fmt.Sprintf(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: churn}
spec:
  source: {mqtt: {topic: "c/#"}}
  sinks:
    - file: {path: %q}
`, out)
	keep := e2etest.WriteFile(t, dir, "keep.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: keep}
spec:
  source: {mqtt: {topic: "k/#"}}
  sinks: [{log: {level: debug}}]
`)
	port := mqtttest.FreePort(t)
	p := startEddy(t, filepath.Join(dir, "data"), port, keep)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%s%s", p.httpPort, api.PipelinePath("churn"))
	call := func(method string, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base, baseList := countFDs(t, p.Pid())
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(2)
		// Each PUT changes the plan (hash), so each is a real replace.
		body := strings.Replace(doc, "  sinks:", fmt.Sprintf("  steps: [{filter: \"n > -%d\"}]\n  sinks:", i+1), 1)
		go func() {
			defer wg.Done()
			if code, msg := call("PUT", body); code != 200 && code != 201 {
				t.Errorf("PUT: %d %s", code, msg)
			}
		}()
		go func() {
			defer wg.Done()
			if code, msg := call("DELETE", ""); code != 204 && code != 404 {
				t.Errorf("DELETE: %d %s", code, msg)
			}
		}()
	}
	wg.Wait()
	items, err := p.client().Pipelines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, st := range items {
		if st.ID == "default/churn" {
			runs++
		}
	}
	if runs > 1 {
		t.Fatalf("%d runs of one pipeline", runs)
	}
	if code, msg := call("PUT", doc); code != 200 && code != 201 {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	// A replace whose plan compiles but cannot be built (its file cannot
	// be created) is refused and leaves the running pipeline alone.
	bad := strings.Replace(strings.Replace(doc, out, "/proc/eddy-no/out.jsonl", 1), "  sinks:", "  steps: [{filter: \"n > -1\"}]\n  sinks:", 1)
	if code, msg := call("PUT", bad); code < 400 || !strings.Contains(msg, "/proc/eddy-no") {
		t.Fatalf("PUT of an unbuildable plan: %d %s", code, msg)
	}
	mqtttest.Pub(t, port, "c/1", 1, `{"n":1}`)
	mqtttest.WaitFor(t, "the event in the file", func() bool { return readNumbers(t, out)[1] >= 1 })
	if code, msg := call("DELETE", ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	mqtttest.Pub(t, port, "c/1", 1, `{"n":2}`)
	st := p.status(t, "keep")
	mqtttest.WaitFor(t, "the other pipeline to read the last event", func() bool {
		return p.status(t, "keep").Cursor > st.Head
	})
	if seen := readNumbers(t, out); seen[1] != 1 || seen[2] != 0 {
		t.Fatalf("file output %v; want n=1 once and nothing after DELETE", seen)
	}
	mqtttest.WaitForErr(t, "open descriptors back to the baseline", func() error {
		// The API client's own keep-alive connection is not the runner's.
		http.DefaultClient.CloseIdleConnections()
		if n, list := countFDs(t, p.Pid()); n > base {
			return fmt.Errorf("%d open descriptors, baseline %d\nnow: %s\nbaseline: %s", n, base, list, baseList)
		}
		return nil
	})
	p.Stop(syscall.SIGTERM)
}

// A second SIGINT/SIGTERM exits at once, whatever the shutdown is doing.
func TestSecondSignalExits(t *testing.T) {
	exited := make(chan struct{})
	ctx, stop := onSignals(context.Background(), io.Discard, func() { close(exited) })
	defer stop()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first SIGTERM did not cancel the context")
	}
	select {
	case <-exited:
		t.Fatal("one signal exited")
	case <-time.After(50 * time.Millisecond):
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not exit")
	}
}

// Reproduction 2: a pipeline whose sink keeps failing with a retryable
// error (a file on a full device) is degraded with the sink's error; skip
// and seek work through the CLI; POST .../stop, a hot-replace PUT and
// DELETE each return within seconds; SIGTERM while it is blocked exits
// promptly, without a final checkpoint past the undelivered record.
func TestE2EStuckPipelineStopsPromptly(t *testing.T) {
	dir := t.TempDir()
	doc := `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: stuck}
spec:
  source: {mqtt: {topic: "s/#"}}
  sinks:
    - file: {path: /dev/full}
`
	spec := e2etest.WriteFile(t, dir, "stuck.yaml", doc)
	port := mqtttest.FreePort(t)
	p := startEddy(t, filepath.Join(dir, "data"), port, spec)
	// The sink's writes fail with ENOSPC (/dev/full), a retryable error:
	// the pipeline stays degraded on the first record it cannot write. (A
	// stalled MQTT subscriber no longer does this: it lags alone, see the
	// broker's slow subscriber policy.)
	lines := make([]string, 8000) // more than the file sink's 64 KiB buffer
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"n":%d}`, i)
	}
	mqtttest.PubLines(t, port, "s/1", 0, lines...)
	var st engine.Status
	mqtttest.WaitForErr(t, "the pipeline to be degraded by its failing sink", func() error {
		st = p.status(t, "stuck")
		if st.State != engine.StateDegraded {
			return fmt.Errorf("state %s, sink %+v", st.State, st.Sinks)
		}
		return nil
	})
	if !strings.Contains(st.Error, "no space left") || st.BlockedAt == 0 {
		t.Errorf("degraded status without the sink's error or blockedAt: %+v", st)
	}
	timed := func(what string, fn func() error) {
		t.Helper()
		t0 := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d := time.Since(t0); d > 4*time.Second {
			t.Fatalf("%s took %v on a stuck pipeline", what, d)
		}
	}
	// The operator's escape hatches, through the CLI.
	server := "127.0.0.1:" + p.httpPort
	out, err := exec.Command(eddyBin, "pipeline", "skip", "stuck", "--server", server).CombinedOutput()
	// (The resume offset is the last checkpoint's: the sink cannot flush,
	// so no checkpoint moves past the record it is blocked on.)
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("stuck: skipped the output of offset %d; continuing from offset", st.BlockedAt)) {
		t.Fatalf("eddy pipeline skip: %v\n%s", err, out)
	}
	if !strings.Contains(p.Logs(), "operator skipped a record") {
		t.Error("the skip is not in the runner's log")
	}
	out, err = exec.Command(eddyBin, "pipeline", "seek", "stuck", "--end", "--server", server).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "stuck: cursor moved from offset") {
		t.Fatalf("eddy pipeline seek --end: %v\n%s", err, out)
	}
	if st := p.status(t, "stuck"); st.Lag != 0 {
		t.Errorf("lag %d after seek --end", st.Lag)
	}
	mqtttest.PubLines(t, port, "s/1", 0, lines...) // past the sink's buffer again
	mqtttest.WaitForErr(t, "the pipeline to be blocked again", func() error {
		if st := p.status(t, "stuck"); st.State != engine.StateDegraded {
			return fmt.Errorf("state %s", st.State)
		}
		return nil
	})
	c := p.client()
	ctx := context.Background()
	timed("stop", func() error { _, err := c.Stop(ctx, "stuck"); return err })
	if st := p.status(t, "stuck"); st.State != engine.StateStopped {
		t.Fatalf("after stop: %s", st.State)
	}
	timed("start", func() error { _, err := c.Start(ctx, "stuck"); return err })
	timed("replace", func() error {
		_, err := c.Apply(ctx, "stuck.yaml", []byte(strings.Replace(doc, "  sinks:", "  steps: [{filter: \"n >= 0\"}]\n  sinks:", 1)))
		return err
	})
	timed("delete", func() error { return c.Delete(ctx, "stuck") })
	// Again, and SIGTERM while it is blocked: the shutdown does not wait
	// for the subscriber; the run ends without a final checkpoint past the
	// record it could not deliver.
	if _, err := c.Apply(ctx, "stuck.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitForErr(t, "blocked again", func() error {
		if st := p.status(t, "stuck"); st.State != engine.StateDegraded {
			return fmt.Errorf("state %s", st.State)
		}
		return nil
	})
	t0 := time.Now()
	exitErr := p.Stop(syscall.SIGTERM)
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("SIGTERM on a blocked pipeline took %v", d)
	}
	if exitErr != nil {
		t.Errorf("eddy after SIGTERM: %v", exitErr)
	}
	for _, want := range []string{"no final checkpoint", "shutdown complete"} {
		if !strings.Contains(p.Logs(), want) {
			t.Errorf("no %q in the logs", want)
		}
	}
}

// Reproduction 5 with real clients: event times that overflow int64
// nanoseconds (5e10 s, a year-2611 seconds value) are source errors that
// use the arrival time; they do not close the open window early, so the
// real readings after them are not late.
func TestE2EEventTimeOverflow(t *testing.T) {
	dir := t.TempDir()
	spec := e2etest.WriteFile(t, dir, "et.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: et}
spec:
  source: {mqtt: {topic: "t/+"}}
  eventTime: ts
  steps:
    - window: {tumbling: 1h}
    - aggregate: {n: "count()"}
  sinks: [{mqtt: {topic: "w/out"}}]
`)
	port := mqtttest.FreePort(t)
	p := startEddy(t, filepath.Join(dir, "data"), port, spec)
	now := time.Now().Unix()
	mqtttest.Pub(t, port, "t/1", 1,
		fmt.Sprintf(`{"ts":%d}`, now),
		`{"ts":20242804204}`,
		`{"ts":5e10}`,
		fmt.Sprintf(`{"ts":%d}`, now+1))
	mqtttest.WaitForErr(t, "the four readings", func() error {
		st := p.status(t, "et")
		if st.Source.Out != 4 {
			return fmt.Errorf("source out %d", st.Source.Out)
		}
		if st.Source.Errors != 2 || !strings.Contains(st.Source.LastError, "outside the representable times") {
			return fmt.Errorf("source errors %d (%s); want 2 out-of-range", st.Source.Errors, st.Source.LastError)
		}
		if st.Late != 0 || st.EventTime.After(time.Now().Add(time.Hour)) {
			return fmt.Errorf("late %d, event clock %s: a bad timestamp moved the watermark", st.Late, st.EventTime)
		}
		return nil
	})
	p.Stop(syscall.SIGTERM)
}

// Reproduction 6 through the binary: eddy validate and eddy run refuse a
// pipeline that reads its own output, two pipelines with one name in two
// files (naming both places), and two pipelines that feed each other.
func TestE2EValidateLoopsAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	self := e2etest.WriteFile(t, dir, "self.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: echo}
spec:
  source: {mqtt: {topic: "sensors/#"}}
  sinks: [{mqtt: {topic: "sensors/echo/{{key}}"}}]
`)
	a := e2etest.WriteFile(t, dir, "a.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "a/#"}}
  sinks: [{mqtt: {topic: "b/{{key}}"}}]
`)
	b := e2etest.WriteFile(t, dir, "b.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "c/#"}}
  sinks: [{mqtt: {topic: "d"}}]
`)
	c := e2etest.WriteFile(t, dir, "c.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: back}
spec:
  source: {mqtt: {topic: "b/+"}}
  sinks: [{mqtt: {topic: "a/x"}}]
`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", self}, `self.yaml:7: spec.sinks[0].mqtt.topic: publishes to "sensors/echo/{{key}}", which this pipeline's own source "sensors/#" reads`},
		{[]string{"validate", a, b}, "b.yaml:4: metadata.name: pipeline default/hot is declared twice (first at " + a + ":4)"},
		{[]string{"validate", a, c}, `default/back -[spec.sinks[0] "a/x"]-> default/hot -[spec.sinks[0] "b/{{key}}"]-> default/back`},
		{[]string{"run", "--data-dir", "", "--mqtt-addr", "127.0.0.1:0", "--http-addr", "-", a, c}, "feed each other in a loop"},
	} {
		out, err := exec.Command(eddyBin, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("eddy %s: %v\n%s\nwant it to fail with %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}
