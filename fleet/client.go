package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline"
)

// Options name the hub's JetStream assets. The zero value uses the default
// names on a hub without a JetStream domain.
type Options struct {
	// Domain is the hub's JetStream domain. Default "hub". Edges reach the
	// hub's JetStream API through their leaf connection only under a
	// domain prefix ($JS.<domain>.API): nats-server does not pass the plain
	// $JS.API across a leaf connection to a JetStream-enabled hub, so a
	// production NATS system must give its JetStream a domain too.
	Domain string `json:"domain,omitempty"`
	// PlansBucket is the KV bucket of desired objects. Default eddy_plans.
	PlansBucket string `json:"plansBucket,omitempty"`
	// NodesBucket is the KV bucket of node status. Default eddy_nodes.
	NodesBucket string `json:"nodesBucket,omitempty"`
	// UpStream is the stream of forwarded data. Default eddy_up.
	UpStream string `json:"upStream,omitempty"`
	// UpPrefix is the subject prefix of forwarded data. Default eddy.up.
	UpPrefix string `json:"upPrefix,omitempty"`
	// UpDuplicateWindow is how long the up stream remembers Nats-Msg-Ids
	// to drop resends (Setup only). Default 10m.
	UpDuplicateWindow time.Duration `json:"-"`
	// UpMaxAge is how long the up stream keeps data (Setup only). Default
	// 7 days; cloud consumers are expected to read it well within that.
	UpMaxAge time.Duration `json:"-"`
	// MaxPlanWatchers is how many consumers the plans bucket's stream
	// allows at once (Setup only). Every edge's plan watch is one
	// consumer, so this bounds the fleet: nats-server's own default of
	// 1,000 consumers per stream would stop the 1,001st edge with
	// "maximum consumers limit reached". Default 100,000.
	MaxPlanWatchers int `json:"-"`
	// PlanShards is how many buckets the plans are split over (Setup
	// only; see shards.go). Nodes are spread over the buckets by a hash of
	// their name; clients read the count from the hub. 0 keeps the hub's
	// count (1 on a new hub). More than one pays off from a few thousand
	// edges: one bucket's fan-out costs the hub O(nodes²).
	PlanShards int `json:"-"`
	// Writer is recorded in the envelopes this client writes. Default
	// "eddy".
	Writer string `json:"-"`
	// Clock stamps envelopes. Default: the real clock.
	Clock clock.Clock `json:"-"`
	// Logger receives warnings. Default: discard.
	Logger *slog.Logger `json:"-"`
}

func (o *Options) defaults() {
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.PlansBucket == "" {
		o.PlansBucket = DefaultPlansBucket
	}
	if o.NodesBucket == "" {
		o.NodesBucket = DefaultNodesBucket
	}
	if o.UpStream == "" {
		o.UpStream = DefaultUpStream
	}
	if o.UpPrefix == "" {
		o.UpPrefix = DefaultUpPrefix
	}
	if o.UpDuplicateWindow <= 0 {
		o.UpDuplicateWindow = 10 * time.Minute
	}
	if o.UpMaxAge <= 0 {
		o.UpMaxAge = 7 * 24 * time.Hour
	}
	if o.MaxPlanWatchers <= 0 {
		o.MaxPlanWatchers = DefaultMaxPlanWatchers
	}
	if o.Writer == "" {
		o.Writer = "eddy"
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// UpSubject returns the subject under which node forwards data published
// to subject: <UpPrefix>.<node>.<subject>.
func (o Options) UpSubject(node, subject string) string {
	o.defaults()
	return o.UpPrefix + "." + node + "." + subject
}

// Client reads and writes the fleet's plans and status through a NATS
// connection to the hub (or to an edge's leaf). It is safe for concurrent
// use. Buckets are looked up on first use, so a Client can be made before
// the hub is reachable.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options

	shardsMu sync.Mutex
	shards   int // plan buckets on the hub, once read (shards.go)
}

// NewClient returns a client over nc. It does not talk to the hub yet.
func NewClient(nc *nats.Conn, opts Options) (*Client, error) {
	opts.defaults()
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncTimeout(10 * time.Second)}
	js, err := jetstream.NewWithDomain(nc, opts.Domain, jsOpts...)
	if err != nil {
		return nil, fmt.Errorf("fleet: JetStream: %w", err)
	}
	return &Client{nc: nc, js: js, opts: opts}, nil
}

