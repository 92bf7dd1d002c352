// Package runner is the edge process: it wires the embedded MQTT broker, the
// write-ahead log, the pipeline engine, device twins and the HTTP API into
// one Runner that `eddy run` and `eddy edge` start. It owns start-up order,
// shutdown order (stop intake, checkpoint pipelines, flush, close the log)
// and the glue between parts; each part lives in its own sub-package.
//
// It must never import the controller or client-go: the edge binary stays
// small and works without the cloud.
package runner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/file"
	"github.com/eddy-edge/eddy/connectors/logsink"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/actions"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/budget"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Config configures a Runner. The zero value runs everything in memory
// with the broker on 127.0.0.1:1883, anonymous clients refused.
type Config struct {
	// DataDir holds the WAL, checkpoints and twin state. Empty keeps all of
	// it in memory (nothing survives a restart).
	DataDir string
	// MQTTAddr is the broker's TCP listener. Default 127.0.0.1:1883.
	MQTTAddr string
	// MQTTWSAddr enables an MQTT-over-WebSocket listener.
	MQTTWSAddr string
	// MQTTTLSAddr enables an MQTT-over-TLS listener (with TLSCertFile and
	// TLSKeyFile); the WebSocket listener then uses TLS too.
	MQTTTLSAddr string
	// TLSCertFile and TLSKeyFile are a PEM certificate and key.
	TLSCertFile, TLSKeyFile string
	// HTTPAddr is the API / dashboard / metrics listener. Default
	// 127.0.0.1:8080; "-" disables it.
	HTTPAddr string
	// AllowAnonymous lets MQTT clients connect without credentials.
	AllowAnonymous bool
	// AuthFile lists MQTT users (bcrypt hashes) and their topic ACLs.
	AuthFile string
	// MemoryLimit is the memory budget in bytes that sizes the WAL's
	// segments and tail cache, the commit queue and the broker's client
	// queues (see runner/budget). 0 sizes them for budget.Default. The
	// runner does not set the Go runtime's limit: that is process-wide,
	// and the command does it (debug.SetMemoryLimit).
	MemoryLimit int64
	// ConfineFileSinks limits file sinks to DataDir and FileSinkDirs (a
	// relative path is taken inside DataDir), so that whoever may change
	// pipelines cannot write any file the process can reach. `eddy edge`
	// and any runner whose API is off loopback set it.
	ConfineFileSinks bool `json:"-"`
	// FileSinkDirs are more directories file sinks may write in when
	// ConfineFileSinks is set.
	FileSinkDirs []string `json:"fileSinkDirs,omitempty"`
	// Retention bounds the WAL.
	Retention wal.RetentionOptions
	// Node is this edge node's name (twins, membership, plans).
	Node string
	// CheckpointInterval is the most time between pipeline checkpoints.
	// Default 2s.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds Close: stopping intake, the pipelines' final
	// checkpoints and closing the broker and the log. What has not
	// finished by then is abandoned and named in Close's error (those
	// pipelines replay from their last checkpoint on the next start).
	// Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Clock is the time source. Default: the real clock.
	Clock clock.Clock
	// DeviceFiles are YAML files of KubeEdge Device and DeviceModel
	// resources: their twins are served over MQTT and Modbus devices are
	// polled (see devices.go).
	DeviceFiles []string
	// ReadOnly makes the API refuse pipeline changes (controller-managed
	// edges).
	ReadOnly bool
	// Pprof serves Go's profiler under /debug/pprof/ on HTTPAddr.
	Pprof bool
	// Link connects the runner to a hub (runner/link): plans down, status
	// and the WAL outbox up. Off when Link.Hub is empty.
	Link link.Config `json:"link,omitempty"`
	// Actions is the edge's policy for container actions (which images
	// may run, which foreign containers may be stopped or restarted) and
	// the container runtime's CRI endpoint. The zero value refuses every
	// action; see docs/actions.md.
	Actions actions.Config `json:"actions,omitempty"`
	// HTTPHandler, when set, builds the HTTP handler served on HTTPAddr
	// (the API and dashboard); otherwise only /healthz is served.
	HTTPHandler func(r *Runner) (http.Handler, error)
}

