package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// harness is one API server, one controller and in-memory fleet parts.
type harness struct {
	t        *testing.T
	cluster  *k8stest.Cluster
	ctrl     *Controller
	stopCtrl func()
	// ctrlConfig, when set, is what controllers started later use to
	// reach the API server (e.g. impersonating a service account).
	ctrlConfig *rest.Config
	client     client.Client
	fleet      *fleet.Client
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startHarness(t *testing.T, opts Options) *harness {
	return startHarnessOn(t, k8stest.Options{}, opts)
}

func startHarnessOn(t *testing.T, ko k8stest.Options, opts Options) *harness {
	t.Helper()
	cl := k8stest.Start(t, ko)
	t.Cleanup(cl.Stop)
	return harnessOn(t, cl, nil, opts)
}

// harnessOn starts a hub and a controller (reaching the API server with
// ctrlCfg, or as admin when nil) on a running cluster.
func harnessOn(t *testing.T, cl *k8stest.Cluster, ctrlCfg *rest.Config, opts Options) *harness {
	t.Helper()
	_, fc := startHub(t)
	return harnessWith(t, cl, ctrlCfg, fc, opts)
}

// harnessWith starts a controller on a running cluster and hub (fc
// reaches the hub as an administrator).
func harnessWith(t *testing.T, cl *k8stest.Cluster, ctrlCfg *rest.Config, fc *fleet.Client, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, cluster: cl, fleet: fc, ctrlConfig: ctrlCfg}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { h.cancel(); h.wg.Wait() })
	h.ctrl, h.stopCtrl = h.startController(opts)
	sch := Scheme()
	if err := apiextensionsv1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	var err error
	h.client, err = client.New(cl.Config, client.Options{Scheme: sch})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startController starts one more controller replica on the harness's
// cluster and hub; stop stops it and waits for it.
func (h *harness) startController(opts Options) (c *Controller, stop func()) {
	h.t.Helper()
	if testing.Verbose() && opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = 100 * time.Millisecond
	}
	store := NewFleet(h.fleet, nil)
	cfg := h.cluster.Config
	if h.ctrlConfig != nil {
		cfg = h.ctrlConfig
	}
	c, err := New(cfg, store, store, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Start(ctx); err != nil {
			h.t.Errorf("controller stopped: %v", err)
		}
	}()
	return c, func() { cancel(); <-done }
}

func (h *harness) edge(name string, labels map[string]string, fail func(*fleet.Envelope) string) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		simEdge(h.ctx, h.fleet, name, labels, fail)
	}()
}

func (h *harness) get(node string, k ObjectKind, ns, name string) (*fleet.Envelope, bool) {
	return get(h.fleet, node, k, ns, name)
}

func (h *harness) pipeline(name string) *eddyv1alpha1.Pipeline {
	var p eddyv1alpha1.Pipeline
	if err := h.client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &p); err != nil {
		h.t.Fatalf("get pipeline %s: %v", name, err)
	}
	return &p
}

// waitCond waits until the pipeline's condition t has status want for the
// current generation, returning the pipeline.
func (h *harness) waitCond(name string, t eddyv1alpha1.ConditionType, want bool) *eddyv1alpha1.Pipeline {
	h.t.Helper()
	var p *eddyv1alpha1.Pipeline
	mqtttest.WaitForErr(h.t, fmt.Sprintf("pipeline %s %s=%v", name, t, want), func() error {
		p = h.pipeline(name)
		c := meta.FindStatusCondition(p.Status.Conditions, string(t))
		if c == nil {
			return fmt.Errorf("no %s condition; status %+v", t, p.Status)
		}
		if (c.Status == "True") != want || c.ObservedGeneration != p.Generation || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("%s=%s (gen %d, observed %d): %s", t, c.Status, p.Generation, c.ObservedGeneration, c.Message)
		}
		return nil
	})
	return p
}

const overheat = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata:
  name: overheat
  namespace: default
