package link

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline/rules"
)

// The edge's half of KubeEdge's router (see pipeline/rules and
// fleet/routes.go). Routes arrive as plans (kind Rule) and live in a
// routeTable; the router's requests for this node arrive on
// eddy.down.<node>.rule.<ns>.<name> and are served by serveDown; the
// outbox asks the table which eventbus->rest rules a WAL record matches.

// Bounds of the edge's router.
const (
	// downConcurrency bounds requests served at once; more are refused
	// with 503 at once rather than queued behind a slow local service.
	downConcurrency = 64
	// publishTimeout bounds the wait for the broker (congested
	// subscribers, the durable append) when publishing a request's body.
	publishTimeout = 10 * time.Second
	// serviceTimeout bounds a servicebus call to the local service.
	serviceTimeout = 30 * time.Second
	// replyHeadroom is left under the NATS payload limit for headers.
	replyHeadroom = 16 << 10
)

// routeTable holds the node's routes. Readers (the outbox, for every
// record; the down handler) take an immutable snapshot without locking.
type routeTable struct {
	mu    sync.Mutex
	byKey map[string]*rules.Route // plan key -> route
	snap  atomic.Pointer[routeSnapshot]
}

// routeSnapshot is one version of the table.
type routeSnapshot struct {
	byID map[string]*rules.Route // namespace/name
	up   []*rules.Route          // eventbus->rest, sorted by ID
}

func newRouteTable() *routeTable {
	t := &routeTable{byKey: map[string]*rules.Route{}}
	t.snap.Store(&routeSnapshot{byID: map[string]*rules.Route{}})
	return t
}

// set puts (r non-nil) or removes the route under a plan key.
func (t *routeTable) set(key string, r *rules.Route) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r == nil {
		delete(t.byKey, key)
	} else {
		t.byKey[key] = r
	}
	s := &routeSnapshot{byID: make(map[string]*rules.Route, len(t.byKey))}
	for _, r := range t.byKey {
		s.byID[r.ID()] = r
		if r.Pair == rules.EventBusToRest {
			s.up = append(s.up, r)
		}
	}
	sort.Slice(s.up, func(i, j int) bool { return s.up[i].ID() < s.up[j].ID() })
	t.snap.Store(s)
}

// lookup returns the route of a rule.
func (t *routeTable) lookup(id string) *rules.Route { return t.snap.Load().byID[id] }

// matchUp returns the IDs of the eventbus->rest rules whose topic matches,
// comma separated ("" for none). It is called for every WAL record the
// outbox reads, so it allocates only on a match.
func (t *routeTable) matchUp(topic string) string {
	s := t.snap.Load()
	if len(s.up) == 0 {
		return ""
	}
	var ids string
	for _, r := range s.up {
		if rules.MatchTopic(r.Topic, topic) {
			if ids != "" {
				ids += ","
			}
			ids += r.ID()
		}
	}
	return ids
}

// applyRule puts a Rule's route into force.
func (p *planner) applyRule(o *object, v value, env *fleet.Envelope) {
	r, err := rules.DecodeRoute(env.Object)
	if err == nil && (r.Namespace != env.Namespace || r.Name != env.Name) {
		err = fmt.Errorf("the route is rule %s, not %s/%s", r.ID(), env.Namespace, env.Name)
	}
	if err != nil {
		p.reject(o, v.rev, env, err)
		return
	}
	p.l.routes.set(o.key, r)
	p.inForce(o, v, env, fleet.StateApplied, env.Hash)
	p.l.log.Info("applied a rule from the hub", "rule", r.ID(), "pair", r.Pair, "generation", env.Generation)
}

// removeRule takes a Rule's route out of force.
func (p *planner) removeRule(o *object) {
	p.l.routes.set(o.key, nil)
	p.forget(o)
	p.l.log.Info("removed a rule deleted on the hub", "key", o.key)
}

// down serves the router's requests for this node.
type down struct {
	l       *Link
	sem     chan struct{}
	http    *http.Client
	maxBody int
	wg      sync.WaitGroup
	ctx     context.Context
	served  atomic.Uint64
	failed  atomic.Uint64
}

func newDown(ctx context.Context, l *Link) *down {
	maxBody := int(min(l.nc.MaxPayload(), fleet.MaxValueSize)) - replyHeadroom
	return &down{l: l, ctx: ctx, sem: make(chan struct{}, downConcurrency), maxBody: maxBody,
		http: &http.Client{Timeout: serviceTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the caller sees the redirect, as from the service itself
		}}}
}

// subscribe starts taking requests. The subscription is on the embedded
// server: the leaf re-announces it to the hub after every reconnection.
func (d *down) subscribe() (*nats.Subscription, error) {
	return d.l.nc.Subscribe(fleet.DownFilter(d.l.cfg.Node), d.handle)
}

