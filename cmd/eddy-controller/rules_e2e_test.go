package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/testtools"
)

// fleetEnv is a real kube-apiserver + etcd, a real `eddy hub`, real `eddy
// edge` processes and the eddy-controller binary.
type fleetEnv struct {
	cl     *k8stest.Cluster
	dir    string
	hubURL string
	pw     map[string]string
	mqtt   map[string]int // node -> MQTT port
}

// startFleet starts the hub and one edge per node (labels site=<node>);
// the controller is started by the caller with its own flags.
func startFleet(t *testing.T, nodes ...string) *fleetEnv {
	t.Helper()
	mqtttest.RequireClients(t)
	e := &fleetEnv{cl: k8stest.Start(t, k8stest.Options{}), dir: t.TempDir(), pw: map[string]string{}, mqtt: map[string]int{}}
	t.Cleanup(e.cl.Stop)
	creds := filepath.Join(e.dir, "creds.yaml")
	for _, u := range append([]string{"controller"}, nodes...) {
		args := []string{"hub", "credentials", "add", u, "--file", creds}
		if u == "controller" {
			args = append(args, "--admin")
		}
		out := runBin(t, "eddy", args...)
		i := strings.Index(out, "password: ")
		e.pw[u] = strings.Fields(out[i+len("password: "):])[0]
	}
	var leafURL string
	_, e.hubURL, leafURL = startHub(t, filepath.Join(e.dir, "hub"), creds)
	for _, name := range nodes {
		_, port := startEdge(t, filepath.Join(e.dir, name+".yaml"), fmt.Sprintf(`dataDir: %s
mqttAddr: 127.0.0.1:0
httpAddr: "-"
allowAnonymous: true
node: %s
link:
  hub: [%s]
  user: %s
  password: %s
  localAddr: "-"
  reconnectInterval: 200ms
  heartbeatInterval: 500ms
  labels: {site: %s}
`, filepath.Join(e.dir, name), name, leafURL, name, e.pw[name], name))
		e.mqtt[name] = port
	}
	return e
}

// startController runs eddy-controller against the fleet with extra flags.
func (e *fleetEnv) startController(t *testing.T, extra ...string) *proc {
	args := append([]string{"--kubeconfig", e.cl.Kubeconfig(), "--hub", e.hubURL,
		"--user", "controller", "--metrics-addr", "0", "--health-addr", "", "--status-interval", "200ms"}, extra...)
	return start(t, []string{"EDDY_HUB_PASSWORD=" + e.pw["controller"]}, "eddy-controller starting", "eddy-controller", args...)
}

// target is the cloud app of eventbus->rest rules: /ok takes everything,
// /flaky answers 500 to the first two tries of every message, /down
// always 500.
type target struct {
	mu    sync.Mutex
	got   map[string][]string // path -> bodies accepted
	tries map[string]int      // path+body -> POSTs
	nodes map[string]int      // Eddy-Node of accepted POSTs
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.tries[r.URL.Path+" "+string(b)]++
	switch {
	case r.URL.Path == "/down", r.URL.Path == "/flaky" && tg.tries[r.URL.Path+" "+string(b)] <= 2:
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	tg.got[r.URL.Path] = append(tg.got[r.URL.Path], string(b))
	tg.nodes[r.Header.Get("Eddy-Node")]++
}

func (tg *target) count(path string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.got[path])
}

