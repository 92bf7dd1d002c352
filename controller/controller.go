package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/eddy-edge/eddy/clock"
	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
)

// Options configure a Controller. The zero value works (with a PlanStore
// and Feed handed to New).
type Options struct {
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger `json:"-"`
	// Clock is the time source; nil means the system clock.
	Clock clock.Clock `json:"-"`
	// StatusInterval is the shortest time between two status writes of
	// one object (counters and Running are batched over it). Default 2s.
	StatusInterval time.Duration `json:"statusInterval,omitempty"`
	// NodeNotReadyAfter is the heartbeat silence after which an EdgeNode
	// turns Ready=False. Default 40s.
	NodeNotReadyAfter time.Duration `json:"nodeNotReadyAfter,omitempty"`
	// HeartbeatWriteInterval is how often a Ready node's
	// status.lastHeartbeatTime is refreshed in the API server (a change of
	// Ready is written at once). Default 1m, as kubelet's node status.
	HeartbeatWriteInterval time.Duration `json:"heartbeatWriteInterval,omitempty"`
	// Workers reconcile objects of one kind in parallel (one key is never
	// reconciled twice at once). Default 4.
	Workers int `json:"workers,omitempty"`
	// Writers is how many plan writes to the store run in parallel for
	// one object placed on many nodes. Each write is a round trip to the
	// hub, so a fan-out is bound by latency: at 10,000 nodes 256 in
	// flight took 14 s where 64 took 25 s (docs/scale.md). Default 256.
	Writers int `json:"writers,omitempty"`
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool `json:"leaderElection,omitempty"`
	// LeaderElectionNamespace holds the Lease (default: the namespace the
	// controller runs in).
	LeaderElectionNamespace string `json:"leaderElectionNamespace,omitempty"`
	// LeaderElectionID names the Lease. Default eddy-controller.
	LeaderElectionID string `json:"leaderElectionID,omitempty"`
	// MetricsAddr serves Prometheus metrics ("0" disables; default "0").
	MetricsAddr string `json:"metricsAddr,omitempty"`
	// HealthAddr serves /healthz and /readyz ("" disables).
	HealthAddr string `json:"healthAddr,omitempty"`
	// Router configures KubeEdge's router for Rules (docs/controller.md,
	// "Rules").
	Router RouterOptions `json:"router,omitempty"`
	// RuleBus carries the router's traffic to and from the edges (the
	// Fleet does). Without it Rules are still compiled and shipped, but
	// nothing is routed.
	RuleBus RuleBus `json:"-"`
	// PprofAddr serves Go's /debug/pprof/ profiles ("" or "0" disables).
	// For profiling a large fleet; do not expose it beyond the pod.
	PprofAddr string `json:"pprofAddr,omitempty"`
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 2 * time.Second
	}
	if o.NodeNotReadyAfter <= 0 {
		o.NodeNotReadyAfter = 40 * time.Second
	}
	if o.HeartbeatWriteInterval <= 0 {
		o.HeartbeatWriteInterval = time.Minute
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Writers <= 0 {
		o.Writers = 256
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "eddy-controller"
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
}

// Scheme returns a scheme with the built-in kinds and every kind the
// controller serves.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, eddyv1alpha1.AddToScheme, devicesv1beta1.AddToScheme, rulesv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // programming error: the types above are static
		}
	}
	return s
}

// Controller runs the reconcilers. Create it with New, run it with Start.
type Controller struct {
	opts   Options
	mgr    manager.Manager
	store  PlanStore
	feed   Feed
	track  *tracker
	client client.Client

	pipelineEvents chan event.GenericEvent
	deviceEvents   chan event.GenericEvent
	ruleEvents     chan event.GenericEvent
	nodeEvents     chan event.GenericEvent

	started      time.Time    // when this replica started (grace for heartbeats)
	statusWrites atomic.Int64 // status writes to the API server
	planWrites   atomic.Int64 // plan writes to the store
	reconciles   atomic.Int64 // reconciles run (all kinds)
}

// StatusWrites counts the status writes this replica made to the API
// server (for benchmarks and metrics).
func (c *Controller) StatusWrites() int64 { return c.statusWrites.Load() }

// PlanWrites counts the plans this replica wrote to the store.
func (c *Controller) PlanWrites() int64 { return c.planWrites.Load() }

