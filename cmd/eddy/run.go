package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/actions"
	"github.com/eddy-edge/eddy/runner/budget"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/wal"
)

// runnerSettings are the settings `eddy run` takes as flags and `eddy edge`
// reads from its config file.
type runnerSettings struct {
	// DataDir holds the WAL, checkpoints and twins; empty keeps them in memory.
	DataDir string `json:"dataDir,omitempty"`
	// MQTTAddr is the broker's TCP address.
	MQTTAddr string `json:"mqttAddr,omitempty"`
	// MQTTWSAddr enables MQTT over WebSocket on this address.
	MQTTWSAddr string `json:"mqttWSAddr,omitempty"`
	// MQTTTLSAddr enables MQTT over TLS on this address.
	MQTTTLSAddr string `json:"mqttTLSAddr,omitempty"`
	// TLSCertFile and TLSKeyFile are the PEM certificate and key for TLS.
	TLSCertFile string `json:"tlsCertFile,omitempty"`
	TLSKeyFile  string `json:"tlsKeyFile,omitempty"`
	// HTTPAddr serves the API, dashboard, /metrics and /healthz; "-" disables.
	HTTPAddr string `json:"httpAddr,omitempty"`
	// AllowAnonymous lets MQTT clients connect without credentials.
	AllowAnonymous bool `json:"allowAnonymous,omitempty"`
	// AuthFile lists MQTT users with bcrypt hashes and topic ACLs.
	AuthFile string `json:"authFile,omitempty"`
	// Node is this edge node's name. Default: the host name.
	Node string `json:"node,omitempty"`
	// CheckpointInterval is the most time between pipeline checkpoints.
	CheckpointInterval pipeline.Duration `json:"checkpointInterval,omitempty"`
	// ShutdownTimeout bounds the shutdown on SIGTERM/SIGINT (default 10s);
	// what has not finished by then is abandoned and logged.
	ShutdownTimeout pipeline.Duration `json:"shutdownTimeout,omitempty"`
	// RetentionMaxAge removes log records older than this (0 = keep).
	RetentionMaxAge pipeline.Duration `json:"retentionMaxAge,omitempty"`
	// RetentionMaxBytes bounds the log's size on disk (0 = no bound).
	RetentionMaxBytes int64 `json:"retentionMaxBytes,omitempty"`
	// RetentionPolicy is block (keep what a pipeline has not read; refuse
	// publishes when full) or drop-oldest.
	RetentionPolicy string `json:"retentionPolicy,omitempty"`
	// MemoryLimit is the memory budget, e.g. 64MiB: it sizes the WAL's
	// buffers, the commit queue and the broker's client queues, and sets
	// the Go runtime's soft limit (GOMEMLIMIT) to it less 16MiB. Empty: the
	// GOMEMLIMIT environment variable if set, else buffers sized for 64MiB
	// and no runtime limit.
	MemoryLimit string `json:"memoryLimit,omitempty"`
	// FileSinkDirs are directories file sinks may write in besides the data
	// dir. File sinks are confined to these when the API requires tokens
	// (eddy edge, or an HTTP address off loopback), so an API token cannot
	// write files anywhere; a relative sink path is inside the data dir.
	FileSinkDirs []string `json:"fileSinkDirs,omitempty"`
	// TokenFile holds the API's bearer tokens.
	TokenFile string `json:"tokenFile,omitempty"`
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP address.
	Pprof bool `json:"pprof,omitempty"`
	// Pipelines are YAML files of Pipeline resources to run.
	Pipelines []string `json:"pipelines,omitempty"`
	// Devices are YAML files of KubeEdge Device and DeviceModel resources.
	Devices []string `json:"devices,omitempty"`
	// Link connects the edge to a hub (docs/fleet.md): hub URLs, node
	// credentials, CA, labels.
	Link link.Config `json:"link,omitempty"`
	// Actions is the policy for container actions (allowed images, which
	// containers Eddy did not start may be stopped or restarted) and the
	// CRI endpoint (docs/actions.md). Empty refuses every action.
	Actions actions.Config `json:"actions,omitempty"`

	// edge is set by `eddy edge`: the API always requires a token.
	edge bool
}

