package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/ratelog"
	"github.com/eddy-edge/eddy/pipeline/rules"
)

// RouterOptions configure KubeEdge's router (Rules): the HTTP endpoint of
// rest sources, and the delivery of eventbus->rest messages. The zero
// value serves no HTTP endpoint but still delivers eventbus->rest
// messages when a RuleBus is given.
type RouterOptions struct {
	// Addr is the router's HTTP listen address, e.g. ":9443" (CloudCore's
	// port). Empty serves no endpoint.
	Addr string `json:"addr,omitempty"`
	// CertFile and KeyFile serve HTTPS instead of HTTP (PEM).
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// MaxBodyBytes bounds a request body; a bigger one gets 413. Default
	// (and most): the hub's message limit less 16 KiB of headroom
	// (about 1 MiB with `eddy hub`; KubeEdge's own limit is 12 MiB, which
	// a NATS link cannot carry in one message).
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// RequestTimeout bounds the wait for the edge's reply. Default 30s.
	RequestTimeout time.Duration `json:"requestTimeout,omitempty"`
	// TargetTimeout bounds one POST of an eventbus->rest message to its
	// target URL. Default 10s.
	TargetTimeout time.Duration `json:"targetTimeout,omitempty"`
	// Attempts is how many times an eventbus->rest message is POSTed
	// before it counts as failed (network errors, 5xx and 429 are
	// retried; other 4xx are not). Default 5.
	Attempts int `json:"attempts,omitempty"`
	// Backoff is the wait before the second attempt; it doubles up to 5s.
	// Default 200ms.
	Backoff time.Duration `json:"backoff,omitempty"`
	// Workers POST eventbus->rest messages in parallel. Default 16.
	Workers int `json:"workers,omitempty"`
	// MaxInFlight bounds the HTTP requests the router handles at once
	// (each may hold a body of MaxBodyBytes); more get 503 at once.
	// Default 256.
	MaxInFlight int `json:"maxInFlight,omitempty"`
}