// Options returns the client's options with defaults filled in.
func (c *Client) Options() Options { return c.opts }

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// JetStream returns the JetStream handle the client uses.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Setup creates or updates the plans and nodes buckets and the up stream.
// It needs JetStream admin rights on the hub (`eddy hub` calls it at start;
// `eddy fleet apply` calls it too). It is idempotent.
func (c *Client) Setup(ctx context.Context) error {
	if err := c.setupPlans(ctx); err != nil {
		return err
	}
	if _, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.opts.NodesBucket, Description: "Eddy: edge node registration and status",
		History: 1, MaxValueSize: 4 * MaxValueSize, Storage: jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("fleet: creating KV bucket %s on the hub: %w", c.opts.NodesBucket, err)
	}
	if _, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.opts.UpStream, Description: "Eddy: data forwarded by edge nodes",
		Subjects: []string{c.opts.UpPrefix + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: c.opts.UpDuplicateWindow, MaxAge: c.opts.UpMaxAge,
	}); err != nil {
		return fmt.Errorf("fleet: creating stream %s on the hub: %w", c.opts.UpStream, err)
	}
	return nil
}

// DefaultMaxPlanWatchers is the default of Options.MaxPlanWatchers.
const DefaultMaxPlanWatchers = 100_000

// sizePlanStream sets a plans bucket's stream's consumer limit to
// MaxPlanWatchers and adds meta to its metadata. A KV bucket's
// configuration has no such field, and nats-server applies its
// server-wide default (1,000 per stream, unless the server sets
// jetstream { limits { default_max_consumers } }) to a stream that sets
// none, so Setup sets it on the stream itself: any NATS system then
// serves a fleet above 1,000 edges without a server setting.
func (c *Client) sizePlanStream(ctx context.Context, bucket string, meta map[string]string) error {
	name := "KV_" + bucket
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("fleet: stream %s of the plans bucket: %w", name, err)
	}
	cfg := s.CachedInfo().Config
	changed := cfg.MaxConsumers != c.opts.MaxPlanWatchers
	cfg.MaxConsumers = c.opts.MaxPlanWatchers
	for k, v := range meta {
		if cfg.Metadata[k] != v {
			if cfg.Metadata == nil {
				cfg.Metadata = map[string]string{}
			}
			cfg.Metadata[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("fleet: raising the consumer limit of %s to %d (one plan watcher per edge): %w", name, c.opts.MaxPlanWatchers, err)
	}
	return nil
}

func (c *Client) nodes(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := c.js.KeyValue(ctx, c.opts.NodesBucket)
	if err != nil {
		return nil, fmt.Errorf("fleet: nodes bucket %s: %w (is the hub reachable, and was it set up?)", c.opts.NodesBucket, err)
	}
	return kv, nil
}

// PutResult says what Put did.
type PutResult struct {
	// Revision is the key's revision in the plans bucket.
	Revision uint64
	// Generation is the generation stored.
	Generation int64
	// Changed is false when the stored object already had the same hash
	// and generation (nothing was written, edges see no change).
	Changed bool
}

// Put stores env under its key; the latest Put wins. An envelope with the
// same hash as the stored one and no newer generation is not written
// again. When env.Generation is 0, the stored generation is kept if the
// hash is unchanged and incremented otherwise (the `eddy fleet` case; the
// controller sets the Kubernetes generation). Concurrent writers to one key
// are serialised with the key's revision.
func (c *Client) Put(ctx context.Context, env *Envelope) (PutResult, error) {
	kv, err := c.plansFor(ctx, env.Node)
	if err != nil {
		return PutResult{}, err
	}
	key := env.Key().String()
	e := *env
	if e.Format == 0 {
		e.Format = EnvelopeFormat
	}
	if e.Writer == "" {
		e.Writer = c.opts.Writer
	}
	for attempt := 0; ; attempt++ {
		cur, rev, err := c.get(ctx, kv, key)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			// A malformed value is overwritten: that is how it is fixed.
			var bad *BadValueError
			if !errors.As(err, &bad) {
				return PutResult{}, err
			}
			cur = nil
		}
		gen := env.Generation
		if cur != nil {
			if cur.Hash == e.Hash && gen <= cur.Generation {
				return PutResult{Revision: rev, Generation: cur.Generation}, nil
			}
			if gen == 0 {
				gen = cur.Generation + 1
			}
		} else if gen == 0 {
			gen = 1
		}
		e.Generation = gen
		e.UpdatedAt = c.opts.Clock.Now().UTC()
		b, err := e.Encode()
		if err != nil {
			return PutResult{}, err
		}
		var newRev uint64
		if rev == 0 {
			newRev, err = kv.Create(ctx, key, b)
		} else {
			newRev, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return PutResult{Revision: newRev, Generation: gen, Changed: true}, nil
		}
		if attempt < 5 && (errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err)) {
			continue // someone else wrote the key in between: read again
		}
		return PutResult{}, fmt.Errorf("fleet: writing %s: %w", key, err)
	}
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// BadValueError is returned for a key whose value is not a valid envelope.
type BadValueError struct {
	Key string
	Err error
}

