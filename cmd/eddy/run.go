package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/internal/configspec"
	"github.com/eddy-edge/eddy/internal/exemem"
	"github.com/eddy-edge/eddy/internal/procs"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/budget"
)

func runCommand(g *globals) *cobra.Command {
	s := runDefaults()
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
address only and there is no --auth-file. Every flag is also a key of the eddy edge
config file (docs/edge-config.md).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Pipelines = args
			return runRunner(cmd.Context(), g, &s, false)
		},
	}
	configspec.BindFlags(cmd.Flags(), &s, settingsFields(), nil)
	return cmd
}

// runRunner starts a runner with the settings and blocks until ctx ends.
// With edge set (eddy edge) the API always requires a token and only this
// node's devices are served.
func runRunner(ctx context.Context, g *globals, s *settings, edge bool) error {
	limit, setRuntime, err := memoryLimit(s.MemoryLimit)
	if err != nil {
		return err
	}
	govern, err := applyCPUs(s.CPUs)
	if err != nil {
		return err
	}
	s.MemoryLimit = limit
	cfg := s.Config
	cfg.Logger = g.logger()
	cpus := fmt.Sprint(runtime.GOMAXPROCS(0))
	if govern {
		cpus = fmt.Sprintf("1-%d by load", runtime.GOMAXPROCS(0))
	}
	// When the API requires tokens, a token must not let its holder write
	// any file the process can reach through a file sink.
	cfg.ConfineFileSinks = edge || (cfg.HTTPAddr != "-" && !runner.IsLoopback(cfg.HTTPAddr))
	// Load and check everything before starting anything: a typo should
	// not cost a broker restart.
	set, err := loadDocuments(append(append([]string(nil), s.Pipelines...), s.Devices...))
	if err != nil {
		fmt.Fprintln(g.stderr, err)
		return exitError{}
	}
	if n := len(set.Rules) + len(set.Endpoints) + len(set.EdgeNodes); n > 0 {
		g.logger().Warn("Rule, RuleEndpoint and EdgeNode documents are for eddy-controller (kubectl apply); eddy run checked and ignores them", "documents", n)
	}
	if !edge && len(set.Pipelines)+len(set.Devices) == 0 {
		return fmt.Errorf("no Pipeline or Device documents in %s; eddy run reads %s", strings.Join(append(s.Pipelines, s.Devices...), ", "), knownKinds())
	}
	if err := setupHTTP(&cfg, s.TokenFile, edge, g); err != nil {
		return err
	}
	sizes, err := budget.For(int64(cfg.MemoryLimit))
	if err != nil {
		return err
	}
	if setRuntime {
		debug.SetMemoryLimit(sizes.GoLimit)
	}
	cfg.Logger.Info("memory budget", "limit", budget.Format(sizes.Limit), "gomemlimit", goLimitString(), "cpus", cpus,
		"wal_cache", budget.Format(sizes.WALCacheBytes), "wal_segment", budget.Format(int64(sizes.WALSegmentSize)))
	r, err := runner.New(cfg)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer r.Close()
	if govern {
		gov := &procs.Governor{Max: runtime.GOMAXPROCS(0), Usage: procs.ProcessCPU,
			Set: func(n int) { runtime.GOMAXPROCS(n) }, Logger: cfg.Logger,
			Blocked: func() time.Duration { return r.Log().Stats().FsyncTime }}
		ctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); gov.Run(ctx) }()
		// The governor gives every core back as soon as ctx ends (a
		// signal), and before r.Close's final checkpoints.
		defer func() { stop(); <-done }()
	}
	if err := serveDevices(ctx, r, cfg.Logger, cfg.Node, edge, set.Devices); err != nil {
		return err
	}
	for _, l := range set.Pipelines {
		if err := r.Apply(ctx, l.Plan, l.Src); err != nil {
			return err
		}
	}
	// Compiling and applying many pipelines leaves garbage the runtime
	// would hold for minutes (no GC runs while idle): give it back now,
	// and the pages of the binary that start-up touched (package init,
	// flags, YAML, compiling): 10-11 MiB of RSS that a running edge does
	// not use (docs/design.md, "The binary's pages").
	debug.FreeOSMemory()
	if st, err := exemem.Release(); err != nil {
		cfg.Logger.Warn("could not release the binary's start-up pages; RSS stays higher", "err", err)
	} else {
		cfg.Logger.Debug("released the binary's start-up pages", "resident", budget.Format(st.Resident), "mappings", st.Mappings)
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down: intake stopped, checkpointing pipelines, then closing the broker and the log")
	if err := r.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// memoryLimit is the budget from --memory-limit / memoryLimit (then the
// command sets the runtime's limit: setRuntime), else from the GOMEMLIMIT
// the runtime already applied, else budget.Default, whose runtime limit
// the command sets too: without any limit a burst's garbage can take the
// heap to twice its peak live size, however large (the Go default
// GOGC=100 alone); with one the collector works harder only as the heap
// nears it, which a runner inside its budget never does.
func memoryLimit(configured budget.Size) (limit budget.Size, setRuntime bool, err error) {
	if configured != 0 {
		if _, err := budget.For(int64(configured)); err != nil {
			return 0, false, fmt.Errorf("memoryLimit (--memory-limit): %w", err)
		}
		return configured, true, nil
	}
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 && os.Getenv("GOMEMLIMIT") != "" {
		return budget.Size(max(n, budget.Min)), false, nil
	}
	return budget.Default, true, nil
}

func goLimitString() string {
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		return budget.Format(n)
	}
	return "off"
}

// applyCPUs sets the Go runtime's GOMAXPROCS to the configured cores, or
// for 0 says whether a procs.Governor should size it by load: when the
// runtime has more than one core to offer and GOMAXPROCS was not set in
// the environment (which, like --cpus, fixes it).
func applyCPUs(n int) (govern bool, err error) {
	switch {
	case n < 0:
		return false, fmt.Errorf("cpus: %d is negative; give the number of cores to use, or 0 to let eddy choose by load", n)
	case n > 0:
		runtime.GOMAXPROCS(n)
		return false, nil
	}
	return os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) > 1, nil
}