// Runner is a running edge process.
type Runner struct {
	cfg    Config
	logger *slog.Logger

	log     wal.Log
	ckpt    checkpoint.Store
	broker  *broker.Broker
	engine  *engine.Engine
	httpSrv *http.Server
	httpLn  net.Listener
	devices *deviceRuntime
	link    *link.Link
	trimmer *memoryTrimmer
	actions *actions.Manager

	mu       sync.Mutex
	sources  map[string][]byte // pipeline id -> the YAML it was loaded from
	closed   bool
	closing  atomic.Bool // Close has begun: /healthz answers 503
	closeErr error
}

// New prepares a runner; nothing listens until Start.
func New(cfg Config) (*Runner, error) {
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = "127.0.0.1:1883"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8080"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	return &Runner{cfg: cfg, logger: cfg.Logger, sources: map[string][]byte{}}, nil
}

// Start opens the log, starts the engine, the broker and the HTTP server,
// in that order, so that no message is accepted before it can be logged
// and no pipeline runs before its sinks can publish.
func (r *Runner) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.openStorage(ctx); err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if r.cfg.MQTTTLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLSCertFile, r.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("MQTT TLS listener: loading certificate %q and key %q: %w", r.cfg.TLSCertFile, r.cfg.TLSKeyFile, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	sizes, err := budget.For(r.cfg.MemoryLimit)
	if err != nil {
		return err
	}
	r.broker, err = broker.New(broker.Options{
		MaxPendingWrites: sizes.BrokerPendingWrites,
		Addr:             r.cfg.MQTTAddr,
		WSAddr:           r.cfg.MQTTWSAddr,
		TLS:              tlsCfg,
		TLSAddr:          r.cfg.MQTTTLSAddr,
		AllowAnonymous:   r.cfg.AllowAnonymous,
		AuthFile:         r.cfg.AuthFile,
		Log:              walAppender{r.log},
		LogInline:        true,
		// Sink output is logged only when a pipeline reads its topic:
		// everything else can be derived again by replaying the log.
		LogInlineTopic: func(topic string) bool { return r.engine != nil && r.engine.Reads(topic) },
		Logger:         r.logger.With("component", "broker"),
		Clock:          r.cfg.Clock,
	})
	if err != nil {
		return err
	}
	twins, err := r.initDevices(ctx)
	if err != nil {
		return err
	}
	if err := r.startActions(ctx); err != nil {
		return err
	}
	reg := engine.NewRegistry()
	reg.RegisterSink("mqtt", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		return mqtt.NewSink(r.broker, s.MQTT)
	})
	reg.RegisterSink("file", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		path := s.File.Path
		if r.cfg.ConfineFileSinks {
			var dirs []string
			if r.cfg.DataDir != "" {
				dirs = append(dirs, r.cfg.DataDir)
			}
			var err error
			if path, err = file.Confine(path, append(dirs, r.cfg.FileSinkDirs...)); err != nil {
				return nil, err
			}
		}
		return file.Open(path)
	})
	reg.RegisterSink("log", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		return logsink.New(b.Logger.With("sink", b.Node.ID), s.Log.Level)
	})
	reg.RegisterSink("cloud", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		if !r.cfg.Link.Enabled() {
			return nil, fmt.Errorf("a cloud sink needs a link to a hub: set link.hub in the edge config (docs/fleet.md)")
		}
		return link.NewCloudSink(r.log, s.Cloud, func() int64 { return r.cfg.Clock.Now().UnixNano() })
	})
	reg.RegisterSink("action", func(b *engine.Build, s *pipeline.Sink) (engine.Sink, error) {
		return r.actions.NewSink(b.Plan, b.Node.ID, s.Action)
	})
	r.engine, err = engine.New(engine.Options{
		Log:                r.log,
		Checkpoints:        r.ckpt,
		Twins:              twins,
		Registry:           reg,
		Clock:              r.cfg.Clock,
		Logger:             r.logger.With("component", "engine"),
		CheckpointInterval: r.cfg.CheckpointInterval,
		StartAtEnd:         false,
		OnAlert: func(plan *pipeline.Plan, ev *pipeline.Event) {
			r.alertUplink(plan, ev)
			r.logger.Info("alert", "pipeline", plan.ID(), "state", ev.Fields["state"], "severity", ev.Fields["severity"],
				"key", ev.Key, "alert_id", ev.Fields["alert_id"], "message", ev.Fields["message"])
		},
	})
	if err != nil {
		return err
	}
	r.trimmer = newMemoryTrimmer(r.cfg.Clock, r.log)
	go r.trimmer.run()
	// The broker must outlive ctx (a signal): pipelines publish their last
	// output through it while they stop. Close stops it, in order.
	if err := r.broker.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting the MQTT broker on %s: %w", r.cfg.MQTTAddr, err)
	}
	r.logger.Info("MQTT broker listening", "addr", r.broker.Addr().String(), "anonymous", r.cfg.AllowAnonymous)
	if err := r.startDevices(ctx); err != nil {
		return err
	}
	if err := r.startLink(ctx); err != nil {
		return err
	}
	return r.startHTTP()
}

