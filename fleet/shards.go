package fleet

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Plan shards. Every edge watches its own keys (<node>.>) of the plans
// bucket with one consumer. nats-server finds a wildcard consumer's next
// message by walking the stream's block linearly once the block holds
// many subjects (filestore firstMatching: the walk is chosen when the
// block's subject count × 4 exceeds the range), under the block's lock.
// A fan-out of one object to N nodes writes N keys, and each of the N
// consumers then walks the messages written after its own: O(N²) work
// under one lock, which also delays the writes (measured at 10,000 nodes:
// 47% of the hub's CPU in firstMatching, KV writes timing out at 5 s).
// Spreading the nodes over S buckets (S streams, S locks) divides that by
// S² per bucket and lets the buckets work in parallel.
//
// The shard count is a fact of the hub: Setup records it in the metadata
// of the first plans bucket's stream, and every client (edges included)
// reads it from there on first use, so edges need no setting.

// PlanShardsMetadata is the metadata key, on the stream of the first
// plans bucket, that holds the number of plan buckets.
const PlanShardsMetadata = "eddy.dev/plan-shards"

// PlansBucketFor returns the plans bucket that holds node's keys in a
// fleet whose plans are split over shards buckets: base itself for shard 0
// (and for an unsharded fleet), base_<i> for shard i. The shard is the
// FNV-1a hash of the node name modulo shards.
func PlansBucketFor(base, node string, shards int) string {
	if shards <= 1 {
		return base
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return shardBucket(base, int(h.Sum32()%uint32(shards)))
}

// PlanBuckets lists every plans bucket of a fleet with shards buckets.
func PlanBuckets(base string, shards int) []string {
	out := []string{base}
	for i := 1; i < shards; i++ {
		out = append(out, shardBucket(base, i))
	}
	return out
}

func shardBucket(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "_" + strconv.Itoa(i)
}

// PlanShards returns how many buckets the hub's plans are split over (1
// for a hub set up without shards). It is read from the hub once and
// remembered.
func (c *Client) PlanShards(ctx context.Context) (int, error) {
	c.shardsMu.Lock()
	defer c.shardsMu.Unlock()
	if c.shards > 0 {
		return c.shards, nil
	}
	name := "KV_" + c.opts.PlansBucket
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("fleet: plans bucket %s: %w (is the hub reachable, and was it set up with `eddy hub` or `eddy fleet apply`?)", c.opts.PlansBucket, err)
	}
	n := 1
	if v, ok := s.CachedInfo().Config.Metadata[PlanShardsMetadata]; ok {
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return 0, fmt.Errorf("fleet: stream %s: metadata %s=%q is not a positive number; run Setup (eddy hub, eddy fleet apply) again", name, PlanShardsMetadata, v)
		}
	}
	c.shards = n
	return n, nil
}

// plansFor returns the plans bucket holding node's keys.
func (c *Client) plansFor(ctx context.Context, node string) (jetstream.KeyValue, error) {
	n, err := c.PlanShards(ctx)
	if err != nil {
		return nil, err
	}
	bucket := PlansBucketFor(c.opts.PlansBucket, node, n)
	kv, err := c.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("fleet: plans bucket %s: %w (is the hub reachable, and was it set up with `eddy hub` or `eddy fleet apply`?)", bucket, err)
	}
	return kv, nil
}

// AllPlans returns every plans bucket of the fleet.
func (c *Client) AllPlans(ctx context.Context) ([]jetstream.KeyValue, error) {
	n, err := c.PlanShards(ctx)
	if err != nil {
		return nil, err
	}
	var out []jetstream.KeyValue
	for _, b := range PlanBuckets(c.opts.PlansBucket, n) {
		kv, err := c.js.KeyValue(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("fleet: plans bucket %s: %w", b, err)
		}
		out = append(out, kv)
	}
	return out, nil
}

// setupPlans creates the plans buckets, sizes their consumer limits and
// records the shard count. PlanShards 0 keeps the hub's count (1 on a new
// hub); another count than the hub's is refused: keys would move between
// buckets, and edges would watch buckets that hold nothing for them.
func (c *Client) setupPlans(ctx context.Context) error {
	want := c.opts.PlanShards
	have := 0
	if s, err := c.js.Stream(ctx, "KV_"+c.opts.PlansBucket); err == nil {
		have = 1
		if v, ok := s.CachedInfo().Config.Metadata[PlanShardsMetadata]; ok {
			have, _ = strconv.Atoi(v)
		}
	}
	switch {
	case want == 0 && have == 0:
		want = 1
	case want == 0:
		want = have
	case have != 0 && have != want:
		return fmt.Errorf("fleet: the hub's plans are split over %d buckets, not %d; the count is fixed when the hub is set up (start from an empty hub, or keep %d)", have, want, have)
	}
	for i, b := range PlanBuckets(c.opts.PlansBucket, want) {
		if _, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b, Description: "Eddy: desired objects per edge node (<node>.<kind>.<namespace>.<name>)",
			History: 1, MaxValueSize: MaxValueSize, Storage: jetstream.FileStorage,
		}); err != nil {
			return fmt.Errorf("fleet: creating KV bucket %s on the hub: %w", b, err)
		}
		meta := map[string]string(nil)
		if i == 0 {
			meta = map[string]string{PlanShardsMetadata: strconv.Itoa(want)}
		}
		if err := c.sizePlanStream(ctx, b, meta); err != nil {
			return err
		}
	}
	c.shardsMu.Lock()
	c.shards = want
	c.shardsMu.Unlock()
	return nil
}
