// Command eddy-controller is Eddy's Kubernetes controller: it watches
// Pipeline and EdgeNode (eddy.dev/v1alpha1), KubeEdge's Device and
// DeviceModel (devices.kubeedge.io/v1beta1) and Rule and RuleEndpoint
// (rules.kubeedge.io/v1), compiles them with the edge's compiler, writes
// per-node plans into the hub's plans bucket, writes status back from the
// nodes' reports, and serves KubeEdge's router (see docs/controller.md).
//
// It is a separate binary so that the edge binary (`eddy`) never links
// client-go; `eddy controller ...` runs it when it is installed next to
// `eddy` or on PATH.
//
//	eddy-controller --hub nats://hub:4222 --user controller --password-file /etc/eddy/hub-password --leader-elect
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/eddy-edge/eddy/controller"
	"github.com/eddy-edge/eddy/fleet"
)

// Config is everything the controller binary is told through flags.
type Config struct {
	// Controller tunes the reconcilers.
	Controller controller.Options `json:"controller"`
	// Hub reaches the NATS hub as the controller's user.
	Hub HubConfig `json:"hub"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"logLevel,omitempty"`
	// KubeAPIQPS and KubeAPIBurst bound the controller's requests to the
	// API server (client-go's token bucket). Registering N new edge nodes
	// costs 2N writes (create + status), so this bounds how fast a large
	// fleet appears. Default 100 and 200.
	KubeAPIQPS   float32 `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst int     `json:"kubeAPIBurst,omitempty"`
}

// HubConfig reaches the hub. The zero value is `eddy hub` on this machine
// without authentication (development).
type HubConfig struct {
	// URL of the hub's NATS client listener (tls:// for TLS). Default
	// nats://127.0.0.1:4222.
	URL string `json:"url,omitempty"`
	// User authenticates with PasswordFile (or $EDDY_HUB_PASSWORD).
	User string `json:"user,omitempty"`
	// PasswordFile holds the user's password.
	PasswordFile string `json:"passwordFile,omitempty"`
	// Creds is a NATS .creds file (JWT accounts) instead of User.
	Creds string `json:"creds,omitempty"`
	// CA verifies the hub's TLS certificate.
	CA string `json:"ca,omitempty"`
	// Domain is the hub's JetStream domain. Default hub.
	Domain string `json:"domain,omitempty"`
	// Setup creates the fleet's buckets and stream if missing (needs
	// JetStream admin rights; `eddy hub` does it itself). Default true.
	Setup bool `json:"setup"`
	// PlanShards splits the plans over this many buckets when Setup
	// creates them (fleet.Options.PlanShards); 0 keeps the hub's count.
	PlanShards int `json:"planShards,omitempty"`
	// Connect says how long the controller keeps trying to reach the hub
	// at start (a hub that refuses or does not answer yet is retried)
	// and how long one attempt may take; once connected, a lost
	// connection is retried forever. Defaults 30s and 10s.
	Connect fleet.DialOptions `json:"connect,omitempty"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "eddy-controller:", err)
		os.Exit(1)
	}
}

