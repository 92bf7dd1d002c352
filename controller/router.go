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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
	"github.com/eddy-edge/eddy/fleet"
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

	mu     sync.Mutex
	counts map[types.NamespacedName]*ruleCounts // not yet written
}

// ruleCounts are counts not yet written to a Rule's status.
type ruleCounts struct {
	ok, fail int64
	errs     []string
}

// routeIndex is one version of the routing table.
type routeIndex struct {
	byID map[string]*rules.Route
	rest map[string][]*rules.Route // namespace -> rest-sourced, longest path first
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
	rt := &router{c: c, opts: opts, bus: bus, log: c.opts.Logger.With("component", "router"),
		http:  &http.Client{Timeout: opts.TargetTimeout},
		built: make(chan struct{}), rebuild: make(chan struct{}, 1), inFlight: make(chan struct{}, opts.MaxInFlight),
		counts: map[types.NamespacedName]*ruleCounts{}}
	rt.table.Store(&routeIndex{byID: map[string]*rules.Route{}, rest: map[string][]*rules.Route{}})
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
	for _, obj := range []client.Object{&rulesv1.Rule{}, &rulesv1.RuleEndpoint{}} {
		inf, err := cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("router: informer: %w", err)
		}
		kick := func() {
			select {
			case rt.rebuild <- struct{}{}:
			default:
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { kick() }, UpdateFunc: func(any, any) { kick() }, DeleteFunc: func(any) { kick() },
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
			rt.buildTable(ctx)
		case <-tick.C():
			rt.flushCounts(ctx)
		}
	}
}

// buildTable compiles every Rule from the cache. A Rule that does not
// compile keeps its last good route (as the edges do) and its error is in
// its status (written by the reconciler). It reports whether the table
// was built.
func (rt *router) buildTable(ctx context.Context) bool {
	var list rulesv1.RuleList
	if err := rt.c.client.List(ctx, &list); err != nil {
		rt.log.Warn("router: listing rules", "err", err)
		return false
	}
	old := rt.table.Load()
	ix := &routeIndex{byID: make(map[string]*rules.Route, len(list.Items)), rest: map[string][]*rules.Route{}}
	get := endpointGetter(rt.c.client)
	for i := range list.Items {
		r := &list.Items[i]
		if !r.DeletionTimestamp.IsZero() {
			continue
		}
		route, err := CompileRule(ctx, get, r)
		if err != nil {
			route = old.byID[r.Namespace+"/"+r.Name]
			if route == nil {
				continue
			}
		}
		ix.byID[route.ID()] = route
		if route.Pair == rules.RestToEventBus || route.Pair == rules.RestToServiceBus {
			ix.rest[route.Namespace] = append(ix.rest[route.Namespace], route)
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
	route, below := rt.table.Load().matchRest(ns, "/"+sub)
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
	for _, id := range m.Rules {
		ns, name, _ := strings.Cut(id, "/")
		key := types.NamespacedName{Namespace: ns, Name: name}
		route := ix.byID[id]
		if route == nil || route.Pair != rules.EventBusToRest {
			rt.log.Debug("router: a forwarded message names a rule that routes nothing up (deleted or changed since)", "rule", id, "node", m.Node)
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
		c.errs = appendErrors(c.errs, errMsg)
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
		c.errs = appendErrors(append([]string(nil), n.errs...), c.errs...)
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
	if len(n.errs) > 0 {
		r.Status.Errors = appendErrors(r.Status.Errors, n.errs...)
	}
	if err := rt.c.client.Patch(ctx, &r, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	rt.c.statusWrites.Add(1)
	return nil
}