// New builds a controller against the API server at cfg, shipping plans
// into store and reading edge reports from feed.
func New(cfg *rest.Config, store PlanStore, feed Feed, opts Options) (*Controller, error) {
	if store == nil || feed == nil {
		return nil, errors.New("controller: a PlanStore and a Feed are required (the fleet's NATS client provides both)")
	}
	opts.defaults()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  logr.FromSlogHandler(opts.Logger.Handler()),
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Give the Lease up on a clean shutdown so the next replica takes
		// over at once instead of after LeaseDuration.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		PprofBindAddress:              opts.PprofAddr,
		// Controller names label process-wide metrics; several
		// controllers in one process (tests, a leader and its standby)
		// are legitimate.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("controller: connect to the API server: %w", err)
	}
	c := &Controller{
		opts: opts, mgr: mgr, store: store, feed: feed, track: newTracker(), client: mgr.GetClient(),
		pipelineEvents: make(chan event.GenericEvent, 1024),
		deviceEvents:   make(chan event.GenericEvent, 1024),
		ruleEvents:     make(chan event.GenericEvent, 1024),
		nodeEvents:     make(chan event.GenericEvent, 1024),
	}
	c.track.notReadyAfter = opts.NodeNotReadyAfter
	if err := c.setup(); err != nil {
		return nil, err
	}
	return c, nil
}

// Start runs the controller until ctx ends. With leader election only the
// leader reconciles; every replica reads the edges' reports, so a new
// leader starts with what the old one knew.
func (c *Controller) Start(ctx context.Context) error {
	c.started = c.opts.Clock.Now()
	return c.mgr.Start(ctx)
}

// Elected is closed when this replica becomes the leader (at once without
// leader election).
func (c *Controller) Elected() <-chan struct{} { return c.mgr.Elected() }

func (c *Controller) setup() error {
	// Every replica follows the feed.
	if err := c.mgr.Add(feedRunnable{c}); err != nil {
		return err
	}
	// Only the leader turns changes into reconciles.
	if err := c.mgr.Add(manager.RunnableFunc(c.flush)); err != nil {
		return err
	}
	if err := c.setupPipelines(); err != nil {
		return fmt.Errorf("controller: pipelines: %w", err)
	}
	if err := c.setupNodes(); err != nil {
		return fmt.Errorf("controller: edge nodes: %w", err)
	}
	if err := c.setupDevices(); err != nil {
		return fmt.Errorf("controller: devices: %w", err)
	}
	if err := c.setupRules(); err != nil {
		return fmt.Errorf("controller: rules: %w", err)
	}
	if c.opts.RuleBus != nil {
		if err := newRouter(c, c.opts.RuleBus, c.opts.Router).setup(); err != nil {
			return fmt.Errorf("controller: router: %w", err)
		}
	}
	if c.opts.HealthAddr != "" {
		if err := c.mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
			return err
		}
		if err := c.mgr.AddReadyzCheck("ping", func(*http.Request) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// feedRunnable runs the feed on every replica.
type feedRunnable struct{ c *Controller }

func (f feedRunnable) NeedLeaderElection() bool { return false }

func (f feedRunnable) Start(ctx context.Context) error {
	for {
		err := f.c.feed.Run(ctx, f.c.track)
		if ctx.Err() != nil {
			return nil
		}
		f.c.opts.Logger.Warn("edge feed stopped; restarting in 1s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// flush turns the tracker's dirty sets into reconcile requests once per
// StatusInterval.
func (c *Controller) flush(ctx context.Context) error {
	t := c.opts.Clock.NewTicker(c.opts.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		objs, nodes := c.track.takeDirty()
		for _, k := range objs {
			ev := event.GenericEvent{}
			switch k.Kind {
			case KindPipeline:
				ev.Object = &eddyv1alpha1.Pipeline{}
			case KindDevice:
				ev.Object = &devicesv1beta1.Device{}
			case KindRule:
				ev.Object = &rulesv1.Rule{}
			default:
				continue
			}
			ev.Object.SetNamespace(k.Namespace)
			ev.Object.SetName(k.Name)
			if !send(ctx, c.eventsFor(k.Kind), ev) {
				return nil
			}
		}
		for _, n := range nodes {
			en := &eddyv1alpha1.EdgeNode{}
			en.SetName(n)
			if !send(ctx, c.nodeEvents, event.GenericEvent{Object: en}) {
				return nil
			}
		}
	}
}

func (c *Controller) eventsFor(k ObjectKind) chan event.GenericEvent {
	switch k {
	case KindDevice:
		return c.deviceEvents
	case KindRule:
		return c.ruleEvents
	}
	return c.pipelineEvents
}

func send(ctx context.Context, ch chan event.GenericEvent, ev event.GenericEvent) bool {
	select {
	case ch <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