func (e *BadValueError) Error() string { return e.Err.Error() }
func (e *BadValueError) Unwrap() error { return e.Err }

// get returns the envelope under key and its revision; a missing or
// deleted key is ErrKeyNotFound with revision 0.
func (c *Client) get(ctx context.Context, kv jetstream.KeyValue, key string) (*Envelope, uint64, error) {
	ent, err := kv.Get(ctx, key)
	if err != nil {
		// Missing or deleted: Put creates it (KV Create also replaces a
		// delete marker).
		return nil, 0, err
	}
	env, err := DecodeEnvelope(key, ent.Value())
	if err != nil {
		return nil, ent.Revision(), &BadValueError{Key: key, Err: err}
	}
	return env, ent.Revision(), nil
}

// Get returns the envelope stored under k and its revision. A missing or
// deleted key is an error matching jetstream.ErrKeyNotFound; a malformed
// value a *BadValueError.
func (c *Client) Get(ctx context.Context, k ObjectKey) (*Envelope, uint64, error) {
	kv, err := c.plansFor(ctx, k.Node)
	if err != nil {
		return nil, 0, err
	}
	return c.get(ctx, kv, k.String())
}

// Delete removes the object under k; edges watching the key stop and
// forget it. Deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, k ObjectKey) error {
	if err := k.Check(); err != nil {
		return err
	}
	kv, err := c.plansFor(ctx, k.Node)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, k.String()); err != nil {
		return fmt.Errorf("fleet: deleting %s: %w", k, err)
	}
	return nil
}

// Entry is one key of the plans bucket as List returns it.
type Entry struct {
	// Key is the parsed key.
	Key ObjectKey
	// Revision is the key's revision.
	Revision uint64
	// Envelope is the decoded value (nil when Err is set).
	Envelope *Envelope
	// Err says why the value is not a valid envelope.
	Err error
}

