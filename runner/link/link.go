package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Target is what the link drives: the runner. Methods must be safe for
// concurrent use.
type Target interface {
	// ApplyPipeline runs or hot-replaces a pipeline (only a changed hash
	// restarts it); src is the object it was compiled from.
	ApplyPipeline(ctx context.Context, plan *pipeline.Plan, src []byte) error
	// RemovePipeline stops a pipeline and forgets it.
	RemovePipeline(ctx context.Context, id string) error
	// SetDevices makes devs the complete set of devices from the cloud.
	SetDevices(ctx context.Context, devs []devices.Device) error
	// PipelineStatus reports a running pipeline's state and counters.
	PipelineStatus(id string) (PipelineStatus, bool)
	// Log is the write-ahead log the outbox forwards from.
	Log() wal.Log
	// PublishMQTT publishes payload on the edge's MQTT broker (a
	// rest->eventbus rule's message from the cloud). It returns when the
	// broker took the message (for QoS 1, once it is in the WAL).
	PublishMQTT(ctx context.Context, topic string, payload []byte) error
}

// PipelineStatus is what the link reports of one pipeline.
type PipelineStatus struct {
	// State is Running, Stopped or Failed.
	State fleet.ObjectState
	// Hash is the hash of the plan that runs.
	Hash string
	// Error is the pipeline's error, if any.
	Error string
	// Counters are its totals.
	Counters fleet.PipelineCounters
}

// Status is the link's state for the API, the dashboard and metrics.
type Status struct {
	// State is connected or disconnected.
	State fleet.LinkState `json:"state"`
	// Hub lists the configured hub URLs (without credentials).
	Hub []string `json:"hub"`
	// Node is this edge's name.
	Node string `json:"node"`
	// Since is when State last changed.
	Since time.Time `json:"since"`
	// Outbox counts the data going up.
	Outbox fleet.OutboxStatus `json:"outbox"`
	// Objects is the number of objects under the node's keys, and how
	// many are Failed or Rejected.
	Objects, Problems int `json:"-"`
}

// Link is a running link. Start it after the runner's engine and log are
// up; Close it before them.
type Link struct {
	cfg    Config
	target Target
	log    *slog.Logger

	srv     *server.Server
	nc      *nats.Conn
	client  *fleet.Client
	store   *appliedStore
	plans   *planner
	outbox  *outbox
	routes  *routeTable
	down    *down
	downSub *nats.Subscription

	connected  atomic.Bool
	reconnects atomic.Uint64
	linkEpoch  atomic.Uint64 // increments on every (re)connection
	stateMu    sync.Mutex
	since      time.Time
	changed    chan struct{} // a state change worth a status record now
	startedAt  time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg; nothing runs until Start.
func New(cfg Config, target Target) (*Link, error) {
	cfg.defaults()
	if !cfg.Enabled() {
		return nil, errors.New("link: no hub URL configured")
	}
	if _, err := cfg.leafOptions(); err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, target: target, log: cfg.Logger.With("component", "link"),
		changed: make(chan struct{}, 1)}
	return l, nil
}

