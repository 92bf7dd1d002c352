package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline/rules"
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
	// edge-b is not placed (site=b): even a node that answers on its down
	// subject (a stale or compromised edge) gets nothing.
	var toB []string
	subB, err := h.fleet.Conn().Subscribe(fleet.DownFilter("edge-b"), func(m *nats.Msg) {
		mu.Lock()
		toB = append(toB, string(m.Data))
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		r.Header.Set(fleet.HeaderStatus, "200")
		m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.fleet.Conn().Flush()
	if code, body := post("/edge-b/default/a", "secret"); code != 404 || !strings.Contains(body, "rule default/down is not placed on node edge-b (it is placed on the EdgeNodes matching site=a); nothing was sent") {
		t.Errorf("edge-b (not placed): %d %s, want 404", code, body)
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
	if len(toB) != 0 {
		t.Errorf("edge-b, where the rule is not placed, got %q", toB)
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
	if code, body := post("/edge-b/default/a", "now placed"); code != 200 {
		t.Errorf("edge-b once placed: %d %s", code, body)
	}
	subB.Unsubscribe()
	h.fleet.Conn().Flush()
	if code, body := post("/edge-b/default/a", "x"); code != 503 || !strings.Contains(body, "not connected") {
		t.Errorf("edge-b placed but not connected: %d %s, want 503", code, body)
	}
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

// TestRuleMessagesOnlyFromPlacedNodes runs the router on a hub with real
// credentials and the node permissions `eddy hub` gives edges: edge-b,
// which eventbus->rest rule "up" is not placed on, forwards a message
// naming it on its own subject (all its permissions allow) and nothing is
// POSTed: the message counts as failed with edge-b named in the rule's
// errors. edge-b cannot publish on edge-a's subject at all, and edge-a,
// where the rule is placed, still delivers (once, however often its
// message names the rule). A label change places the
// rule on edge-b, and then its messages are delivered too.
func TestRuleMessagesOnlyFromPlacedNodes(t *testing.T) {
	creds := &hub.Credentials{BcryptCost: bcrypt.MinCost}
	adminPW, _ := creds.Set("eddy-controller", false)
	pw := map[string]string{}
	for _, n := range []string{"edge-a", "edge-b"} {
		pw[n], _ = creds.Set(n, true)
	}
	hb, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hb.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hb.Close() })
	connect := func(user, password string) *nats.Conn {
		nc, err := fleet.Dial(context.Background(), hb.ClientURL(), fleet.DialOptions{}, nats.UserInfo(user, password),
			nats.CustomInboxPrefix(fleet.InboxPrefix(user)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("connecting as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	admin, err := fleet.NewClient(connect("eddy-controller", adminPW), fleet.Options{Writer: "eddy-controller"})
	if err != nil {
		t.Fatal(err)
	}
	cl := k8stest.Start(t, k8stest.Options{})
	t.Cleanup(cl.Stop)
	h := harnessWith(t, cl, nil, admin, Options{})
	h.stopCtrl()
	h.ctrl, h.stopCtrl = h.startController(Options{RuleBus: NewFleet(admin, nil), Router: RouterOptions{Attempts: 1}})
	h.edge("edge-a", map[string]string{"site": "a"}, nil)
	h.edge("edge-b", map[string]string{"site": "b"}, nil)

	var mu sync.Mutex
	var posted []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, r.Header.Get("Eddy-Node")+" "+string(b))
		mu.Unlock()
	}))
	defer target.Close()
	h.cluster.MustKubectl(t, fmt.Sprintf(`apiVersion: rules.kubeedge.io/v1
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
  name: up
  namespace: default
  annotations: {rules.eddy.dev/node-selector: site=a}
spec: {source: bus, sourceResource: {topic: telemetry}, target: rest, targetResource: {resource: "%s/in"}}
`, target.URL), "apply", "-f", "-")
	mqtttest.WaitFor(t, "rule up on edge-a only", func() bool {
		_, a := h.get("edge-a", KindRule, "default", "up")
		_, b := h.get("edge-b", KindRule, "default", "up")
		return a && !b
	})

	// forward publishes what runner/link's outbox publishes for a WAL
	// record matching eventbus->rest rules, as node `as`, on node's
	// subject.
	forward := func(as *nats.Conn, node, body string, ruleNames ...string) error {
		if len(ruleNames) == 0 {
			ruleNames = []string{"default/up"}
		}
		js, err := jetstream.New(as)
		if err != nil {
			return err
		}
		m := nats.NewMsg(fleet.DefaultUpPrefix + "." + node + "." + fleet.RulesSubject)
		m.Header.Set(fleet.HeaderRules, strings.Join(ruleNames, ","))
		m.Header.Set("Eddy-Topic", "default/telemetry")
		m.Data = []byte(body)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = js.PublishMsg(ctx, m)
		return err
	}
	edgeA, edgeB := connect("edge-a", pw["edge-a"]), connect("edge-b", pw["edge-b"])
	if err := forward(edgeB, "edge-a", "forged"); err == nil {
		t.Fatal("edge-b published on edge-a's subject: the hub must refuse it")
	}
	if err := forward(edgeB, "edge-b", "from-b"); err != nil {
		t.Fatalf("edge-b forwarding on its own subject: %v", err)
	}
	// The rule named three times (a node's header is its word): one POST.
	if err := forward(edgeA, "edge-a", "from-a", "default/up", "default/up", "default/up"); err != nil {
		t.Fatalf("edge-a forwarding: %v", err)
	}
	rule := func() rulesv1.RuleStatus {
		var r rulesv1.Rule
		if err := h.client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "up"}, &r); err != nil {
			t.Fatalf("get rule up: %v", err)
		}
		return r.Status
	}
	mqtttest.WaitForErr(t, "rule up counts edge-a's message delivered and edge-b's refused", func() error {
		st := rule()
		if st.SuccessMessages != 1 || st.FailMessages != 1 || len(st.Errors) != 1 ||
			!strings.Contains(st.Errors[0], "dropped messages from node edge-b: the rule is not placed on that node (it is placed on the EdgeNodes matching site=a)") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	mu.Lock()
	if len(posted) != 1 || posted[0] != "edge-a from-a" {
		t.Errorf("POSTed %q, want only [edge-a from-a]", posted)
	}
	mu.Unlock()

	// Placed on edge-b by a label: its messages go through.
	h.cluster.MustKubectl(t, "", "label", "en", "edge-b", "site=a", "--overwrite")
	mqtttest.WaitFor(t, "rule up follows the label to edge-b", func() bool {
		_, ok := h.get("edge-b", KindRule, "default", "up")
		return ok
	})
	if err := forward(edgeB, "edge-b", "from-b-placed"); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitForErr(t, "edge-b's message delivered once it is placed", func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(posted, "edge-b from-b-placed") {
			return fmt.Errorf("POSTed %q", posted)
		}
		return nil
	})
	mqtttest.WaitForErr(t, "rule up counts 2 delivered, 1 refused", func() error {
		if st := rule(); st.SuccessMessages != 2 || st.FailMessages != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

// TestRulePlacement checks placeRule and its description against the
// three ways a Rule is placed.
func TestRulePlacement(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		route       rules.Route
		node        string
		schedulable bool
		labels      labels.Set
		want        bool
		where       string
	}{
		{"node_name", nil, rules.Route{Pair: rules.EventBusToRest, NodeName: "edge-1"}, "edge-1", false, nil, true, "nodes edge-1"},
		{"node_name, other node", nil, rules.Route{Pair: rules.EventBusToRest, NodeName: "edge-1"}, "edge-2", true, nil, false, "nodes edge-1"},
		{"node-names", map[string]string{rules.AnnotationNodeNames: "edge-2, edge-3"}, rules.Route{Pair: rules.EventBusToRest, NodeName: "edge-1"}, "edge-3", false, nil, true, "nodes edge-1, edge-2, edge-3"},
		{"selector", map[string]string{rules.AnnotationNodeSelector: "site=a"}, rules.Route{Pair: rules.EventBusToRest}, "edge-9", true, labels.Set{"site": "a"}, true, "the EdgeNodes matching site=a"},
		{"selector, unschedulable", map[string]string{rules.AnnotationNodeSelector: "site=a"}, rules.Route{Pair: rules.EventBusToRest}, "edge-9", false, labels.Set{"site": "a"}, false, "the EdgeNodes matching site=a"},
		{"rest, every node", nil, rules.Route{Pair: rules.RestToEventBus}, "edge-9", true, nil, true, "every EdgeNode"},
		{"rest, not an EdgeNode", nil, rules.Route{Pair: rules.RestToEventBus}, "edge-9", false, nil, false, "every EdgeNode"},
		{"rest, named", map[string]string{rules.AnnotationNodeNames: "edge-1"}, rules.Route{Pair: rules.RestToServiceBus}, "edge-9", true, nil, false, "nodes edge-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rulesv1.Rule{}
			r.Annotations = tc.annotations
			p, err := placeRule(r, &tc.route)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.has(tc.node, tc.schedulable, tc.labels); got != tc.want {
				t.Errorf("placed on %s: %v, want %v", tc.node, got, tc.want)
			}
			if got := p.String(); got != tc.where {
				t.Errorf("placed on %q, want %q", got, tc.where)
			}
		})
	}
	r := &rulesv1.Rule{}
	r.Annotations = map[string]string{rules.AnnotationNodeSelector: "site in (a"}
	if _, err := placeRule(r, &rules.Route{Pair: rules.EventBusToRest}); err == nil || !strings.Contains(err.Error(), "metadata.annotations[rules.eddy.dev/node-selector]") {
		t.Errorf("a bad selector: %v", err)
	}
}

// BenchmarkPlacedOn is the router's check per forwarded message: is the
// node one of the rule's nodes (10,000 EdgeNodes, a selector rule).
func BenchmarkPlacedOn(b *testing.B) {
	sel, _ := labels.Parse("site=a")
	ix := &routeIndex{placed: map[string]rulePlacement{"default/up": {names: map[string]bool{"edge-0": true}, sel: sel}},
		nodes: map[string]labels.Set{}}
	for i := range 10_000 {
		site := "a"
		if i%2 == 1 {
			site = "b"
		}
		ix.nodes[fmt.Sprintf("edge-%d", i)] = labels.Set{"site": site, "tier": "x"}
	}
	rt := &router{}
	ctx := context.Background()
	for _, tc := range []struct{ name, node string }{{"placed", "edge-42"}, {"not-placed", "edge-43"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			want := tc.name == "placed"
			for b.Loop() {
				if ok, _ := rt.placedOn(ctx, ix, "default/up", tc.node); ok != want {
					b.Fatalf("placed %v", ok)
				}
			}
		})
	}
}

// TestPlacementMayChange: the router rebuilds its table for what can move
// or change a route, not for counter writes or heartbeats.
func TestPlacementMayChange(t *testing.T) {
	rule := &rulesv1.Rule{Spec: rulesv1.RuleSpec{Source: "bus", Target: "rest"}}
	counted := rule.DeepCopy()
	counted.Status.SuccessMessages = 10
	counted.Generation = 7
	moved := rule.DeepCopy()
	moved.Annotations = map[string]string{rules.AnnotationNodeSelector: "site=a"}
	edited := rule.DeepCopy()
	edited.Spec.Target = "other"
	en := &eddyv1alpha1.EdgeNode{}
	beat := en.DeepCopy()
	beat.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}}
	relabelled := en.DeepCopy()
	relabelled.Labels = map[string]string{"site": "a"}
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"rule counters", rule, counted, false},
		{"rule annotation", rule, moved, true},
		{"rule spec", rule, edited, true},
		{"endpoint", &rulesv1.RuleEndpoint{}, &rulesv1.RuleEndpoint{}, true},
		{"edge node heartbeat", en, beat, false},
		{"edge node labels", en, relabelled, true},
	} {
		if got := placementMayChange(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
