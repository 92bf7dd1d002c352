package controller

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
)

// startHub runs a real embedded NATS hub with JetStream (fleet/hub, what
// `eddy hub` runs) and returns a fleet client connected to it.
func startHub(t testing.TB) (*hub.Hub, *fleet.Client) {
	t.Helper()
	h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nc, err := fleet.Dial(context.Background(), h.ClientURL(), fleet.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := fleet.NewClient(nc, fleet.Options{Writer: "eddy-controller"})
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

// get returns what node holds for one object in the hub's plans bucket.
func get(c *fleet.Client, node string, k ObjectKind, ns, name string) (*fleet.Envelope, bool) {
	env, _, err := c.Get(context.Background(), fleet.ObjectKey{Node: node, Kind: k, Namespace: ns, Name: name})
	if err != nil {
		return nil, false
	}
	return env, true
}

// simEdge plays one edge runner over NATS with the fleet contract: every
// 50ms it lists its plans and writes its status record, reporting each
// object Running (pipelines, with growing counters) or Applied, or Failed
// when fail says so.
func simEdge(ctx context.Context, c *fleet.Client, name string, labels map[string]string, fail func(*fleet.Envelope) string) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	started := time.Now()
	var in uint64
	for {
		entries, err := c.List(ctx, name)
		if err != nil && ctx.Err() != nil {
			return
		}
		st := &fleet.NodeStatus{Node: name, Labels: labels, Version: "sim", StartedAt: started,
			ReportedAt: time.Now(), HeartbeatInterval: fleet.Duration{Duration: 50 * time.Millisecond}}
		for _, e := range entries {
			if e.Envelope == nil {
				continue
			}
			in += 10
			os := fleet.ObjectStatus{Key: e.Key.String(), Kind: e.Key.Kind, Namespace: e.Key.Namespace, Name: e.Key.Name,
				Generation: e.Envelope.Generation, Hash: e.Envelope.Hash, Revision: e.Revision, State: fleet.StateApplied}
			if e.Key.Kind == fleet.KindPipeline {
				os.State = fleet.StateRunning
				os.Pipeline = &fleet.PipelineCounters{In: in, Out: in / 2, Alerts: 1}
			}
			if fail != nil {
				if msg := fail(e.Envelope); msg != "" {
					os.State, os.Error = fleet.StateFailed, msg
				}
			}
			st.Objects = append(st.Objects, os)
		}
		if err := c.PutNodeStatus(ctx, st); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			panic(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publishTwin forwards one twin report as an edge's outbox does
// (eddy.up.<node>.twin, a twin stream record).
func publishTwin(t testing.TB, c *fleet.Client, node, device, prop string, actual any) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"device": device, "property": prop, "actual": actual,
		"source": "edge", "timestamp": time.Now().UnixMilli()})
	if _, err := c.JetStream().Publish(context.Background(), c.Options().UpSubject(node, "twin"), b); err != nil {
		t.Fatal(err)
	}
}