func (o *RouterOptions) defaults() {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.TargetTimeout <= 0 {
		o.TargetTimeout = 10 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
}

// ErrNodeOffline is returned by RuleBus.Request when no edge answers for
// the node (it is not connected to the hub).
var ErrNodeOffline = errors.New("the node is not connected to the hub")

// RouteRequest is one rest request for a rule on a node.
type RouteRequest struct {
	// Namespace and Name of the rule.
	Namespace, Name string
	// Method, Path (below the rule's path) and Query of the HTTP request,
	// used by servicebus rules.
	Method, Path, Query string
	// ContentType and Body of the request.
	ContentType string
	Body        []byte
}

// RouteReply is the edge's answer.
type RouteReply struct {
	// Status is 200 for a publish, the service's status for servicebus,
	// or the edge's error status (404 rule not on the node, 502 the
	// publish or the service call failed, 503 busy).
	Status int
	// Error says why the edge failed.
	Error string
	// ContentType and Body of the service's response.
	ContentType string
	Body        []byte
}

// RuleMessage is one record an edge forwarded for eventbus->rest rules.
type RuleMessage struct {
	// Node that forwarded it.
	Node string
	// Rules are the namespace/name of the rules it matched on the edge.
	Rules []string
	// Topic it was published on at the edge.
	Topic string
	// Body is the MQTT payload.
	Body []byte
}

// RuleBus carries the router's traffic over the fleet's link.
type RuleBus interface {
	// Request sends a rest request to a rule on a node and waits for the
	// edge's reply; ErrNodeOffline when no edge answers for the node.
	Request(ctx context.Context, node string, req RouteRequest) (RouteReply, error)
	// RuleMessages hands every forwarded eventbus->rest record to handle,
	// from up to workers goroutines, until ctx ends. A record is
	// acknowledged when handle returns, and redelivered if the controller
	// stops first (at-least-once).
	RuleMessages(ctx context.Context, workers int, handle func(context.Context, RuleMessage)) error
	// MaxPayload is the largest message the hub takes.
	MaxPayload() int64
}

// router is KubeEdge's router on Eddy's link. Every replica serves the
// HTTP endpoint and counts what it routes (its table is built from the
// informer cache, which every replica has); the leader delivers
// eventbus->rest messages.
type router struct {
	c    *Controller
	opts RouterOptions
	bus  RuleBus
	log  *slog.Logger
	http *http.Client

	table    atomic.Pointer[routeIndex]
	built    chan struct{} // closed once the table was built from a synced cache
	rebuild  chan struct{}
	inFlight chan struct{}
	// changes counts the cache events that may change the table; a table
	// built after reading n is current until changes passes n.
	changes atomic.Uint64
	// warn logs refused traffic (a node sending for a rule not placed on
	// it) once a minute per rule and node.
	warn *ratelog.Logger

	mu     sync.Mutex
	counts map[types.NamespacedName]*ruleCounts // not yet written
}

// ruleCounts are counts not yet written to a Rule's status.
type ruleCounts struct {
	ok, fail int64
	errs     []countedError // newest last
}

// countedError is an error text and how often it happened since the last
// status write: a node flooding the router with one mistake leaves one
// line in status.errors, not five copies that push the others out.
type countedError struct {
	msg string
	n   int64
}

func (e countedError) String() string {
	if e.n <= 1 {
		return e.msg
	}
	return fmt.Sprintf("%s (%d times)", e.msg, e.n)
}

// addErrors adds more to errs: a text already there counts once more and
// becomes the newest; at most maxRuleErrors are kept.
func addErrors(errs []countedError, more ...countedError) []countedError {
	for _, m := range more {
		i := slices.IndexFunc(errs, func(e countedError) bool { return e.msg == m.msg })
		if i >= 0 {
			m.n += errs[i].n
			errs = slices.Delete(errs, i, i+1)
		}
		errs = append(errs, m)
	}
	if len(errs) > maxRuleErrors {
		errs = errs[len(errs)-maxRuleErrors:]
	}
	return errs
}

// routeIndex is one version of the routing table.
type routeIndex struct {
	byID map[string]*rules.Route
	rest map[string][]*rules.Route // namespace -> rest-sourced, longest path first
	// placed is where each rule (by ID) is placed: the router sends to,
	// and takes eventbus messages from, only these nodes.
	placed map[string]rulePlacement
	// nodes are the labels of the EdgeNodes that take placements.
	nodes map[string]labels.Set
	// changes is router.changes when the table was built.
	changes uint64
}

func (ix *routeIndex) matchRest(ns, path string) (*rules.Route, string) {
	for _, r := range ix.rest[ns] {
		switch {
		case r.Path == "/":
			return r, path
		case path == r.Path:
			return r, ""
		case strings.HasPrefix(path, r.Path) && (path[len(r.Path)] == '/' || strings.HasSuffix(r.Path, "/")):
			return r, path[len(r.Path):]
		}
	}
	return nil, ""
}

func newRouter(c *Controller, bus RuleBus, opts RouterOptions) *router {
	opts.defaults()
	max := bus.MaxPayload() - 16<<10
	if opts.MaxBodyBytes <= 0 || opts.MaxBodyBytes > max {
		if opts.MaxBodyBytes > max {
			c.opts.Logger.Warn("router: the body limit is over what the hub carries in one message; lowering it",
				"maxBodyBytes", opts.MaxBodyBytes, "limit", max)
		}
		opts.MaxBodyBytes = max
	}
	log := c.opts.Logger.With("component", "router")
	rt := &router{c: c, opts: opts, bus: bus, log: log,
		http:  &http.Client{Timeout: opts.TargetTimeout},
		built: make(chan struct{}), rebuild: make(chan struct{}, 1), inFlight: make(chan struct{}, opts.MaxInFlight),
		warn:   ratelog.New(log, c.opts.Clock, time.Minute),
		counts: map[types.NamespacedName]*ruleCounts{}}
	rt.table.Store(&routeIndex{byID: map[string]*rules.Route{}, rest: map[string][]*rules.Route{},
		placed: map[string]rulePlacement{}, nodes: map[string]labels.Set{}})
	return rt
}

func (rt *router) setup() error {
	if err := rt.c.mgr.Add(routerRunnable{rt}); err != nil {
		return err
	}
	return rt.c.mgr.Add(forwarderRunnable{rt})
}

// routerRunnable runs on every replica: the table, the HTTP endpoint and
// the counter writes.
type routerRunnable struct{ rt *router }

func (routerRunnable) NeedLeaderElection() bool { return false }

func (r routerRunnable) Start(ctx context.Context) error { return r.rt.run(ctx) }

// forwarderRunnable delivers eventbus->rest messages on the leader.
type forwarderRunnable struct{ rt *router }

func (forwarderRunnable) NeedLeaderElection() bool { return true }

func (f forwarderRunnable) Start(ctx context.Context) error {
	// Deliver nothing before the table knows every rule: a message for a
	// rule missing from it would be acknowledged and dropped.
	select {
	case <-f.rt.built:
	case <-ctx.Done():
		return nil
	}
	for {
		err := f.rt.bus.RuleMessages(ctx, f.rt.opts.Workers, f.rt.deliver)
		if ctx.Err() != nil {
			return nil
		}
		f.rt.log.Warn("eventbus->rest messages: the consumer stopped; restarting in 1s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (rt *router) run(ctx context.Context) error {
	cache := rt.c.mgr.GetCache()
	kick := func() {
		rt.changes.Add(1)
		select {
		case rt.rebuild <- struct{}{}:
		default:
		}
	}
	for _, obj := range []client.Object{&rulesv1.Rule{}, &rulesv1.RuleEndpoint{}, &eddyv1alpha1.EdgeNode{}} {
		inf, err := cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("router: informer: %w", err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { kick() },
			UpdateFunc: func(o, n any) {
				if placementMayChange(o, n) {
					kick()
				}
			},
			DeleteFunc: func(any) { kick() },
		}); err != nil {
			return err
		}
	}
	if !cache.WaitForCacheSync(ctx) {
		return nil
	}
	for !rt.buildTable(ctx) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	close(rt.built)
	var srv *http.Server
	errc := make(chan error, 1)
	if rt.opts.Addr != "" {
		ln, err := net.Listen("tcp", rt.opts.Addr)
		if err != nil {
			return fmt.Errorf("router: listen on %s: %w (set --router-addr)", rt.opts.Addr, err)
		}
		srv = &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		go func() {
			if rt.opts.CertFile != "" || rt.opts.KeyFile != "" {
				errc <- srv.ServeTLS(ln, rt.opts.CertFile, rt.opts.KeyFile)
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		rt.log.Info("router listening", "addr", ln.Addr().String(), "tls", rt.opts.CertFile != "", "maxBodyBytes", rt.opts.MaxBodyBytes)
	}
	tick := rt.c.opts.Clock.NewTicker(rt.c.opts.StatusInterval)
	defer tick.Stop()
	defer func() {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rt.flushCounts(fctx) // what was counted until now
		cancel()
	}()
	// Rebuilds are at most one per rebuildGap: a fleet registering
	// thousands of EdgeNodes would otherwise rebuild back to back. A
	// table that lags the cache is safe (placedOn re-checks a refusal
	// against the cache).
	lastBuild := time.Now()
	var rebuildDue <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("router: %w", err)
		case <-rt.rebuild:
			if rebuildDue == nil {
				rebuildDue = time.After(max(0, rebuildGap-time.Since(lastBuild)))
			}
		case <-rebuildDue:
			rebuildDue = nil
			rt.buildTable(ctx)
			lastBuild = time.Now()
		case <-tick.C():
			rt.flushCounts(ctx)
		}
	}
}

// rebuildGap is the least time between two rebuilds of the routing table.
const rebuildGap = 100 * time.Millisecond

// placementMayChange passes the updates of RuleEndpoints, the Rule
// updates the reconciler reacts to (spec, placement annotations,
// deletion; not its counter writes) and the EdgeNode updates that can
// move a rule (labels, spec, deletion; not heartbeats).
func placementMayChange(o, n any) bool {
	if or, ok := o.(*rulesv1.Rule); ok {
		nr, ok := n.(*rulesv1.Rule)
		return !ok || ruleSpecChanged.Update(event.UpdateEvent{ObjectOld: or, ObjectNew: nr})
	}
	old, ok1 := o.(*eddyv1alpha1.EdgeNode)
	nw, ok2 := n.(*eddyv1alpha1.EdgeNode)
	if !ok1 || !ok2 {
		return true
	}
	return !labels.Equals(old.Labels, nw.Labels) || old.Spec != nw.Spec || !nw.DeletionTimestamp.Equal(old.DeletionTimestamp)
}

// buildTable compiles every Rule from the cache and places it on the
// EdgeNodes of the cache, as the reconciler does. A Rule that does not
// compile keeps its last good route and placement (as the edges keep the
// last good route) and its error is in its status (written by the
// reconciler). It reports whether the table was built.
func (rt *router) buildTable(ctx context.Context) bool {
	changes := rt.changes.Load()
	var list rulesv1.RuleList
	if err := rt.c.client.List(ctx, &list); err != nil {
		rt.log.Warn("router: listing rules", "err", err)
		return false
	}
	old := rt.table.Load()
	ix := &routeIndex{byID: make(map[string]*rules.Route, len(list.Items)), rest: map[string][]*rules.Route{},
		placed: make(map[string]rulePlacement, len(list.Items)), nodes: map[string]labels.Set{}, changes: changes}
	get := endpointGetter(rt.c.client)
	for i := range list.Items {
		r := &list.Items[i]
		if !r.DeletionTimestamp.IsZero() {
			continue
		}
		id := r.Namespace + "/" + r.Name
		route, err := CompileRule(ctx, get, r)
		var place rulePlacement
		if err == nil {
			place, err = placeRule(r, route)
		}
		if err != nil {
			route, place = old.byID[id], old.placed[id]
			if route == nil {
				continue
			}
		}
		ix.byID[id] = route
		ix.placed[id] = place
		if route.Pair == rules.RestToEventBus || route.Pair == rules.RestToServiceBus {
			ix.rest[route.Namespace] = append(ix.rest[route.Namespace], route)
		}
	}
	// The EdgeNodes' labels, when a placement has a selector (with 10,000
	// nodes and no such rule, nothing is listed).
	needNodes := false
	for _, p := range ix.placed {
		needNodes = needNodes || p.sel != nil
	}
	if needNodes {
		var ens eddyv1alpha1.EdgeNodeList
		if err := rt.c.client.List(ctx, &ens, client.UnsafeDisableDeepCopy); err != nil {
			rt.log.Warn("router: listing edge nodes", "err", err)
			return false
		}
		for i := range ens.Items {
			if n := &ens.Items[i]; schedulable(n) {
				ix.nodes[n.Name] = labels.Set(n.Labels)
			}
		}
	}
	for _, rs := range ix.rest {
		sort.SliceStable(rs, func(i, j int) bool {
			if len(rs[i].Path) != len(rs[j].Path) {
				return len(rs[i].Path) > len(rs[j].Path)
			}
			return rs[i].Name < rs[j].Name // two rules on one path: the first by name wins, always the same
		})
	}
	rt.table.Store(ix)
	return true
}

// placedOn reports whether the rule id is placed on node, and where it
// is placed. The table answers, unless it is older than the cache (an
// EdgeNode just relabelled, a Rule just edited: the reconciler may
// already have shipped the route from the newer cache); then the rule is
// placed again from the cache itself, so a node that was just given a
// rule is never refused.
func (rt *router) placedOn(ctx context.Context, ix *routeIndex, id, node string) (bool, rulePlacement) {
	p := ix.placed[id]
	lbls, ok := ix.nodes[node]
	if placed := p.has(node, ok, lbls); placed || ix.changes == rt.changes.Load() {
		return placed, p
	}
	ns, name, _ := strings.Cut(id, "/")
	var r rulesv1.Rule
	if err := rt.c.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &r); err != nil || !r.DeletionTimestamp.IsZero() {
		return false, p
	}
	route, err := CompileRule(ctx, endpointGetter(rt.c.client), &r)
	if err != nil {
		return false, p // not routed; the edges keep the last good route
	}
	if p, err = placeRule(&r, route); err != nil {
		return false, p
	}
	var en eddyv1alpha1.EdgeNode
	err = rt.c.client.Get(ctx, types.NamespacedName{Name: node}, &en)
	return p.has(node, err == nil && schedulable(&en), labels.Set(en.Labels)), p
}

// ServeHTTP routes /{node}/{namespace}/{path} as CloudCore's router does.
func (rt *router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case rt.inFlight <- struct{}{}:
		defer func() { <-rt.inFlight }()
	default:
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("the router is handling %d requests already; retry", cap(rt.inFlight)))
		return
	}
	node, rest, ok1 := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	ns, sub, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || fleet.CheckName("node", node) != nil || fleet.CheckName("namespace", ns) != nil {
		httpError(w, http.StatusNotFound, "want /{node}/{namespace}/{path}, e.g. /edge-1/default/a (node and namespace are DNS labels)")
		return
	}
	for _, seg := range strings.Split(sub, "/") {
		if seg == ".." || seg == "." {
			httpError(w, http.StatusBadRequest, "the path has a dot segment (. or ..); send the path as it is meant")
			return
		}
	}
	ix := rt.table.Load()
	route, below := ix.matchRest(ns, "/"+sub)
	if route == nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no Rule in namespace %s has a rest source with path /%s", ns, sub))
		return
	}
	key := types.NamespacedName{Namespace: route.Namespace, Name: route.Name}
	if route.Pair == rules.RestToEventBus && req.Method != http.MethodPost && req.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		httpError(w, http.StatusMethodNotAllowed, fmt.Sprintf("rule %s publishes the body on an edge topic: use POST or PUT", route.ID()))
		return
	}
	// Only a node the rule is placed on gets the request (and its body).
	if ok, place := rt.placedOn(req.Context(), ix, route.ID(), node); !ok {
		msg := fmt.Sprintf("rule %s is not placed on node %s (it is placed on %s); nothing was sent", route.ID(), node, place)
		rt.count(key, false, msg)
		httpError(w, http.StatusNotFound, msg)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, rt.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			msg := fmt.Sprintf("the body is over the router's limit of %d bytes", rt.opts.MaxBodyBytes)
			rt.count(key, false, "refused a request for node "+node+": "+msg)
			httpError(w, http.StatusRequestEntityTooLarge, msg)
			return
		}
		httpError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), rt.opts.RequestTimeout)
	defer cancel()
	reply, err := rt.bus.Request(ctx, node, RouteRequest{Namespace: route.Namespace, Name: route.Name,
		Method: req.Method, Path: below, Query: req.URL.RawQuery, ContentType: req.Header.Get("Content-Type"), Body: body})
	switch {
	case errors.Is(err, ErrNodeOffline):
		msg := fmt.Sprintf("node %s is not connected to the hub; nothing was delivered (retry later)", node)
		rt.count(key, false, msg)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, msg)
		return
	case errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("node %s did not answer within %s; the message may or may not have been delivered", node, rt.opts.RequestTimeout)
		rt.count(key, false, msg)
		httpError(w, http.StatusGatewayTimeout, msg)
		return
	case err != nil:
		if req.Context().Err() != nil {
			return // the client went away
		}
		msg := fmt.Sprintf("sending to node %s: %v", node, err)
		rt.count(key, false, msg)
		httpError(w, http.StatusBadGateway, msg)
		return
	}
	if reply.Error != "" {
		rt.count(key, false, reply.Error)
		status := reply.Status
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		httpError(w, status, reply.Error)
		return
	}
	rt.count(key, true, "")
	if route.Pair == rules.RestToEventBus {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]string{"rule": route.ID(), "node": node, "topic": route.Topic})
		return
	}
	if reply.ContentType != "" {
		w.Header().Set("Content-Type", reply.ContentType)
	}
	status := reply.Status
	if status < 100 || status > 999 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(reply.Body)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// deliver POSTs one forwarded record to the target of every rule it
