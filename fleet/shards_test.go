package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
)

// TestPlanShards: a hub whose plans are split over 4 buckets; clients that
// were told nothing find each node's bucket, List sees every bucket, a
// node's watch sees its keys, and Setup refuses another count.
func TestPlanShards(t *testing.T) {
	h := startHub(t, hub.Config{Fleet: fleet.Options{PlanShards: 4}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := fleet.NewClient(connect(t, h.ClientURL()), fleet.Options{})
	if n, err := c.PlanShards(ctx); err != nil || n != 4 {
		t.Fatalf("PlanShards = %d, %v; want 4 (read from the hub)", n, err)
	}
	const nodes = 20
	used := map[string]bool{}
	for i := 0; i < nodes; i++ {
		node := fmt.Sprintf("edge-%d", i)
		if _, err := c.Put(ctx, pipelineObject(t, "30").Envelope(node, "", time.Now())); err != nil {
			t.Fatal(err)
		}
		used[fleet.PlansBucketFor(fleet.DefaultPlansBucket, node, 4)] = true
	}
	if len(used) < 2 {
		t.Fatalf("20 nodes all hashed to one bucket: %v", used)
	}
	all, err := c.List(ctx, "")
	if err != nil || len(all) != nodes {
		t.Fatalf("List(all) = %d entries, %v; want %d", len(all), err, nodes)
	}
	one, err := c.List(ctx, "edge-7")
	if err != nil || len(one) != 1 || one[0].Key.Node != "edge-7" {
		t.Fatalf("List(edge-7) = %+v, %v", one, err)
	}
	w, err := c.WatchPlans(ctx, "edge-7")
	if err != nil {
		t.Fatal(err)
	}
	if e := <-w.Updates(); e == nil || !strings.HasPrefix(e.Key(), "edge-7.") {
		t.Fatalf("edge-7's watch: %v", e)
	}
	w.Stop()
	// The key is in edge-7's bucket only.
	kv, _ := c.JetStream().KeyValue(ctx, fleet.PlansBucketFor(fleet.DefaultPlansBucket, "edge-7", 4))
	if _, err := kv.Get(ctx, "edge-7.pipeline.default.overheat"); err != nil {
		t.Fatalf("edge-7's key not in its bucket %s: %v", kv.Bucket(), err)
	}
	// Setup keeps the hub's count (0) and refuses another.
	if err := c.Setup(ctx); err != nil {
		t.Fatalf("Setup with PlanShards 0: %v", err)
	}
	other, _ := fleet.NewClient(connect(t, h.ClientURL()), fleet.Options{PlanShards: 2})
	if err := other.Setup(ctx); err == nil || !strings.Contains(err.Error(), "split over 4 buckets, not 2") {
		t.Fatalf("Setup with 2 shards on a 4-shard hub: %v", err)
	}
}