func (s *runnerSettings) config(g *globals) (runner.Config, error) {
	switch s.RetentionPolicy {
	case "", string(wal.Block), string(wal.DropOldest):
	default:
		return runner.Config{}, fmt.Errorf("retention policy %q: use block or drop-oldest", s.RetentionPolicy)
	}
	limit, err := memoryLimit(s.MemoryLimit)
	if err != nil {
		return runner.Config{}, err
	}
	return runner.Config{
		MemoryLimit:        limit,
		DataDir:            s.DataDir,
		ConfineFileSinks:   s.edge || (s.HTTPAddr != "-" && !isLoopback(s.HTTPAddr)),
		FileSinkDirs:       s.FileSinkDirs,
		MQTTAddr:           s.MQTTAddr,
		MQTTWSAddr:         s.MQTTWSAddr,
		MQTTTLSAddr:        s.MQTTTLSAddr,
		TLSCertFile:        s.TLSCertFile,
		TLSKeyFile:         s.TLSKeyFile,
		HTTPAddr:           s.HTTPAddr,
		AllowAnonymous:     s.AllowAnonymous,
		AuthFile:           s.AuthFile,
		Node:               s.Node,
		CheckpointInterval: s.CheckpointInterval.Duration,
		ShutdownTimeout:    s.ShutdownTimeout.Duration,
		Retention: wal.RetentionOptions{MaxAge: s.RetentionMaxAge.Duration, MaxBytes: s.RetentionMaxBytes,
			Policy: wal.Policy(s.RetentionPolicy)},
		Pprof:   s.Pprof,
		Link:    s.Link,
		Actions: s.Actions,
		Logger:  g.logger(),
	}, nil
}