spec:
  nodeSelector:
    matchLabels: {site: plant-a}
  source:
    mqtt: {topic: "sensors/+/temp"}
  steps:
  - filter: "temperature > THRESHOLD"
  - alert:
      when: "temperature > THRESHOLD"
      severity: critical
  sinks:
  - mqtt: {topic: "alerts/overheat"}
`

func overheatYAML(threshold string) string {
	return strings.ReplaceAll(overheat, "THRESHOLD", threshold)
}

// TestPipelineLifecycle: kubectl apply → plans on the selected nodes only,
// Compiled/Delivered/Running True with counters; an edit → new version,
// observedGeneration follows; a bad expression → Compiled=False with the
// field path and no node touched; delete → plans removed.
func TestPipelineLifecycle(t *testing.T) {
	h := startHarness(t, Options{})
	h.edge("edge-a1", map[string]string{"site": "plant-a"}, nil)
	h.edge("edge-a2", map[string]string{"site": "plant-a"}, nil)
	h.edge("edge-b1", map[string]string{"site": "plant-b"}, nil)
	mqtttest.WaitForErr(t, "three EdgeNodes registered and Ready", func() error {
		out, err := h.cluster.Kubectl("", "get", "en", "--no-headers")
		if err != nil {
			return err
		}
		if strings.Count(out, "True") != 3 {
			return fmt.Errorf("kubectl get en:\n%s", out)
		}
		return nil
	})

	h.cluster.MustKubectl(t, overheatYAML("80"), "apply", "-f", "-")
	p := h.waitCond("overheat", eddyv1alpha1.Running, true)
	if p.Status.Nodes != "2/2" || p.Status.MessagesIn == 0 || p.Status.AlertsFiring != 2 {
		t.Errorf("status after apply: nodes %q, in %d, alerts %d; want 2/2, >0, 2", p.Status.Nodes, p.Status.MessagesIn, p.Status.AlertsFiring)
	}
	for _, c := range []eddyv1alpha1.ConditionType{eddyv1alpha1.Compiled, eddyv1alpha1.Delivered} {
		if !meta.IsStatusConditionTrue(p.Status.Conditions, string(c)) {
			t.Errorf("%s not True: %+v", c, p.Status.Conditions)
		}
	}
	if _, ok := h.get("edge-b1", KindPipeline, "default", "overheat"); ok {
		t.Errorf("edge-b1 (site=plant-b) got the plan")
	}
	first, _ := h.get("edge-a1", KindPipeline, "default", "overheat")
	if first == nil || first.Generation != 1 || first.Hash != p.Status.Hash {
		t.Fatalf("edge-a1 holds %+v; want generation 1, hash %s", first, p.Status.Hash)
	}
	out := h.cluster.MustKubectl(t, "", "get", "pl", "overheat")
	if !strings.Contains(out, "2/2") {
		t.Errorf("kubectl get pl shows no 2/2:\n%s", out)
	}

	// Edit: a new generation reaches both nodes.
	h.cluster.MustKubectl(t, overheatYAML("90"), "apply", "-f", "-")
	p = h.waitCond("overheat", eddyv1alpha1.Running, true)
	if p.Generation != 2 || p.Status.Hash == first.Hash {
		t.Errorf("after edit: generation %d hash %s (was %s)", p.Generation, p.Status.Hash, first.Hash)
	}
	if o, _ := h.get("edge-a2", KindPipeline, "default", "overheat"); o == nil || o.Generation != 2 {
		t.Errorf("edge-a2 holds %+v, want generation 2", o)
	}

	// A bad expression: Compiled=False naming the field, nodes untouched.
	puts := h.ctrl.PlanWrites()
	h.cluster.MustKubectl(t, overheatYAML("90 +* nope"), "apply", "-f", "-")
	p = h.waitCond("overheat", eddyv1alpha1.Compiled, false)
	msg := meta.FindStatusCondition(p.Status.Conditions, string(eddyv1alpha1.Compiled)).Message
	if !strings.Contains(msg, "spec.steps[0].filter") {
		t.Errorf("compile error does not name the field: %q", msg)
	}
	if h.ctrl.PlanWrites() != puts {
		t.Errorf("a spec that does not compile was written to nodes")
	}
	if o, _ := h.get("edge-a1", KindPipeline, "default", "overheat"); o == nil || o.Generation != 2 {
		t.Errorf("edge-a1 holds %+v after a bad edit, want the last good generation 2", o)
	}

	// Relabel: a node moved into the selector gets the plan, one moved
	// out loses it.
	h.cluster.MustKubectl(t, overheatYAML("95"), "apply", "-f", "-")
	h.cluster.MustKubectl(t, "", "label", "en", "edge-b1", "site=plant-a", "--overwrite")
	h.cluster.MustKubectl(t, "", "label", "en", "edge-a2", "site=plant-c", "--overwrite")
	mqtttest.WaitForErr(t, "plan follows the labels", func() error {
		_, b1 := h.get("edge-b1", KindPipeline, "default", "overheat")
		_, a2 := h.get("edge-a2", KindPipeline, "default", "overheat")
		if !b1 || a2 {
			return fmt.Errorf("edge-b1 holds: %v (want true), edge-a2 holds: %v (want false)", b1, a2)
		}
		return nil
	})
	h.waitCond("overheat", eddyv1alpha1.Running, true)

	h.cluster.MustKubectl(t, "", "delete", "pl", "overheat", "--wait=true", "--timeout=30s")
	for _, n := range []string{"edge-a1", "edge-a2", "edge-b1"} {
		if _, ok := h.get(n, KindPipeline, "default", "overheat"); ok {
			t.Errorf("%s still holds the deleted pipeline", n)
		}
	}
}

// TestRunningReportsFailure: a node that cannot apply the plan turns
// Running False with the node and its error in the message.
func TestRunningReportsFailure(t *testing.T) {
	h := startHarness(t, Options{})
	h.edge("edge-ok", map[string]string{"site": "plant-a"}, nil)
	h.edge("edge-bad", map[string]string{"site": "plant-a"}, func(*fleet.Envelope) string { return "open /data/wal: read-only file system" })
	h.cluster.MustKubectl(t, overheatYAML("80"), "apply", "-f", "-")
	var msg string
	mqtttest.WaitForErr(t, "Running=False naming edge-bad", func() error {
		p := h.pipeline("overheat")
		c := meta.FindStatusCondition(p.Status.Conditions, string(eddyv1alpha1.Running))
		if c == nil || c.Status != "False" || !strings.Contains(c.Message, "edge-bad: failed: open /data/wal") {
			return fmt.Errorf("Running: %+v", c)
		}
		msg = c.Message
		if p.Status.Nodes != "1/2" {
			return fmt.Errorf("nodes %q, want 1/2", p.Status.Nodes)
		}
		return nil
	})
	t.Log(msg)
}

// TestLeaderChangeResendsNothing: a standby takes over when the leader
// stops, writes no plan that is already current, keeps the status, and
// ships the next edit.
func TestLeaderChangeResendsNothing(t *testing.T) {
	le := Options{LeaderElection: true, LeaderElectionNamespace: "default", LeaderElectionID: "eddy-test"}
	h := startHarness(t, le)
	h.edge("edge-a1", map[string]string{"site": "plant-a"}, nil)
	h.edge("edge-a2", map[string]string{"site": "plant-a"}, nil)
	h.cluster.MustKubectl(t, overheatYAML("80"), "apply", "-f", "-")
	h.waitCond("overheat", eddyv1alpha1.Running, true)
	before, _ := h.get("edge-a1", KindPipeline, "default", "overheat")

	standby, stopStandby := h.startController(le)
	defer stopStandby()
	select {
	case <-standby.Elected():
		t.Fatal("the standby was elected while the leader runs")
	case <-time.After(3 * time.Second):
	}
	h.stopCtrl()
	mqtttest.WaitFor(t, "the standby becomes leader", func() bool {
		select {
		case <-standby.Elected():
			return true
		default:
			return false
		}
	})
	// Let the new leader reconcile everything (a few status intervals),
	// then check it wrote no plan: they were all current.
	mqtttest.WaitForErr(t, "the new leader reconciles", func() error {
		if standby.StatusWrites()+standby.reconciles.Load() == 0 {
			return fmt.Errorf("no reconcile yet")
		}
		return nil
	})
	time.Sleep(time.Second) // a quiet period: nothing may be written in it
	if n := standby.PlanWrites(); n != 0 {
		t.Errorf("the new leader re-sent %d plans that were current", n)
	}
	after, _ := h.get("edge-a1", KindPipeline, "default", "overheat")
	if !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("edge-a1's plan was rewritten: %v -> %v", before.UpdatedAt, after.UpdatedAt)
	}
	h.waitCond("overheat", eddyv1alpha1.Running, true)

	h.cluster.MustKubectl(t, overheatYAML("85"), "apply", "-f", "-")
	p := h.waitCond("overheat", eddyv1alpha1.Running, true)
	if p.Generation != 2 || standby.PlanWrites() != 2 {
		t.Errorf("after an edit under the new leader: generation %d, plan writes %d; want 2, 2", p.Generation, standby.PlanWrites())
	}
}

// TestRBACIsEnough applies deploy/controller (the kustomization users
// apply: CRDs, namespace, service account, least-privilege roles, hub and
// controller workloads) with kubectl, then runs the controller as its
// service account, with leader election in eddy-system: a pipeline and a
// device go through their whole life without a permission error.
func TestRBACIsEnough(t *testing.T) {
	ko := k8stest.Options{CRDDirs: []string{filepath.Join(k8stest.CRDDir(), "kubeedge")}}
	cl := k8stest.Start(t, ko)
	t.Cleanup(cl.Stop)
	cl.MustKubectl(t, "", "apply", "-k", filepath.Join(k8stest.RepoDir(), "deploy", "controller"))
	sa := rest.CopyConfig(cl.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:eddy-system:eddy-controller"}
	h := harnessOn(t, cl, sa, Options{LeaderElection: true, LeaderElectionNamespace: "eddy-system"})
	h.edge("edge-1", map[string]string{"site": "plant-a"}, nil)
	h.cluster.MustKubectl(t, overheatYAML("80"), "apply", "-f", "-")
	h.waitCond("overheat", eddyv1alpha1.Running, true)
	h.cluster.MustKubectl(t, thermostatYAML(t, "edge-1"), "apply", "-f", "-")
	mqtttest.WaitForErr(t, "device delivered", func() error {
		d := h.device("thermostat-1")
		if !meta.IsStatusConditionTrue(d.Status.Conditions, string(eddyv1alpha1.Delivered)) {
			return fmt.Errorf("conditions %+v", d.Status.Conditions)
		}
		return nil
	})
	// A Rule: read with its endpoints, finalizer and status by patch.
	h.cluster.MustKubectl(t, strings.ReplaceAll(ruleDocs, "site=a", "site=plant-a"), "apply", "-f", "-")
	mqtttest.WaitFor(t, "rule down shipped to edge-1", func() bool {
		_, ok := h.get("edge-1", KindRule, "default", "down")
		return ok
	})
	h.cluster.MustKubectl(t, "", "delete", "pl", "overheat", "--wait=true", "--timeout=30s")
	h.cluster.MustKubectl(t, "", "delete", "device", "thermostat-1", "--wait=true", "--timeout=30s")
	h.cluster.MustKubectl(t, "", "delete", "rule", "down", "--wait=true", "--timeout=30s")
	if out, _ := h.cluster.Kubectl("", "auth", "can-i", "delete", "pipelines", "--as", sa.Impersonate.UserName); !strings.HasPrefix(out, "no") {
		t.Errorf("the controller may delete pipelines (%q): more than it needs", out)
	}
}
