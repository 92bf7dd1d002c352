package fleet

import "fmt"

// Permissions are the NATS subjects a hub user may publish to and
// subscribe to (nats-server's publish/subscribe allow lists).
type Permissions struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

// InboxPrefix is the reply-subject prefix node's clients must use
// (nats.CustomInboxPrefix): replies to other nodes' requests go to their
// own prefixes, which this node cannot subscribe to.
func InboxPrefix(node string) string { return "_INBOX_" + node }

// NodePermissions returns the subjects the hub user of one edge node needs,
// and nothing more: watch and read its own keys of the plans bucket, write
// its own status record, publish forwarded data under its own up prefix,
// receive replies on its own inbox prefix, and take the router's requests
// for it (eddy.down.<node>.>) and answer them (eddy.reply.<node>.>). With these, a node cannot
// read another node's plans, overwrite another node's status or publish
// under another node's subjects (measured in TestNodeIsolation). The hub
// may be any NATS server: put these lists in its authorization block.
//
// opts.PlanShards must be the hub's plan shard count (the node's bucket
// depends on it).
func NodePermissions(node string, opts Options) Permissions {
	opts.defaults()
	api := "$JS." + opts.Domain + ".API"
	// nats.go puts KV values through the domain's API prefix when the
	// JetStream handle has a domain.
	put := api + ".$KV."
	// The node's plans live in one bucket of the fleet's PlanShards
	// (shards.go); the first bucket's stream says how many there are.
	bucket := PlansBucketFor(opts.PlansBucket, node, opts.PlanShards)
	plans := "KV_" + bucket
	first := "KV_" + opts.PlansBucket
	nodes := "KV_" + opts.NodesBucket
	pub := []string{
		// Data up.
		opts.UpPrefix + "." + node + ".>",
		// Replies to the router's requests for this node.
		NodeReplyPrefix(node) + ".>",
		// Flow control replies of its watchers (without it a watcher
		// stalls on big values).
		"$JS.FC." + plans + ".>",
	}
	// A leaf's request keeps the domain prefix; a client connected to
	// the hub directly is checked after the server maps it to $JS.API:
	// allow both forms, each confined to the node.
	apis := []string{"$JS.API", api}
	for _, a := range apis {
		pub = append(pub,
			// Plans: bind the bucket, create its own filtered ordered
			// consumers (the watch), fetch its own keys directly.
			a+".STREAM.INFO."+plans,
			fmt.Sprintf("%s.CONSUMER.CREATE.%s.*.$KV.%s.%s.>", a, plans, bucket, node),
			fmt.Sprintf("%s.DIRECT.GET.%s.$KV.%s.%s.>", a, plans, bucket, node),
			// Status: bind the bucket.
			a+".STREAM.INFO."+nodes,
		)
		if first != plans {
			// Read the shard count.
			pub = append(pub, a+".STREAM.INFO."+first)
		}
	}
	// Status: put its own key.
	pub = append(pub, "$KV."+opts.NodesBucket+"."+node, put+opts.NodesBucket+"."+node)
	return Permissions{Publish: pub, Subscribe: []string{InboxPrefix(node) + ".>", DownPrefix + "." + node + ".>"}}
}