// Start applies the last applied set from the data dir (autonomy: the edge
// runs its last plans while the hub is away), starts the embedded leaf
// server and the plan, status and outbox loops. It does not wait for the
// hub.
func (l *Link) Start(ctx context.Context) error {
	var err error
	if l.store, err = openAppliedStore(l.cfg.DataDir); err != nil {
		return err
	}
	l.startedAt = l.cfg.Clock.Now()
	l.since = l.startedAt
	l.routes = newRouteTable()
	l.plans = newPlanner(l)
	l.plans.restore(ctx)
	if l.srv, l.nc, err = startLeaf(&l.cfg); err != nil {
		return err
	}
	if l.client, err = fleet.NewClient(l.nc, l.cfg.Fleet); err != nil {
		l.closeServer()
		return err
	}
	l.outbox, err = newOutbox(l)
	if err != nil {
		l.closeServer()
		return err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.down = newDown(bg, l)
	if l.downSub, err = l.down.subscribe(); err != nil {
		cancel()
		l.closeServer()
		return fmt.Errorf("link: subscribing to router requests: %w", err)
	}
	l.wg.Add(4)
	go func() { defer l.wg.Done(); l.watchConnection(bg) }()
	go func() { defer l.wg.Done(); l.plans.run(bg) }()
	go func() { defer l.wg.Done(); l.reportLoop(bg) }()
	go func() { defer l.wg.Done(); l.outbox.run(bg) }()
	l.log.Info("link started", "node", l.cfg.Node, "hub", l.hubs(), "local", l.LocalURL())
	return nil
}

// hubs returns the hub URLs without credentials.
func (l *Link) hubs() []string {
	out := make([]string, 0, len(l.cfg.Hub))
	for _, h := range l.cfg.Hub {
		out = append(out, redact(h))
	}
	return out
}

// LocalURL returns the loopback URL local apps use, or "".
func (l *Link) LocalURL() string {
	if l.srv == nil || l.cfg.LocalAddr == "-" {
		return ""
	}
	return l.srv.ClientURL()
}

// Conn returns the runner's in-process connection to the leaf.
func (l *Link) Conn() *nats.Conn { return l.nc }

// Client returns the fleet client over the leaf.
func (l *Link) Client() *fleet.Client { return l.client }

// watchConnection follows the leaf connection (the embedded server's leaf
// count) and bumps linkEpoch on every reconnection, so that the plan
// watcher is made again at once (a watcher's consumer lives in the hub's
// memory and is lost with a hub restart; left alone it recovers only after
// 13-17 s).
func (l *Link) watchConnection(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var lastID uint64
	for {
		// The leaf connection's id changes with every reconnection, so a
		// drop and reconnect between two polls is seen too.
		var id uint64
		if l.srv.NumLeafNodes() > 0 {
			if lz, err := l.srv.Leafz(nil); err == nil && len(lz.Leafs) > 0 {
				id = lz.Leafs[0].ID
			}
		}
		up := id != 0
		if up && l.connected.Load() && id != lastID {
			// Reconnected between two polls: make the watcher again.
			l.linkEpoch.Add(1)
			l.reconnects.Add(1)
			l.log.Info("reconnected to the hub", "hub", l.hubs())
			l.notify()
		}
		lastID = id
		if up != l.connected.Load() {
			l.connected.Store(up)
			l.stateMu.Lock()
			l.since = l.cfg.Clock.Now()
			l.stateMu.Unlock()
			if up {
				if l.linkEpoch.Add(1) > 1 {
					l.reconnects.Add(1)
				}
				l.log.Info("connected to the hub", "hub", l.hubs())
			} else {
				l.log.Warn("lost the hub: running the last plans from disk, keeping the outbox in the WAL", "hub", l.hubs())
			}
			l.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Connected reports whether the leaf connection to the hub is up.
func (l *Link) Connected() bool { return l.connected.Load() }

// notify asks for a status record soon.
func (l *Link) notify() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// Status returns the link's state.
func (l *Link) Status() Status {
	st := Status{State: fleet.LinkDisconnected, Hub: l.hubs(), Node: l.cfg.Node}
	if l.connected.Load() {
		st.State = fleet.LinkConnected
	}
	l.stateMu.Lock()
	st.Since = l.since
	l.stateMu.Unlock()
	if l.outbox != nil {
		st.Outbox = l.outbox.status()
	}
	st.Outbox.Reconnects = l.reconnects.Load()
	if l.plans != nil {
		st.Objects, st.Problems = l.plans.counts()
	}
	return st
}

// Objects returns the state of every object under the node's keys.
func (l *Link) Objects() []fleet.ObjectStatus { return l.plans.statuses() }

// nodeStatus builds the record the node writes to the nodes bucket.
func (l *Link) nodeStatus() *fleet.NodeStatus {
	st := l.Status()
	return &fleet.NodeStatus{
		Node: l.cfg.Node, Labels: l.cfg.Labels, Version: l.cfg.Version,
		Capacity:  fleet.Capacity{CPUs: runtime.NumCPU(), MemoryBytes: memTotal()},
		StartedAt: l.startedAt.UTC(), ReportedAt: l.cfg.Clock.Now().UTC(),
		HeartbeatInterval: l.cfg.HeartbeatInterval,
		Outbox:            st.Outbox,
		Objects:           l.plans.statuses(),
		Devices:           l.deviceStates(),
	}
}

// reportLoop writes the node's status record every heartbeat and soon
// after a change, at most every 250ms: never per message.
func (l *Link) reportLoop(ctx context.Context) {
	hb := l.cfg.HeartbeatInterval.Duration
	var last time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.changed:
			if wait := 250*time.Millisecond - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		if l.connected.Load() {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := l.client.PutNodeStatus(wctx, l.nodeStatus()); err != nil && ctx.Err() == nil {
				l.log.Debug("writing the node status", "err", err)
			}
			cancel()
			last = time.Now()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(hb)
	}
}

// Close stops the loops (the outbox saves its cursor), then the embedded
// server.
func (l *Link) Close() error {
	if l.downSub != nil {
		_ = l.downSub.Unsubscribe()
	}
	if l.cancel != nil {
		l.cancel()
	}
	if l.down != nil {
		l.down.wait()
	}
	l.wg.Wait()
	var errs []error
	if l.outbox != nil {
		errs = append(errs, l.outbox.close())
	}
	l.closeServer()
	return errors.Join(errs...)
}

func (l *Link) closeServer() {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// memTotal reads MemTotal from /proc/meminfo (0 elsewhere).
func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb uint64
	if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err != nil {
		return 0
	}
	return kb * 1024
}

// redact removes the password from a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