// matched, retrying with backoff, and counts the outcome per rule.
func (rt *router) deliver(ctx context.Context, m RuleMessage) {
	ix := rt.table.Load()
	seen := make(map[string]bool, len(m.Rules))
	for _, id := range m.Rules {
		// A rule named twice is delivered once: the names are the node's
		// word, and a repeated name must not multiply the POSTs.
		if seen[id] {
			continue
		}
		seen[id] = true
		ns, name, _ := strings.Cut(id, "/")
		key := types.NamespacedName{Namespace: ns, Name: name}
		route := ix.byID[id]
		if route == nil || route.Pair != rules.EventBusToRest {
			rt.log.Debug("router: a forwarded message names a rule that routes nothing up (deleted or changed since)", "rule", id, "node", m.Node)
			continue
		}
		// m.Node comes from the subject, which the hub lets only that
		// node publish on; the rule names come from the node itself, so
		// a node may forward only for the rules placed on it.
		if ok, place := rt.placedOn(ctx, ix, id, m.Node); !ok {
			rt.count(key, false, fmt.Sprintf("dropped messages from node %s: the rule is not placed on that node (it is placed on %s)", m.Node, place))
			rt.warn.Warn(id+" "+m.Node, "router: dropped an eventbus->rest message from a node the rule is not placed on (a misconfigured or compromised node, or one that lost the rule before its backlog was delivered)",
				"rule", id, "node", m.Node, "topic", m.Topic, "placedOn", place.String())
			continue
		}
		if err := rt.post(ctx, route, m); err != nil {
			if ctx.Err() != nil {
				return
			}
			rt.count(key, false, err.Error())
			continue
		}
		rt.count(key, true, "")
	}
}