// handle runs on the subscription's goroutine: it hands the request to a
// goroutine of its own (bounded) so a slow local service holds up no other
// request.
func (d *down) handle(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	select {
	case d.sem <- struct{}{}:
	default:
		d.failed.Add(1)
		d.respond(msg, http.StatusServiceUnavailable, nil, "", fmt.Sprintf("node %s is serving %d router requests already; retry", d.l.cfg.Node, downConcurrency))
		return
	}
	d.wg.Add(1)
	go func() {
		defer func() { <-d.sem; d.wg.Done() }()
		d.serve(msg)
	}()
}

func (d *down) serve(msg *nats.Msg) {
	// eddy.down.<node>.rule.<ns>.<name>
	toks := strings.Split(msg.Subject, ".")
	if len(toks) != 6 {
		d.respond(msg, http.StatusBadRequest, nil, "", "malformed router subject "+msg.Subject)
		return
	}
	id := toks[4] + "/" + toks[5]
	r := d.l.routes.lookup(id)
	if r == nil {
		d.failed.Add(1)
		d.respond(msg, http.StatusNotFound, nil, "", fmt.Sprintf("rule %s is not on node %s (yet): its plan has not arrived, or the rule does not place it on this node", id, d.l.cfg.Node))
		return
	}
	switch r.Pair {
	case rules.RestToEventBus:
		ctx, cancel := context.WithTimeout(d.ctx, publishTimeout)
		err := d.l.target.PublishMQTT(ctx, r.Topic, msg.Data)
		cancel()
		if err != nil {
			d.failed.Add(1)
			d.respond(msg, http.StatusBadGateway, nil, "", fmt.Sprintf("publishing on %q on node %s: %v", r.Topic, d.l.cfg.Node, err))
			return
		}
		d.served.Add(1)
		d.respond(msg, http.StatusOK, nil, "", "")
	case rules.RestToServiceBus:
		d.service(msg, r)
	default:
		d.failed.Add(1)
		d.respond(msg, http.StatusBadRequest, nil, "", fmt.Sprintf("rule %s routes %s: it takes no requests", id, r.Pair))
	}
}

// service calls the rule's local HTTP service and replies with its
// response.
func (d *down) service(msg *nats.Msg, r *rules.Route) {
	method := msg.Header.Get(fleet.HeaderMethod)
	if method == "" {
		method = http.MethodPost
	}
	u := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(r.ServicePort), Path: r.ServicePath,
		RawQuery: msg.Header.Get(fleet.HeaderQuery)}
	if sub := msg.Header.Get(fleet.HeaderPath); sub != "" && sub != "/" {
		// The request may only reach paths below the rule's: no dot
		// segments (path.Join would resolve "/../admin" to "/admin").
		for _, seg := range strings.Split(sub, "/") {
			if seg == ".." || seg == "." {
				d.failed.Add(1)
				d.respond(msg, http.StatusBadRequest, nil, "", fmt.Sprintf("servicebus: the path %q has a dot segment; rule %s reaches only paths below %s", sub, r.ID(), r.ServicePath))
				return
			}
		}
		u.Path = path.Join(r.ServicePath, sub)
		if strings.HasSuffix(sub, "/") {
			u.Path += "/"
		}
	}
	ctx, cancel := context.WithTimeout(d.ctx, serviceTimeout)
	defer cancel()
	var body io.Reader
	if len(msg.Data) > 0 {
		body = bytes.NewReader(msg.Data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		d.failed.Add(1)
		d.respond(msg, http.StatusBadRequest, nil, "", fmt.Sprintf("servicebus request: %v", err))
		return
	}
	if ct := msg.Header.Get(fleet.HeaderContentType); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.failed.Add(1)
		d.respond(msg, http.StatusBadGateway, nil, "", fmt.Sprintf("servicebus: calling %s %s on node %s: %v", method, u.String(), d.l.cfg.Node, err))
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, int64(d.maxBody)+1))
	if err == nil && len(out) > d.maxBody {
		err = fmt.Errorf("the response is over %d bytes (the link's message limit)", d.maxBody)
	}
	if err != nil {
		d.failed.Add(1)
		d.respond(msg, http.StatusBadGateway, nil, "", fmt.Sprintf("servicebus: reading the response of %s %s on node %s: %v", method, u.String(), d.l.cfg.Node, err))
		return
	}
	d.served.Add(1)
	d.respond(msg, resp.StatusCode, out, resp.Header.Get("Content-Type"), "")
}

func (d *down) respond(msg *nats.Msg, status int, body []byte, contentType, errMsg string) {
	reply := nats.NewMsg(msg.Reply)
	reply.Data = body
	reply.Header.Set(fleet.HeaderStatus, strconv.Itoa(status))
	if contentType != "" {
		reply.Header.Set(fleet.HeaderContentType, contentType)
	}
	if errMsg != "" {
		reply.Header.Set(fleet.HeaderError, errMsg)
		d.l.log.Debug("router request failed", "subject", msg.Subject, "status", status, "err", errMsg)
	}
	if err := msg.RespondMsg(reply); err != nil {
		d.l.log.Debug("replying to the router", "err", err)
	}
}

// wait waits for the requests being served.
func (d *down) wait() { d.wg.Wait() }