func (r *Runner) openStorage(ctx context.Context) error {
	sizes, err := budget.For(r.cfg.MemoryLimit)
	if err != nil {
		return err
	}
	if r.cfg.DataDir == "" {
		r.log = wal.NewMemory(wal.MemoryOptions{RetentionOptions: r.cfg.Retention, Clock: r.cfg.Clock,
			Logger: r.logger.With("component", "wal")})
		r.ckpt = checkpoint.NewMemoryStore()
		r.logger.Warn("no data dir: the log and checkpoints are in memory and will not survive a restart")
		return nil
	}
	if err := os.MkdirAll(r.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	f, err := wal.Open(ctx, filepath.Join(r.cfg.DataDir, "wal"), wal.Options{RetentionOptions: r.cfg.Retention,
		SegmentSize: sizes.WALSegmentSize, SegmentCache: sizes.WALSegmentCache,
		CacheBytes: sizes.WALCacheBytes, CacheRecords: sizes.WALCacheRecords, MaxAsyncQueue: sizes.WALAsyncQueue,
		Clock: r.cfg.Clock, Logger: r.logger.With("component", "wal")})
	if err != nil {
		return fmt.Errorf("opening the WAL in %s: %w", r.cfg.DataDir, err)
	}
	r.log = f
	r.ckpt, err = checkpoint.NewFileStore(filepath.Join(r.cfg.DataDir, "checkpoints"), checkpoint.FileOptions{Logger: r.logger.With("component", "checkpoint")})
	if err != nil {
		return fmt.Errorf("opening checkpoints: %w", err)
	}
	return nil
}

func (r *Runner) startHTTP() error {
	if r.cfg.HTTPAddr == "-" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.closing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	var h http.Handler = mux
	if r.cfg.HTTPHandler != nil {
		var err error
		if h, err = r.cfg.HTTPHandler(r); err != nil {
			return err
		}
	}
	if r.cfg.Pprof {
		outer := http.NewServeMux()
		outer.HandleFunc("/debug/pprof/", pprof.Index)
		outer.HandleFunc("/debug/pprof/profile", pprof.Profile)
		outer.HandleFunc("/debug/pprof/trace", pprof.Trace)
		outer.Handle("/", h)
		h = outer
	}
	ln, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener on %s: %w (choose another with --http-addr)", r.cfg.HTTPAddr, err)
	}
	r.httpLn = ln
	r.httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.logger.Error("HTTP server stopped", "err", err)
		}
	}()
	r.logger.Info("HTTP listening", "addr", ln.Addr().String())
	return nil
}

// Apply runs (or replaces) a compiled pipeline. src is the YAML it came
// from, kept for the API.
func (r *Runner) Apply(ctx context.Context, plan *pipeline.Plan, src []byte) error {
	if err := r.engine.Apply(ctx, plan); err != nil {
		return fmt.Errorf("pipeline %s: %w", plan.ID(), err)
	}
	r.mu.Lock()
	r.sources[plan.ID()] = src
	r.mu.Unlock()
	r.logger.Info("pipeline running", "pipeline", plan.ID(), "hash", plan.Hash)
	return nil
}

// ApplyFile loads, compiles and runs every pipeline in a YAML file.
func (r *Runner) ApplyFile(ctx context.Context, path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	plans, err := pipeline.Load(path, src)
	if err != nil {
		return err
	}
	for _, p := range plans {
		if err := r.Apply(ctx, p, src); err != nil {
			return err
		}
	}
	return nil
}

// Source returns the YAML a pipeline was loaded from.
func (r *Runner) Source(id string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.sources[id]
	return b, ok
}

// Engine returns the pipeline engine.
func (r *Runner) Engine() *engine.Engine { return r.engine }

// Broker returns the embedded MQTT broker.
func (r *Runner) Broker() *broker.Broker { return r.broker }

// Actions returns the container action manager.
func (r *Runner) Actions() *actions.Manager { return r.actions }