func (rt *router) post(ctx context.Context, route *rules.Route, m RuleMessage) error {
	backoff := rt.opts.Backoff
	var last error
	for attempt := 1; attempt <= rt.opts.Attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		retry, err := rt.postOnce(ctx, route, m)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return fmt.Errorf("POST %s for a message from node %s (topic %s): %w", route.URL, m.Node, m.Topic, last)
}

// postOnce reports whether a failure is worth retrying.
func (rt *router) postOnce(ctx context.Context, route *rules.Route, m RuleMessage) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, route.URL, bytes.NewReader(m.Body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if json.Valid(m.Body) {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Eddy-Node", m.Node)
	req.Header.Set("Eddy-Topic", m.Topic)
	req.Header.Set("Eddy-Rule", route.ID())
	resp, err := rt.http.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return true, fmt.Errorf("status %d after %d attempts", resp.StatusCode, rt.opts.Attempts)
	default:
		return false, fmt.Errorf("status %d (not retried)", resp.StatusCode)
	}
}

// count records one routed message; written to the Rule's status at most
// once per StatusInterval.
func (rt *router) count(key types.NamespacedName, ok bool, errMsg string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c := rt.counts[key]
	if c == nil {
		c = &ruleCounts{}
		rt.counts[key] = c
	}
	if ok {
		c.ok++
	} else {
		c.fail++
	}
	if errMsg != "" {
		c.errs = addErrors(c.errs, countedError{msg: errMsg, n: 1})
	}
}