func runCommand(g *globals) *cobra.Command {
	s := &runnerSettings{}
	var checkpoint, maxAge, shutdown time.Duration
	var anonymous string
	cmd := &cobra.Command{
		Use:   "run [flags] FILE|DIR...",
		Short: "Run pipelines and devices from YAML with the embedded broker, WAL and dashboard",
		Long: `Run what the given YAML files and directories declare on this machine, in any mix:
Pipelines (eddy.dev/v1alpha1), and KubeEdge Devices and DeviceModels
(devices.kubeedge.io v1beta1 or v1alpha2), whose twins are served over MQTT and whose
Modbus devices are polled. Every device given is served here, whatever its nodeName
(a warning names those bound to another node). An embedded MQTT broker
accepts device messages, every message is written to the WAL under --data-dir before it
is acknowledged, and the pipelines run on that log. Alerts are logged and published
by the pipelines' sinks. Stop with Ctrl-C: pipelines checkpoint, sinks flush, the log closes.

Anonymous MQTT clients are allowed by default when the broker listens on a loopback
address only; pass --auth-file (and --anonymous=false) otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Pipelines = args
			s.CheckpointInterval.Duration, s.RetentionMaxAge.Duration, s.ShutdownTimeout.Duration = checkpoint, maxAge, shutdown
			switch anonymous {
			case "auto":
				s.AllowAnonymous = isLoopback(s.MQTTAddr)
				if !s.AllowAnonymous && s.AuthFile == "" {
					return fmt.Errorf("--mqtt-addr %s is not a loopback address: pass --auth-file with users, or --anonymous=true to accept anyone", s.MQTTAddr)
				}
			case "true":
				s.AllowAnonymous = true
			case "false":
			default:
				return fmt.Errorf("--anonymous %q: use auto, true or false", anonymous)
			}
			return runRunner(cmd.Context(), g, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.MQTTAddr, "mqtt-addr", "127.0.0.1:1883", "MQTT broker listen address")
	f.StringVar(&s.MQTTWSAddr, "mqtt-ws-addr", "", "MQTT over WebSocket listen address (off when empty)")
	f.StringVar(&s.MQTTTLSAddr, "mqtt-tls-addr", "", "MQTT over TLS listen address (off when empty; needs --tls-cert and --tls-key)")
	f.StringVar(&s.TLSCertFile, "tls-cert", "", "PEM certificate for the TLS listeners")
	f.StringVar(&s.TLSKeyFile, "tls-key", "", "PEM private key for the TLS listeners")
	f.StringVar(&s.DataDir, "data-dir", "./eddy-data", "directory for the WAL, checkpoints and twins (empty: in memory)")
	f.StringVar(&s.HTTPAddr, "http-addr", "127.0.0.1:8080", "API, dashboard and /metrics listen address (- disables)")
	f.StringVar(&anonymous, "anonymous", "auto", "allow MQTT clients without credentials: auto (only on loopback), true or false")
	f.StringVar(&s.AuthFile, "auth-file", "", "YAML file of MQTT users (bcrypt hashes, see eddy passwd) and ACLs")
	f.StringVar(&s.MemoryLimit, "memory-limit", "", "memory budget (e.g. 64MiB): sizes the log's buffers and queues and sets GOMEMLIMIT to it less 16MiB for the binary's code (default: $GOMEMLIMIT, else buffers for 64MiB)")
	f.StringVar(&s.TokenFile, "token-file", "", "API bearer tokens file (default: none needed on loopback)")
	f.BoolVar(&s.Pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on --http-addr")
	f.StringVar(&s.Node, "node", "", "this node's name (default: host name)")
	f.StringSliceVar(&s.Devices, "devices", nil, "more files or directories to run (same as naming them as arguments; kept for KubeEdge Device/DeviceModel files)")
	f.DurationVar(&checkpoint, "checkpoint-interval", 2*time.Second, "most time between pipeline checkpoints")
	f.DurationVar(&shutdown, "shutdown-timeout", 10*time.Second, "bound on the shutdown after SIGTERM/SIGINT (a second signal exits at once)")
	f.DurationVar(&maxAge, "retention-max-age", 0, "remove log records older than this (0: keep)")
	f.Int64Var(&s.RetentionMaxBytes, "retention-max-bytes", 0, "bound the log's size in bytes (0: no bound)")
	f.StringVar(&s.RetentionPolicy, "retention-policy", "block", "when over the bound: block (keep unread data, refuse publishes when full) or drop-oldest")
	return cmd
}

// runRunner starts a runner with the settings and blocks until ctx ends.
func runRunner(ctx context.Context, g *globals, s *runnerSettings) error {
	cfg, err := s.config(g)
	if err != nil {
		return err
	}
	// Load and check everything before starting anything: a typo should
	// not cost a broker restart.
	set, err := loadDocuments(append(append([]string(nil), s.Pipelines...), s.Devices...))
	if err != nil {
		fmt.Fprintln(g.stderr, err)
		return exitError{}
	}
	if !s.edge && len(set.Pipelines)+len(set.Devices) == 0 {
		return fmt.Errorf("no Pipeline or Device documents in %s; eddy run reads %s", strings.Join(append(s.Pipelines, s.Devices...), ", "), knownKinds())
	}
	if err := setupHTTP(&cfg, s, g); err != nil {
		return err
	}
	r, err := runner.New(cfg)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer r.Close()
	if err := serveDevices(ctx, r, cfg.Logger, cfg.Node, s.edge, set.Devices); err != nil {
		return err
	}
	for _, l := range set.Pipelines {
		if err := r.Apply(ctx, l.Plan, l.Src); err != nil {
			return err
		}
	}
	// Compiling and applying many pipelines leaves garbage the runtime
	// would hold for minutes (no GC runs while idle): give it back now.
	debug.FreeOSMemory()
	<-ctx.Done()
	cfg.Logger.Info("shutting down: intake stopped, checkpointing pipelines, then closing the broker and the log")
	if err := r.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// memoryLimit is the budget from --memory-limit / memoryLimit, else from
// the GOMEMLIMIT the runtime already applied, else 0 (budget.Default).
func memoryLimit(flag string) (int64, error) {
	if flag != "" {
		n, err := budget.Parse(flag)
		if err != nil {
			return 0, fmt.Errorf("--memory-limit: %w", err)
		}
		if _, err := budget.For(n); err != nil {
			return 0, fmt.Errorf("--memory-limit: %w", err)
		}
		return n, nil
	}
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 && os.Getenv("GOMEMLIMIT") != "" {
		return max(n, budget.Min), nil
	}
	return 0, nil
}

func goLimitString() string {
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		return budget.Format(n)
	}
	return "off"
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
