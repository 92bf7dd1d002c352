//go:build scale

package main

// TestRouterBench measures KubeEdge's router on real parts (make bench runs
// it with -tags scale): a kube-apiserver, `eddy hub`, one `eddy edge` and
// the eddy-controller binary, all on this machine.
//
//   - rest->eventbus: 1,000 sequential POSTs to the router; the time to the
//     router's 200 and to the message at an MQTT subscriber on the edge
//     (paho). Peer, same run: the same payloads published by a paho client
//     straight to the edge's broker at QoS 1 (what the link adds is the
//     difference).
//   - eventbus->rest: 1,000 messages published on the edge at QoS 1; the
//     time from publish to the POST at an HTTP server, and the rate.
//
//	go test -tags scale -run TestRouterBench -v ./cmd/eddy-controller

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/mqtttest"
)

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func TestRouterBench(t *testing.T) {
	const n = 1000
	e := startFleet(t, "edge-1")
	var mu sync.Mutex
	var upLat []time.Duration
	var upLast time.Time
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		now := time.Now()
		sent, err := strconv.ParseInt(string(b), 10, 64)
		if err == nil {
			mu.Lock()
			upLat = append(upLat, now.Sub(time.Unix(0, sent)))
			upLast = now
			mu.Unlock()
		}
	}))
	defer cloud.Close()
	ctrl := e.startController(t, "--router-addr", "127.0.0.1:0")
	routerAddr := ctrl.logged(t, "router listening", "addr")
	e.cl.MustKubectl(t, `apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: rest, namespace: default}
spec: {ruleEndpointType: rest}
---
apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: bus, namespace: default}
spec: {ruleEndpointType: eventbus}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: down, namespace: default}
spec: {source: rest, sourceResource: {path: /a}, target: bus, targetResource: {topic: bench/down}}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: up, namespace: default}
spec: {source: bus, sourceResource: {topic: bench/up, node_name: edge-1}, target: rest, targetResource: {resource: "`+cloud.URL+`"}}
`, "apply", "-f", "-")

	// A paho subscriber on the edge: arrival times by payload.
	arrived := make(chan string, n*2)
	opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", e.mqtt["edge-1"])).SetClientID("bench-sub")
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("bench/#", 1, func(_ mqtt.Client, m mqtt.Message) { arrived <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	url := "http://" + routerAddr + "/edge-1/default/a"
	hc := &http.Client{Timeout: 30 * time.Second}
	post := func(body string) int {
		resp, err := hc.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	mqtttest.WaitFor(t, "the route on edge-1", func() bool { return post("warm-up") == 200 })
	for len(arrived) > 0 {
		<-arrived
	}
	wait := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-arrived:
				if got == want {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s never arrived on the edge", want)
			}
		}
	}

	load0 := loadavg()
	var reply, e2e []time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		body := "r" + strconv.Itoa(i)
		t0 := time.Now()
		if code := post(body); code != 200 {
			t.Fatalf("POST %d: %d", i, code)
		}
		reply = append(reply, time.Since(t0))
		wait(body)
		e2e = append(e2e, time.Since(t0))
	}
	routerTotal := time.Since(start)

	// Peer: the same payloads straight to the edge's broker, QoS 1.
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", e.mqtt["edge-1"])).SetClientID("bench-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	var peer []time.Duration
	start = time.Now()
	for i := 0; i < n; i++ {
		body := "p" + strconv.Itoa(i)
		t0 := time.Now()
		if tok := pub.Publish("bench/down", 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		wait(body)
		peer = append(peer, time.Since(t0))
	}
	peerTotal := time.Since(start)
	load1 := loadavg()

	// eventbus->rest: n messages published at QoS 1 as fast as paho goes.
	mqtttest.WaitFor(t, "the up rule forwards", func() bool {
		pub.Publish("default/bench/up", 1, false, strconv.FormatInt(time.Now().UnixNano(), 10)).Wait()
		mu.Lock()
		defer mu.Unlock()
		return len(upLat) > 0
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	upLat = upLat[:0]
	mu.Unlock()
	start = time.Now()
	for i := 0; i < n; i++ {
		tok := pub.Publish("default/bench/up", 1, false, strconv.FormatInt(time.Now().UnixNano(), 10))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	mqtttest.WaitForErr(t, "every message POSTed", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(upLat) < n {
			return fmt.Errorf("%d of %d", len(upLat), n)
		}
		return nil
	})
	mu.Lock()
	upTotal := upLast.Sub(start)
	ups := append([]time.Duration(nil), upLat...)
	mu.Unlock()
	load2 := loadavg()

	var b bytes.Buffer
	fmt.Fprintf(&b, "| path | n | p50 | p99 | max | rate | load before/after |\n|---|---:|---:|---:|---:|---:|---|\n")
	row := func(name string, ds []time.Duration, total time.Duration, l0, l1 string) {
		fmt.Fprintf(&b, "| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.0f/s | %s / %s |\n", name, len(ds),
			ms(pct(ds, 0.5)), ms(pct(ds, 0.99)), ms(pct(ds, 1)), float64(len(ds))/total.Seconds(), l0, l1)
	}
	row("rest->eventbus: POST to router -> 200", reply, routerTotal, load0, load1)
	row("rest->eventbus: POST to router -> at the edge subscriber", e2e, routerTotal, load0, load1)
	row("peer: paho QoS 1 publish to the edge broker -> at the subscriber", peer, peerTotal, load0, load1)
	row("eventbus->rest: publish on the edge -> POST at the cloud app", ups, upTotal, load1, load2)
	fmt.Print(b.String())
	t.Logf("ratio router/peer p50 %.1fx, p99 %.1fx", ms(pct(e2e, 0.5))/ms(pct(peer, 0.5)), ms(pct(e2e, 0.99))/ms(pct(peer, 0.99)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