// flushCounts adds the counts taken since the last flush to each Rule's
// status: one merge patch per changed Rule, with an optimistic lock so
// several replicas never lose each other's counts (a conflict keeps the
// counts for the next flush).
func (rt *router) flushCounts(ctx context.Context) {
	rt.mu.Lock()
	pending := rt.counts
	rt.counts = map[types.NamespacedName]*ruleCounts{}
	rt.mu.Unlock()
	for key, n := range pending {
		err := rt.writeCounts(ctx, key, n)
		if err == nil {
			continue
		}
		if apierrors.IsNotFound(err) {
			continue // the rule is gone, and its counts with it
		}
		if !apierrors.IsConflict(err) {
			rt.log.Warn("router: writing a rule's counters; keeping them for the next write", "rule", key.String(), "err", err)
		}
		rt.mu.Lock()
		c := rt.counts[key]
		if c == nil {
			c = &ruleCounts{}
			rt.counts[key] = c
		}
		c.ok += n.ok
		c.fail += n.fail
		c.errs = addErrors(slices.Clone(n.errs), c.errs...)
		rt.mu.Unlock()
	}
}

func (rt *router) writeCounts(ctx context.Context, key types.NamespacedName, n *ruleCounts) error {
	var r rulesv1.Rule
	if err := rt.c.client.Get(ctx, key, &r); err != nil {
		return err
	}
	base := r.DeepCopy()
	r.Status.SuccessMessages += n.ok
	r.Status.FailMessages += n.fail
	for _, e := range n.errs {
		r.Status.Errors = appendErrors(r.Status.Errors, e.String())
	}
	if err := rt.c.client.Patch(ctx, &r, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	rt.c.statusWrites.Add(1)
	return nil
}
