package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// TestEdgeNodeNotReadyAfterSilence: an EdgeNode turns Ready=False once its
// runner has been silent for NodeNotReadyAfter (a setting), `kubectl get
// en` shows it, and the next heartbeat makes it Ready again.
func TestEdgeNodeNotReadyAfterSilence(t *testing.T) {
	h := startHarness(t, Options{NodeNotReadyAfter: 2 * time.Second})
	beat := func() {
		t.Helper()
		now := time.Now()
		if err := h.fleet.PutNodeStatus(context.Background(), &fleet.NodeStatus{Node: "edge-q", Version: "sim",
			StartedAt: now, ReportedAt: now, HeartbeatInterval: fleet.Duration{Duration: 500 * time.Millisecond}}); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(want bool) {
		t.Helper()
		mqtttest.WaitForErr(t, fmt.Sprintf("EdgeNode edge-q Ready=%v", want), func() error {
			var n eddyv1alpha1.EdgeNode
			if err := h.client.Get(context.Background(), types.NamespacedName{Name: "edge-q"}, &n); err != nil {
				return err
			}
			if got := meta.IsStatusConditionTrue(n.Status.Conditions, string(eddyv1alpha1.Ready)); got != want {
				return fmt.Errorf("Ready=%v: %+v", got, n.Status.Conditions)
			}
			return nil
		})
	}
	// Heartbeats until the node is Ready, then silence.
	var silentSince time.Time
	mqtttest.WaitForErr(t, "EdgeNode edge-q Ready", func() error {
		beat()
		silentSince = time.Now() // the last heartbeat
		var n eddyv1alpha1.EdgeNode
		if err := h.client.Get(context.Background(), types.NamespacedName{Name: "edge-q"}, &n); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(n.Status.Conditions, string(eddyv1alpha1.Ready)) {
			return fmt.Errorf("conditions %+v", n.Status.Conditions)
		}
		return nil
	})
	ready(false)
	if d := time.Since(silentSince); d < 1800*time.Millisecond {
		t.Errorf("NotReady after %s of silence, before the configured 2s", d)
	}
	out, err := h.cluster.Kubectl("", "get", "en", "edge-q", "--no-headers")
	if err != nil || !strings.Contains(out, "False") {
		t.Errorf("kubectl get en does not show the node not ready: %v\n%s", err, out)
	}
	var n eddyv1alpha1.EdgeNode
	h.client.Get(context.Background(), types.NamespacedName{Name: "edge-q"}, &n)
	if c := meta.FindStatusCondition(n.Status.Conditions, string(eddyv1alpha1.Ready)); c == nil || c.Reason != "HeartbeatMissing" {
		t.Errorf("Ready condition %+v, want reason HeartbeatMissing", c)
	}
	// The next heartbeat: Ready again at once (not at the next periodic
	// refresh of the node's status, a minute later).
	beat()
	back := time.Now()
	ready(true)
	if d := time.Since(back); d > 10*time.Second {
		t.Errorf("Ready again only %s after the heartbeat", d)
	}
}