// List returns the objects of node (every node when node is ""), sorted by
// key. Values that are not valid envelopes are listed with Err set.
func (c *Client) List(ctx context.Context, node string) ([]Entry, error) {
	filter := ">"
	var buckets []jetstream.KeyValue
	if node != "" {
		if err := CheckName("node name", node); err != nil {
			return nil, err
		}
		filter = node + ".>"
		kv, err := c.plansFor(ctx, node)
		if err != nil {
			return nil, err
		}
		buckets = []jetstream.KeyValue{kv}
	} else {
		var err error
		if buckets, err = c.AllPlans(ctx); err != nil {
			return nil, err
		}
	}
	var out []Entry
	for _, kv := range buckets {
		err := ScanPlans(ctx, kv, filter, func(ent jetstream.KeyValueEntry) {
			e := Entry{Revision: ent.Revision()}
			e.Key, e.Err = ParseKey(ent.Key())
			if e.Err == nil {
				e.Envelope, e.Err = DecodeEnvelope(ent.Key(), ent.Value())
			}
			out = append(out, e)
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out, nil
}

// ScanPlans calls fn with the current value of every key of one plans
// bucket that matches filter (deleted keys left out), with one watch.
func ScanPlans(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("fleet: listing %s of %s: %w", filter, kv.Bucket(), err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ent, ok := <-w.Updates():
			if !ok {
				return errors.New("fleet: listing plans: the watcher stopped (connection closed?)")
			}
			if ent == nil {
				return nil
			}
			fn(ent)
		}
	}
}

// WatchPlans watches node's keys: the latest value of each key, then a nil
// entry, then every change (deletes included). Edges use it; the watcher
// lives in the hub's memory, so after the link to the hub was cut a caller
// should stop it and watch again (see runner/link).
func (c *Client) WatchPlans(ctx context.Context, node string) (jetstream.KeyWatcher, error) {
	if err := CheckName("node name", node); err != nil {
		return nil, err
	}
	kv, err := c.plansFor(ctx, node)
	if err != nil {
		return nil, err
	}
	return kv.Watch(ctx, node+".>")
}

// PutNodeStatus writes st under st.Node in the nodes bucket.
func (c *Client) PutNodeStatus(ctx context.Context, st *NodeStatus) error {
	if err := CheckName("node name", st.Node); err != nil {
		return err
	}
	kv, err := c.nodes(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, st.Node, b); err != nil {
		return fmt.Errorf("fleet: writing the status of node %s: %w", st.Node, err)
	}
	return nil
}

// Node returns one node's last status record.
func (c *Client) Node(ctx context.Context, node string) (*NodeStatus, error) {
	kv, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	ent, err := kv.Get(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("fleet: node %s: %w", node, err)
	}
	return decodeStatus(ent.Key(), ent.Value())
}

func decodeStatus(key string, b []byte) (*NodeStatus, error) {
	var st NodeStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("fleet: node %s: malformed status record: %w", key, err)
	}
	if st.Node != key {
		return nil, fmt.Errorf("fleet: node %s: the status record names node %q", key, st.Node)
	}
	return &st, nil
}

// Nodes returns the last status record of every node that ever reported,
// sorted by name. Check NodeStatus.Stale for liveness. Malformed records
// are skipped and logged.
func (c *Client) Nodes(ctx context.Context) ([]NodeStatus, error) {
	kv, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: listing nodes: %w", err)
	}
	defer w.Stop()
	var out []NodeStatus
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("fleet: listing nodes: the watcher stopped (connection closed?)")
			}
			if ent == nil {
				sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
				return out, nil
			}
			st, err := decodeStatus(ent.Key(), ent.Value())
			if err != nil {
				c.opts.Logger.Warn("skipping a node status record", "err", err)
				continue
			}
			out = append(out, *st)
		}
	}
}

// WatchNodes sends every node's latest status record, then each new one,
// until ctx ends; then the channel is closed. Malformed records are
// skipped and logged. The controller uses it to write status back.
func (c *Client) WatchNodes(ctx context.Context) (<-chan NodeStatus, error) {
	kv, err := c.nodes(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: watching nodes: %w", err)
	}
	out := make(chan NodeStatus, 64)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ent, ok := <-w.Updates():
				if !ok {
					return
				}
				if ent == nil {
					continue
				}
				st, err := decodeStatus(ent.Key(), ent.Value())
				if err != nil {
					c.opts.Logger.Warn("skipping a node status record", "err", err)
					continue
				}
				select {
				case out <- *st:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// SelectNodes returns the names of the nodes whose labels match sel
// ("k=v,k2=v2", every pair must match; "" matches every node).
func SelectNodes(nodes []NodeStatus, sel string) ([]string, error) {
	want := map[string]string{}
	for _, kv := range strings.Split(sel, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("selector %q: want key=value[,key=value...]", sel)
		}
		want[k] = v
	}
	var out []string
	for _, n := range nodes {
		if MatchLabels(want, n.Labels) {
			out = append(out, n.Node)
		}
	}
	return out, nil
}

// MatchLabels reports whether labels has every key of want with its value.
func MatchLabels(want, labels map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// MatchSelector reports whether labels satisfy a Kubernetes label selector
// (a Pipeline's spec.nodeSelector): every matchLabels pair and every
// matchExpressions requirement (In, NotIn, Exists, DoesNotExist). A nil
// selector matches nothing: placement must be explicit.
func MatchSelector(sel *pipeline.LabelSelector, labels map[string]string) (bool, error) {
	if sel == nil {
		return false, nil
	}
	if !MatchLabels(sel.MatchLabels, labels) {
		return false, nil
	}
	for _, r := range sel.MatchExpressions {
		v, has := labels[r.Key]
		switch r.Operator {
		case "In":
			if !has || !slices.Contains(r.Values, v) {
				return false, nil
			}
		case "NotIn":
			if has && slices.Contains(r.Values, v) {
				return false, nil
			}
		case "Exists":
			if !has {
				return false, nil
			}
		case "DoesNotExist":
			if has {
				return false, nil
			}
		default:
			return false, fmt.Errorf("nodeSelector: operator %q for key %q: use In, NotIn, Exists or DoesNotExist", r.Operator, r.Key)
		}
	}
	return true, nil
}