// startActions starts the action manager: it reads the actions stream back
// from the log and reconciles unfinished intents with the runtime before
// any pipeline can trigger an action, and records the pod lifecycle.
func (r *Runner) startActions(ctx context.Context) error {
	dir := ""
	if r.cfg.DataDir != "" {
		dir = filepath.Join(r.cfg.DataDir, "actions")
	}
	m, err := actions.New(actions.Options{Config: r.cfg.Actions, Log: r.log, Node: r.cfg.Node, DataDir: dir,
		Logger: r.logger.With("component", "actions"), Clock: r.cfg.Clock})
	if err != nil {
		return err
	}
	r.actions = m
	return m.Start(ctx)
}

// Log returns the write-ahead log.
func (r *Runner) Log() wal.Log { return r.log }

// HTTPAddr returns the HTTP listener's address, or nil.
func (r *Runner) HTTPAddr() net.Addr {
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// Close shuts down in the order that loses nothing, within
// Config.ShutdownTimeout; it is Shutdown with that bound.
func (r *Runner) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	return r.Shutdown(ctx)
}

// Shutdown stops the runner in the order that loses nothing:
//
//  1. the broker stops taking messages from clients (listeners closed,
//     publishes refused unacknowledged, so a QoS 1/2 client resends to
//     the next run), and device pollers stop; /healthz turns 503;
//  2. every pipeline finishes the event in hand, flushes and writes its
//     final checkpoint, while the broker still takes its output;
//  3. the broker closes (subscribers are disconnected), then HTTP;
//  4. the log closes (its queued appends are committed first).
//
// When ctx ends first, the steps not done are abandoned: the error names
// them (pipelines left without a final checkpoint replay from their last
// one on the next start; nothing acknowledged is lost, since the log holds
// it). Later calls return the first call's result.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.closeErr
	}
	r.closed = true
	r.mu.Unlock()
	r.closing.Store(true)
	start := r.cfg.Clock.Now()
	var errs []error
	if r.link != nil {
		// First: no plan may be applied while the engine stops.
		errs = append(errs, r.link.Close())
	}
	if r.broker != nil {
		r.broker.StopIntake()
	}
	errs = append(errs, r.closeDevices())
	if r.engine != nil {
		if err := r.engine.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if r.broker != nil {
		errs = append(errs, r.broker.Close())
	}
	if r.actions != nil {
		errs = append(errs, r.actions.Close())
	}
	if r.httpSrv != nil {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := r.httpSrv.Shutdown(hctx); err != nil {
			_ = r.httpSrv.Close()
			errs = append(errs, fmt.Errorf("HTTP server: %w", err))
		}
		cancel()
	}
	if r.trimmer != nil {
		r.trimmer.Close()
	}
	if r.log != nil {
		if err := closeWithin(ctx, r.log.Close); err != nil {
			errs = append(errs, fmt.Errorf("closing the WAL: %w", err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		r.logger.Error("shutdown incomplete", "err", err, "took", r.cfg.Clock.Now().Sub(start))
	} else {
		r.logger.Info("shutdown complete", "took", r.cfg.Clock.Now().Sub(start))
	}
	r.mu.Lock()
	r.closeErr = err
	r.mu.Unlock()
	return err
}

// closeWithin runs close, but returns when ctx ends first (close goes on
// in the background).
func closeWithin(ctx context.Context, close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("abandoned after the shutdown bound: %w", ctx.Err())
	}
}

// walAppender logs broker messages in the WAL: QoS 1/2 durably (the
// broker acknowledges after fsync; network clients' publishes through
// AppendNotify, so that a client's read loop does not wait for each fsync),
// QoS 0 asynchronously (queued for the next group commit; at most once,
// like QoS 0 itself).
type walAppender struct{ log wal.Log }

var _ broker.NotifyAppender = walAppender{}

func (a walAppender) Append(ctx context.Context, msg *broker.Message, durable bool) error {
	d := wal.Async
	if durable {
		d = wal.Durable
	}
	return a.log.AppendWith(ctx, d, walRecord(msg))
}

// AppendNotify implements broker.NotifyAppender: the WAL copies the record
// and calls done from its committer after the fsync, in offset order.
func (a walAppender) AppendNotify(ctx context.Context, msg *broker.Message, done func(error)) error {
	return a.log.AppendNotify(ctx, wal.Durable, done, walRecord(msg))
}

func walRecord(msg *broker.Message) *wal.Record {
	return &wal.Record{Time: msg.Time.UnixNano(), Topic: msg.Topic, Payload: msg.Payload,
		QoS: msg.QoS, Retain: msg.Retain, Client: msg.Client}
}