// TestE2ERules is KubeEdge's router on real parts: curl to the
// controller's router reaches the edge topic (mosquitto_sub);
// mosquitto_pub on an edge topic reaches an HTTP server in the cloud
// (from two nodes of one Rule); the servicebus round trip; a Rule update
// changes the route; a target that answers 500 is retried and counted; an
// oversized body gets 413 and an offline node 503; Rule status counters
// equal the message counts.
func TestE2ERules(t *testing.T) {
	curl := testtools.Tool(t, "curl", "apt-get install curl (scripts/deps.sh)")
	e := startFleet(t, "edge-1", "edge-2")

	tg := &target{got: map[string][]string{}, tries: map[string]int{}, nodes: map[string]int{}}
	cloud := httptest.NewServer(tg)
	defer cloud.Close()
	var svcMu sync.Mutex
	var svcSeen []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		svcMu.Lock()
		svcSeen = append(svcSeen, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		svcMu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "pong %s", b)
	}))
	defer svc.Close()
	svcPort := svc.Listener.Addr().(*net.TCPAddr).Port

	ctrlFlags := []string{"--router-addr", "127.0.0.1:0", "--router-max-body", "1024",
		"--router-attempts", "3", "--router-backoff", "50ms"}
	ctrl := e.startController(t, ctrlFlags...)
	router := "http://" + ctrl.logged(t, "router listening", "addr")

	e.cl.MustKubectl(t, fmt.Sprintf(`apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: my-rest, namespace: default}
spec: {ruleEndpointType: rest, properties: {}}
---
apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: my-eventbus, namespace: default}
spec: {ruleEndpointType: eventbus, properties: {}}
---
apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: my-servicebus, namespace: default}
spec: {ruleEndpointType: servicebus, properties: {service_port: "%d"}}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: down, namespace: default}
spec:
  source: my-rest
  sourceResource: {path: /a}
  target: my-eventbus
  targetResource: {topic: cloud/cmd}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata:
  name: up
  namespace: default
  annotations: {rules.eddy.dev/node-names: edge-2}
spec:
  source: my-eventbus
  sourceResource: {topic: telemetry, node_name: edge-1}
  target: my-rest
  targetResource: {resource: "%s/ok"}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: svc, namespace: default}
spec:
  source: my-rest
  sourceResource: {path: /svc}
  target: my-servicebus
  targetResource: {path: /b}
`, svcPort, cloud.URL), "apply", "-f", "-")

	// curl the router; returns status and body.
	var ok, fail int // expected counters of rule "down"
	do := func(args ...string) (int, string) {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		s := strings.TrimRight(string(out), "\n")
		i := strings.LastIndexByte(s, '\n')
		code, _ := strconv.Atoi(s[i+1:])
		return code, s[:max(i, 0)]
	}

	// rest -> eventbus, on both nodes (a rest rule without annotations is
	// placed on every node).
	subs := map[string]*mqtttest.Sub{}
	for _, n := range []string{"edge-1", "edge-2"} {
		subs[n] = mqtttest.StartSub(t, fmt.Sprint(e.mqtt[n]), mqtttest.SubOptions{Topics: []string{"cloud/#", "probe/ctl"}, ProbeTopic: "probe/ctl"})
	}
	for _, n := range []string{"edge-1", "edge-2"} {
		mqtttest.WaitForErr(t, "rule down routed to "+n, func() error {
			code, body := do("-d", "hello "+n, router+"/"+n+"/default/a")
			if code != 200 {
				// 404 until the controller knows the rule (not counted:
				// no rule matched) and until the route reaches the node
				// (counted as a failure of the rule).
				if !strings.Contains(body, "no Rule in namespace") {
					fail++
				}
				return fmt.Errorf("%d %s", code, body)
			}
			ok++
			return nil
		})
		if got := subs[n].Next(); got != "cloud/cmd hello "+n {
			t.Errorf("%s: got %q on the edge, want %q", n, got, "cloud/cmd hello "+n)
		}
	}
	for i := 0; i < 5; i++ {
		if code, body := do("-d", fmt.Sprintf("m%d", i), router+"/edge-1/default/a/below"); code != 200 {
			t.Fatalf("POST /edge-1/default/a/below: %d %s", code, body)
		}
		ok++
	}
	for i, l := range subs["edge-1"].Lines(5) {
		if want := fmt.Sprintf("cloud/cmd m%d", i); l != want {
			t.Errorf("message %d: %q, want %q", i, l, want)
		}
	}
	// Refused: too big (413), an offline node (503), an unknown path
	// (404, not counted: no rule).
	if code, body := do("--data-binary", strings.Repeat("x", 2000), router+"/edge-1/default/a"); code != 413 {
		t.Errorf("2000-byte body: %d %s, want 413", code, body)
	}
	fail++
	// A node that is not an EdgeNode: rule down is not placed there, and
	// nothing is sent (404, counted).
	if code, body := do("-d", "x", router+"/edge-9/default/a"); code != 404 || !strings.Contains(body, "not placed on node edge-9") {
		t.Errorf("a node that is not an EdgeNode: %d %s, want 404", code, body)
	}
	fail++
	// An EdgeNode that is not connected: 503 at once.
	e.cl.MustKubectl(t, "apiVersion: eddy.dev/v1alpha1\nkind: EdgeNode\nmetadata: {name: edge-9}\n", "apply", "-f", "-")
	var took time.Duration
	mqtttest.WaitForErr(t, "503 for edge-9, an EdgeNode that is not connected", func() error {
		t0 := time.Now()
		code, body := do("-d", "x", router+"/edge-9/default/a")
		took = time.Since(t0)
		fail++ // 404 until the router sees the EdgeNode, then 503: both count
		if code != 503 || !strings.Contains(body, "not connected") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	t.Logf("503 for an offline node in %v", took)
	if code, _ := do("-d", "x", router+"/edge-1/default/nothing"); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}

	// rest -> servicebus round trip.
	var svcCode, svcFail int
	var svcBody string
	mqtttest.WaitForErr(t, "servicebus rule routed", func() error {
		svcCode, svcBody = do("-X", "PUT", "-d", "ping", router+"/edge-1/default/svc/x?q=1")
		if svcCode == 404 {
			if !strings.Contains(svcBody, "no Rule in namespace") {
				svcFail++ // the route has not reached the node yet
			}
			return fmt.Errorf("%d %s", svcCode, svcBody)
		}
		return nil
	})
	if svcCode != 201 || svcBody != "pong ping" {
		t.Errorf("servicebus: %d %q, want 201 \"pong ping\"", svcCode, svcBody)
	}
	if code, body := do("--path-as-is", router+"/edge-1/default/svc/../../admin"); code != 400 {
		t.Errorf("a dot segment: %d %s, want 400", code, body)
	}
	svcMu.Lock()
	if len(svcSeen) != 1 || svcSeen[0] != "PUT /b/x?q=1 ping" {
		t.Errorf("the edge service saw %q, want [PUT /b/x?q=1 ping]", svcSeen)
	}
	svcMu.Unlock()

	// eventbus -> rest from two nodes of one rule: KubeEdge's topic is
	// {namespace}/{topic}.
	var lines []string
	for i := 0; i < 10; i++ {
		lines = append(lines, fmt.Sprintf(`{"n":%d}`, i))
	}
	mqtttest.WaitForErr(t, "rule up placed on both nodes", func() error {
		out, err := e.cl.Kubectl("", "get", "rule", "up", "-o", "jsonpath={.metadata.finalizers}")
		if err != nil || !strings.Contains(out, "eddy.dev/plans") {
			return fmt.Errorf("finalizers %q %v", out, err)
		}
		return nil
	})
	mqtttest.WaitForErr(t, "a probe from each node reaches the cloud app", func() error {
		for _, n := range []string{"edge-1", "edge-2"} {
			mqtttest.Pub(t, fmt.Sprint(e.mqtt[n]), "default/telemetry", 1, `probe-`+n)
		}
		tg.mu.Lock()
		defer tg.mu.Unlock()
		if tg.nodes["edge-1"] == 0 || tg.nodes["edge-2"] == 0 {
			return fmt.Errorf("from nodes %v", tg.nodes)
		}
		return nil
	})
	mqtttest.PubLines(t, fmt.Sprint(e.mqtt["edge-1"]), "default/telemetry", 1, lines...)
	mqtttest.PubLines(t, fmt.Sprint(e.mqtt["edge-2"]), "default/telemetry", 1, lines[:5]...)
	// Probes still in flight may arrive after these (16 delivery
	// workers, no ordering): count the messages themselves.
	mqtttest.WaitForErr(t, "15 messages at the cloud app", func() error {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		n := 0
		for _, b := range tg.got["/ok"] {
			if strings.HasPrefix(b, `{"n":`) {
				n++
			}
		}
		if n != 15 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})

	jp := func(rule, path string) string {
		out, _ := e.cl.Kubectl("", "get", "rule", rule, "-o", "jsonpath="+path)
		return out
	}
	counters := func(rule string, wantOK, wantFail int) {
		t.Helper()
		mqtttest.WaitForErr(t, fmt.Sprintf("rule %s counts %d/%d", rule, wantOK, wantFail), func() error {
			if got, want := jp(rule, "{.status.successMessages}/{.status.failMessages}"), fmt.Sprintf("%d/%d", wantOK, wantFail); got != want {
				if wantFail == 0 && got == fmt.Sprintf("%d/", wantOK) {
					return nil
				}
				return fmt.Errorf("success/fail = %s, want %s; errors %s", got, want, jp(rule, "{.status.errors}"))
			}
			return nil
		})
	}
	counters("down", ok, fail)
	counters("svc", 1, svcFail)
	upOK := tg.count("/ok")

	// A Rule update changes the route: the same URL now publishes on
	// cloud/cmd2.
	e.cl.MustKubectl(t, "", "patch", "rule", "down", "--type=merge", `-p={"spec":{"targetResource":{"topic":"cloud/cmd2"}}}`)
	mqtttest.WaitForErr(t, "the updated route on edge-1", func() error {
		if code, body := do("-d", "after-update", router+"/edge-1/default/a"); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		for {
			l := subs["edge-1"].Next()
			if l == "cloud/cmd2 after-update" {
				return nil
			}
			if l != "cloud/cmd after-update" {
				return fmt.Errorf("unexpected %q", l)
			}
		}
	})

	// A target answering 500: retried (flaky: succeeds at the 3rd try),
	// or given up and counted (down: 3 attempts, all 500).
	e.cl.MustKubectl(t, "", "patch", "rule", "up", "--type=merge", `-p={"spec":{"targetResource":{"resource":"`+cloud.URL+`/flaky"}}}`)
	mqtttest.WaitForErr(t, "a message through the flaky target", func() error {
		mqtttest.Pub(t, fmt.Sprint(e.mqtt["edge-1"]), "default/telemetry", 1, "flaky-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if tg.count("/flaky") == 0 {
			return fmt.Errorf("nothing at /flaky yet")
		}
		return nil
	})
	mqtttest.WaitFor(t, "every message at /flaky", func() bool {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		return len(tg.got["/flaky"]) == countPrefix(tg.tries, "/flaky ")
	})
	tg.mu.Lock()
	for k, n := range tg.tries {
		if strings.HasPrefix(k, "/flaky ") && n != 3 {
			t.Errorf("%s: %d POSTs, want 3 (two 500s, then 200)", k, n)
		}
	}
	flaky := len(tg.got["/flaky"])
	tg.mu.Unlock()
	e.cl.MustKubectl(t, "", "patch", "rule", "up", "--type=merge", `-p={"spec":{"targetResource":{"resource":"`+cloud.URL+`/down"}}}`)
	upFail := 0
	mqtttest.WaitForErr(t, "a message to the failing target", func() error {
		mqtttest.Pub(t, fmt.Sprint(e.mqtt["edge-1"]), "default/telemetry", 1, "down-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		tg.mu.Lock()
		defer tg.mu.Unlock()
		if countPrefix(tg.tries, "/down ") == 0 {
			return fmt.Errorf("nothing at /down yet")
		}
		return nil
	})
	// Counters settle once no message is in flight: every /down message is
	// 3 POSTs and one failure; every other message one success.
	mqtttest.WaitForErr(t, "rule up counts its successes and failures", func() error {
		tg.mu.Lock()
		downMsgs := 0
		for k, n := range tg.tries {
			if strings.HasPrefix(k, "/down ") {
				downMsgs++
				if n < 3 {
					tg.mu.Unlock()
					return fmt.Errorf("%s: %d POSTs so far", k, n)
				}
			}
		}
		// Messages published while the route still pointed elsewhere
		// were delivered there.
		okNow := len(tg.got["/ok"]) + len(tg.got["/flaky"])
		tg.mu.Unlock()
		upFail = downMsgs
		want := fmt.Sprintf("%d/%d", okNow, upFail)
		if got := jp("up", "{.status.successMessages}/{.status.failMessages}"); got != want {
			return fmt.Errorf("success/fail = %s, want %s", got, want)
		}
		return nil
	})
	if errs := jp("up", "{.status.errors}"); !strings.Contains(errs, "status 500 after 3 attempts") {
		t.Errorf("rule up errors %s: want the last failure", errs)
	}
	t.Logf("rule up: %d ok at /ok, %d through /flaky, %d failed at /down", upOK, flaky, upFail)

	// The controller away: what edges publish meanwhile waits in their
	// WAL and the hub's stream, and is POSTed (and counted on top of the
	// stored counters) by the next controller.
	e.cl.MustKubectl(t, "", "patch", "rule", "up", "--type=merge", `-p={"spec":{"targetResource":{"resource":"`+cloud.URL+`/later"}}}`)
	mqtttest.WaitForErr(t, "the controller routes to /later", func() error {
		mqtttest.Pub(t, fmt.Sprint(e.mqtt["edge-2"]), "default/telemetry", 1, "later-probe-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if tg.count("/later") == 0 {
			return fmt.Errorf("nothing at /later yet")
		}
		return nil
	})
	mqtttest.WaitForErr(t, "rule up's counters settled", func() error {
		tg.mu.Lock()
		okNow := len(tg.got["/ok"]) + len(tg.got["/flaky"]) + len(tg.got["/later"])
		tg.mu.Unlock()
		if got, want := jp("up", "{.status.successMessages}"), strconv.Itoa(okNow); got != want {
			return fmt.Errorf("successMessages %s, want %s", got, want)
		}
		return nil
	})
	ctrl.stop(t)
	mqtttest.PubLines(t, fmt.Sprint(e.mqtt["edge-1"]), "default/telemetry", 1, "away-1", "away-2", "away-3")
	ctrl = e.startController(t, ctrlFlags...)
	router = "http://" + ctrl.logged(t, "router listening", "addr")
	mqtttest.WaitForErr(t, "the 3 messages published while the controller was away at /later", func() error {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		n := 0
		for _, b := range tg.got["/later"] {
			if strings.HasPrefix(b, "away-") {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d arrived", n)
		}
		return nil
	})
	mqtttest.WaitForErr(t, "rule up's counters continue", func() error {
		tg.mu.Lock()
		okNow := len(tg.got["/ok"]) + len(tg.got["/flaky"]) + len(tg.got["/later"])
		tg.mu.Unlock()
		if got, want := jp("up", "{.status.successMessages}"), strconv.Itoa(okNow); got != want {
			return fmt.Errorf("successMessages %s, want %s", got, want)
		}
		return nil
	})

	// Deleting the rule removes the route from the edges.
	e.cl.MustKubectl(t, "", "delete", "rule", "down", "--wait=true", "--timeout=30s")
	mqtttest.WaitForErr(t, "rule down gone from the router", func() error {
		if code, _ := do("-d", "x", router+"/edge-1/default/a"); code != 404 {
			return fmt.Errorf("%d", code)
		}
		return nil
	})
}

func countPrefix(m map[string]int, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// stop ends the process as a SIGTERM does in production, and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15s after SIGTERM", p.cmd.Path)
	}
}
