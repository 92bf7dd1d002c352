package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/pipeline"
)

const pipelineYAML = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat}
spec:
  source: {mqtt: {topic: "t/#"}}
  steps:
    - filter: "temperature > %s"
  sinks:
    - log: {}
`

func startHub(t *testing.T, cfg hub.Config) *hub.Hub {
	t.Helper()
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:0"
	}
	if cfg.LeafAddr == "" {
		cfg.LeafAddr = "127.0.0.1:0"
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := fleet.Dial(context.Background(), url, fleet.DialOptions{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func pipelineObject(t *testing.T, threshold string) fleet.Object {
	t.Helper()
	objs, err := fleet.Load("p.yaml", []byte(strings.Replace(pipelineYAML, "%s", threshold, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("got %d objects", len(objs))
	}
	return objs[0]
}

func TestPutGetListDelete(t *testing.T) {
	h := startHub(t, hub.Config{})
	c, err := fleet.NewClient(connect(t, h.ClientURL()), fleet.Options{Writer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	obj := pipelineObject(t, "30")
	res, err := c.Put(ctx, obj.Envelope("edge-1", "", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Generation != 1 {
		t.Fatalf("first put: %+v, want changed generation 1", res)
	}
	// The same object again writes nothing.
	res2, err := c.Put(ctx, obj.Envelope("edge-1", "", time.Now()))
	if err != nil || res2.Changed || res2.Revision != res.Revision {
		t.Fatalf("same put: %+v %v, want unchanged at revision %d", res2, err, res.Revision)
	}
	// A changed object gets the next generation.
	res3, err := c.Put(ctx, pipelineObject(t, "40").Envelope("edge-1", "", time.Now()))
	if err != nil || !res3.Changed || res3.Generation != 2 {
		t.Fatalf("changed put: %+v %v, want generation 2", res3, err)
	}
	if _, err := c.Put(ctx, obj.Envelope("edge-2", "", time.Now())); err != nil {
		t.Fatal(err)
	}
	key := fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindPipeline, Namespace: "default", Name: "overheat"}
	env, _, err := c.Get(ctx, key)
	if err != nil || env.Writer != "test" || env.Generation != 2 {
		t.Fatalf("get: %+v %v", env, err)
	}
	list, err := c.List(ctx, "edge-1")
	if err != nil || len(list) != 1 || list[0].Key != key {
		t.Fatalf("list edge-1: %+v %v", list, err)
	}
	all, err := c.List(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("list all: %+v %v", all, err)
	}
	if err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("get after delete: %v, want not found", err)
	}
	// Re-creating after a delete starts again at generation 1.
	res4, err := c.Put(ctx, obj.Envelope("edge-1", "", time.Now()))
	if err != nil || !res4.Changed || res4.Generation != 1 {
		t.Fatalf("put after delete: %+v %v", res4, err)
	}
}

func TestPutRefusesHugeObject(t *testing.T) {
	h := startHub(t, hub.Config{})
	c, _ := fleet.NewClient(connect(t, h.ClientURL()), fleet.Options{})
	obj := pipelineObject(t, "30")
	env := obj.Envelope("edge-1", "", time.Now())
	env.Object = []byte(`{"pad":"` + strings.Repeat("x", fleet.MaxValueSize) + `"}`)
	res, err := c.Put(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("huge put: %+v %v, want a size error", res, err)
	}
}

func TestNodeStatusRoundTrip(t *testing.T) {
	h := startHub(t, hub.Config{})
	c, _ := fleet.NewClient(connect(t, h.ClientURL()), fleet.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := c.WatchNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"edge-1", "edge-2"} {
		st := &fleet.NodeStatus{Node: n, Labels: map[string]string{"site": n[5:]}, ReportedAt: time.Now()}
		if err := c.PutNodeStatus(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Node != "edge-1" {
		t.Fatalf("nodes: %+v %v", nodes, err)
	}
	sel, err := fleet.SelectNodes(nodes, "site=2")
	if err != nil || len(sel) != 1 || sel[0] != "edge-2" {
		t.Fatalf("select: %v %v", sel, err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case st := <-watch:
			got[st.Node] = true
		case <-ctx.Done():
			t.Fatalf("watch saw only %v", got)
		}
	}
}

func TestDecodeEnvelopeRefusesMalformed(t *testing.T) {
	good := pipelineObject(t, "30").Envelope("edge-1", "x", time.Now())
	b, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	key := good.Key().String()
	if _, err := fleet.DecodeEnvelope(key, b); err != nil {
		t.Fatalf("good envelope: %v", err)
	}
	for name, tc := range map[string]struct {
		key, val, want string
	}{
		"not json":       {key, "apiVersion: x", "not an Eddy envelope"},
		"wrong node":     {"edge-2.pipeline.default.overheat", string(b), "not for its key"},
		"bad key":        {"edge-1.secret.default.x", string(b), "unknown kind"},
		"newer format":   {key, strings.Replace(string(b), `"format":1`, `"format":9`, 1), "upgrade this node"},
		"empty object":   {key, strings.Replace(string(b), `"object":{`, `"object":null,"x":{`, 1), "object is empty"},
		"too big":        {key, strings.Repeat(" ", fleet.MaxValueSize+1), "over the"},
		"key with dots":  {"edge-1.pipeline.default", string(b), "want <node>"},
		"uppercase node": {"Edge.pipeline.default.overheat", string(b), "DNS label"},
	} {
		_, err := fleet.DecodeEnvelope(tc.key, []byte(tc.val))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add("edge-1.pipeline.default.a", []byte(`{"format":1,"kind":"Pipeline","namespace":"default","name":"a","node":"edge-1","hash":"h","object":{}}`))
	f.Add("x", []byte("{"))
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		env, err := fleet.DecodeEnvelope(key, val)
		if err == nil && env.Key().String() != key {
			t.Fatalf("accepted %q for key %q", env.Key(), key)
		}
	})
}

func TestMatchSelector(t *testing.T) {
	labels := map[string]string{"site": "a", "tier": "edge"}
	for _, tc := range []struct {
		sel  *pipeline.LabelSelector
		want bool
	}{
		{nil, false},
		{&pipeline.LabelSelector{MatchLabels: map[string]string{"site": "a"}}, true},
		{&pipeline.LabelSelector{MatchLabels: map[string]string{"site": "b"}}, false},
		{&pipeline.LabelSelector{MatchExpressions: []pipeline.LabelSelectorRequirement{{Key: "site", Operator: "In", Values: []string{"a", "b"}}}}, true},
		{&pipeline.LabelSelector{MatchExpressions: []pipeline.LabelSelectorRequirement{{Key: "site", Operator: "NotIn", Values: []string{"a"}}}}, false},
		{&pipeline.LabelSelector{MatchExpressions: []pipeline.LabelSelectorRequirement{{Key: "gpu", Operator: "DoesNotExist"}}}, true},
		{&pipeline.LabelSelector{MatchExpressions: []pipeline.LabelSelectorRequirement{{Key: "gpu", Operator: "Exists"}}}, false},
	} {
		got, err := fleet.MatchSelector(tc.sel, labels)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %v %v, want %v", tc.sel, got, err, tc.want)
		}
	}
	if _, err := fleet.MatchSelector(&pipeline.LabelSelector{MatchExpressions: []pipeline.LabelSelectorRequirement{{Key: "x", Operator: "Gt"}}}, labels); err == nil {
		t.Error("unknown operator accepted")
	}
}

func TestNodeStatusStale(t *testing.T) {
	now := time.Now()
	st := fleet.NodeStatus{ReportedAt: now.Add(-14 * time.Second), HeartbeatInterval: pipeline.D(5 * time.Second)}
	if st.Stale(now) {
		t.Error("a record 14s old with a 5s heartbeat is stale")
	}
	st.ReportedAt = now.Add(-16 * time.Second)
	if !st.Stale(now) {
		t.Error("a record 16s old with a 5s heartbeat is not stale")
	}
	st.HeartbeatInterval = pipeline.D(0) // an old writer: the default applies
	if !st.Stale(now) {
		t.Error("default heartbeat not applied")
	}
}