func parse(args []string) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("eddy-controller", flag.ContinueOnError)
	o := &cfg.Controller
	fs.StringVar(&cfg.Hub.URL, "hub", envOr("EDDY_HUB", "nats://127.0.0.1:4222"), "the hub's NATS client URL; env EDDY_HUB")
	fs.StringVar(&cfg.Hub.User, "user", os.Getenv("EDDY_HUB_USER"), "hub user; env EDDY_HUB_USER")
	fs.StringVar(&cfg.Hub.PasswordFile, "password-file", "", "file holding the hub user's password (or env EDDY_HUB_PASSWORD)")
	fs.StringVar(&cfg.Hub.Creds, "creds", "", "NATS .creds file (JWT accounts) instead of --user")
	fs.StringVar(&cfg.Hub.CA, "ca", "", "CA file to verify the hub's TLS certificate")
	fs.StringVar(&cfg.Hub.Domain, "domain", fleet.DefaultDomain, "the hub's JetStream domain")
	fs.BoolVar(&cfg.Hub.Setup, "setup", true, "create the fleet's KV buckets and stream on the hub if missing")
	fs.IntVar(&cfg.Hub.PlanShards, "plan-shards", 0, "with --setup on a new hub: split the plans over this many buckets (0 keeps the hub's count)")
	fs.DurationVar(&cfg.Hub.Connect.Timeout, "hub-connect-timeout", fleet.DefaultDialTimeout, "keep trying to reach the hub at start for this long, then exit")
	fs.DurationVar(&cfg.Hub.Connect.AttemptTimeout, "hub-attempt-timeout", fleet.DefaultAttemptTimeout, "one attempt to reach the hub (TCP, TLS, password check) may take this long")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "run several replicas; only the Lease holder reconciles")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's namespace)")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "eddy-controller", "name of the Lease")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", `Prometheus metrics listener ("0" disables)`)
	fs.StringVar(&o.HealthAddr, "health-addr", ":8081", `/healthz and /readyz listener ("" disables)`)
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", `Go profiles at /debug/pprof/ ("" disables)`)
	fs.DurationVar(&o.StatusInterval, "status-interval", 2*time.Second, "shortest time between two status writes of one object")
	fs.DurationVar(&o.NodeNotReadyAfter, "node-not-ready-after", 40*time.Second, "heartbeat silence after which an EdgeNode turns NotReady")
	fs.DurationVar(&o.HeartbeatWriteInterval, "heartbeat-write-interval", time.Minute, "how often a Ready EdgeNode's lastHeartbeatTime is refreshed")
	fs.IntVar(&o.Workers, "workers", 4, "objects of one kind reconciled in parallel")
	fs.IntVar(&o.Writers, "writers", 256, "plan writes in parallel for one object")
	r := &o.Router
	fs.StringVar(&r.Addr, "router-addr", "", `KubeEdge router: HTTP listener for rest rules, /{node}/{namespace}/{path} (e.g. ":9443"; "" serves none)`)
	fs.StringVar(&r.CertFile, "router-cert", "", "router: TLS certificate (PEM); with --router-key serves HTTPS")
	fs.StringVar(&r.KeyFile, "router-key", "", "router: TLS key (PEM)")
	fs.Int64Var(&r.MaxBodyBytes, "router-max-body", 0, "router: largest request body in bytes; bigger gets 413 (0: the hub's message limit less 16 KiB)")
	fs.DurationVar(&r.RequestTimeout, "router-timeout", 30*time.Second, "router: wait for the edge's reply (then 504)")
	fs.DurationVar(&r.TargetTimeout, "router-target-timeout", 10*time.Second, "router: timeout of one POST of an eventbus->rest message")
	fs.IntVar(&r.Attempts, "router-attempts", 5, "router: POSTs of an eventbus->rest message before it counts as failed")
	fs.DurationVar(&r.Backoff, "router-backoff", 200*time.Millisecond, "router: wait before the second POST; doubles up to 5s")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	qps := fs.Float64("kube-api-qps", 100, "requests per second to the API server (sustained)")
	fs.IntVar(&cfg.KubeAPIBurst, "kube-api-burst", 200, "requests to the API server in a burst")
	// --kubeconfig is controller-runtime's own flag (also $KUBECONFIG, or
	// the in-cluster service account).
	fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all settings are flags; see --help)", fs.Arg(0))
	}
	cfg.KubeAPIQPS = float32(*qps)
	if kc := fs.Lookup("kubeconfig").Value.String(); kc != "" {
		os.Setenv("KUBECONFIG", kc)
	}
	return cfg, nil
}

func run(args []string) error {
	cfg, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Controller.Logger = log
	// client-go and controller-runtime log through process-wide loggers;
	// send both to slog.
	klog.SetLogger(logr.FromSlogHandler(log.Handler()))
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Info("eddy-controller connecting", "hub", cfg.Hub.URL)
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes API server: %w (set --kubeconfig or run in a pod)", err)
	}
	restCfg.QPS, restCfg.Burst = cfg.KubeAPIQPS, cfg.KubeAPIBurst
	fc, closeHub, err := connectHub(ctx, cfg.Hub, log)
	if err != nil {
		return err
	}
	defer closeHub()
	if cfg.Hub.Setup {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := fc.Setup(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%w (run with --setup=false if the hub is set up by someone else)", err)
		}
	}
	f := controller.NewFleet(fc, nil)
	cfg.Controller.RuleBus = f
	c, err := controller.New(restCfg, f, f, cfg.Controller)
	if err != nil {
		return err
	}
	log.Info("eddy-controller starting", "hub", cfg.Hub.URL, "leaderElection", cfg.Controller.LeaderElection)
	return c.Start(ctx)
}

func connectHub(ctx context.Context, h HubConfig, log *slog.Logger) (*fleet.Client, func(), error) {
	opts := []nats.Option{nats.Name("eddy-controller"), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("hub connection lost", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("hub connection back", "url", nc.ConnectedUrl()) }),
	}
	if h.User != "" {
		pw := os.Getenv("EDDY_HUB_PASSWORD")
		if h.PasswordFile != "" {
			b, err := os.ReadFile(h.PasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--password-file: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		opts = append(opts, nats.UserInfo(h.User, pw))
	}
	if h.Creds != "" {
		opts = append(opts, nats.UserCredentials(h.Creds))
	}
	if h.CA != "" {
		opts = append(opts, nats.RootCAs(h.CA))
	}
	dial := h.Connect
	dial.Logger = log
	nc, err := fleet.Dial(ctx, h.URL, dial, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the hub at %s: %w (set --hub, --user and --password-file; --hub-connect-timeout)", h.URL, err)
	}
	c, err := fleet.NewClient(nc, fleet.Options{Domain: h.Domain, Writer: "eddy-controller", Logger: log, PlanShards: h.PlanShards})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, nc.Close, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
