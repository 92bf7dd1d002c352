package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

const ruleDocs = `apiVersion: rules.kubeedge.io/v1
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
metadata:
  name: down
  namespace: default
  annotations: {rules.eddy.dev/node-selector: site=a}
spec: {source: rest, sourceResource: {path: /a}, target: bus, targetResource: {topic: t}}
`

// TestRuleRouting runs the controller in process with the router on
// HTTPS: placement by the node-selector annotation (and label changes),
// TLS, 413, 503 for a node that is not connected, counters batched into
// the status, a second rule on the same path reported, a bad rule's error
// and its recovery, and deletion. The edge's side is a subscriber on the
// node's down subject (runner/link's own test covers the real edge).
func TestRuleRouting(t *testing.T) {
	dir := t.TempDir()
	ca, err := hub.WriteDevCA(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	h := startHarness(t, Options{})
	h.stopCtrl() // the harness's controller has no router: start one with it
	bus := NewFleet(h.fleet, nil)
	h.ctrl, h.stopCtrl = h.startController(Options{RuleBus: bus, Router: RouterOptions{Addr: addr,
		CertFile: ca.CertFile, KeyFile: ca.KeyFile, MaxBodyBytes: 100}})
	h.edge("edge-a", map[string]string{"site": "a"}, nil)
	h.edge("edge-b", map[string]string{"site": "b"}, nil)

	// edge-a's router side: answers every request as a published message.
	var mu sync.Mutex
	var got []string
	sub, err := h.fleet.Conn().Subscribe(fleet.DownFilter("edge-a"), func(m *nats.Msg) {
		mu.Lock()
		got = append(got, m.Subject+" "+string(m.Data))
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		r.Header.Set(fleet.HeaderStatus, "200")
		m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	h.cluster.MustKubectl(t, ruleDocs, "apply", "-f", "-")
	mqtttest.WaitFor(t, "rule down on edge-a only", func() bool {
		_, a := h.get("edge-a", KindRule, "default", "down")
		_, b := h.get("edge-b", KindRule, "default", "down")
		return a && !b
	})

	pem, _ := os.ReadFile(ca.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	post := func(path, body string) (int, string) {
		resp, err := hc.Post("https://"+addr+path, "text/plain", strings.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mqtttest.WaitForErr(t, "the router serves rule down", func() error {
		if code, body := post("/edge-a/default/a", "one"); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := post("/edge-a/default/a", strings.Repeat("x", 101)); code != 413 {
		t.Errorf("101-byte body: %d %s", code, body)
	}
	if code, body := post("/edge-b/default/a", "x"); code != 503 {
		t.Errorf("edge-b (not connected for the router): %d %s", code, body)
	}
	if resp, err := http.Post("http://"+addr+"/edge-a/default/a", "text/plain", strings.NewReader("x")); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP on the TLS router: %d %s", resp.StatusCode, b)
		}
	}
	rule := func(name string) *rulesv1.Rule {
		var r rulesv1.Rule
		if err := h.client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &r); err != nil {
			t.Fatalf("get rule %s: %v", name, err)
		}
		return &r
	}
	mqtttest.WaitForErr(t, "rule down counts 1 success and 2 failures", func() error {
		if st := rule("down").Status; st.SuccessMessages != 1 || st.FailMessages != 2 || len(st.Errors) != 2 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	mu.Lock()
	if len(got) != 1 || got[0] != "eddy.down.edge-a.rule.default.down one" {
		t.Errorf("edge-a got %q", got)
	}
	mu.Unlock()

	// A second rule on the same path: reported; the first by name routes.
	h.cluster.MustKubectl(t, `apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: later, namespace: default}
spec: {source: rest, sourceResource: {path: /a}, target: bus, targetResource: {topic: t2}}
`, "apply", "-f", "-")
	mqtttest.WaitForErr(t, "the conflict in rule later's status", func() error {
		if errs := rule("later").Status.Errors; len(errs) == 0 || !strings.Contains(errs[len(errs)-1], "/a is already routed by rule default/down") {
			return fmt.Errorf("errors %q", errs)
		}
		return nil
	})
	// A bad rule (wildcard target topic) is not routed, and says why;
	// fixed, the error goes away.
	h.cluster.MustKubectl(t, "", "patch", "rule", "later", "--type=merge", `-p={"spec":{"sourceResource":{"path":"/b"},"targetResource":{"topic":"t/#"}}}`)
	mqtttest.WaitForErr(t, "rule later's compile error", func() error {
		if errs := rule("later").Status.Errors; len(errs) != 1 || !strings.Contains(errs[0], "spec.targetResource.topic") {
			return fmt.Errorf("errors %q", errs)
		}
		return nil
	})
	h.cluster.MustKubectl(t, "", "patch", "rule", "later", "--type=merge", `-p={"spec":{"targetResource":{"topic":"t2"}}}`)
	mqtttest.WaitForErr(t, "rule later routed", func() error {
		if errs := rule("later").Status.Errors; len(errs) != 0 {
			return fmt.Errorf("errors %q", errs)
		}
		if _, ok := h.get("edge-a", KindRule, "default", "later"); !ok {
			return fmt.Errorf("not on edge-a")
		}
		return nil
	})

	// Labels move rules; deletion removes them.
	h.cluster.MustKubectl(t, "", "label", "en", "edge-b", "site=a", "--overwrite")
	mqtttest.WaitFor(t, "rule down follows the label to edge-b", func() bool {
		_, ok := h.get("edge-b", KindRule, "default", "down")
		return ok
	})
	// A node that refuses the route (an older Eddy): the rule says so.
	h.edge("edge-c", map[string]string{"site": "a"}, func(e *fleet.Envelope) string {
		if e.Kind == fleet.KindRule {
			return `plan key "edge-c.rule.default.down": unknown kind "rule"`
		}
		return ""
	})
	mqtttest.WaitForErr(t, "edge-c's refusal in rule down's status", func() error {
		if errs := rule("down").Status.Errors; len(errs) == 0 || !strings.Contains(errs[len(errs)-1], "not routed: refused by node edge-c: plan key") {
			return fmt.Errorf("errors %q", errs)
		}
		return nil
	})
	if err := h.client.Delete(context.Background(), &rulesv1.Rule{ObjectMeta: rule("down").ObjectMeta}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "rule down removed from both nodes", func() bool {
		_, a := h.get("edge-a", KindRule, "default", "down")
		_, b := h.get("edge-b", KindRule, "default", "down")
		_, c := h.get("edge-c", KindRule, "default", "down")
		b = b || c
		var r rulesv1.Rule
		gone := h.client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "down"}, &r) != nil
		return !a && !b && gone
	})
}
