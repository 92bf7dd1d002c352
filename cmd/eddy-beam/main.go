// Command eddy-beam runs Eddy pipelines on Apache Beam: the same YAML an
// edge runs natively, over recorded history (JSON Lines written by `eddy
// export`), on the direct or prism runner in-process or on any Beam
// portable job endpoint (Flink, Spark, Dataflow's job service).
//
// It is a separate binary because Beam and prism add tens of MiB and
// register global flags; the edge binary never links them. `eddy beam ...`
// runs this binary when it is installed next to eddy or on PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/spf13/pflag"

	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

func main() {
	// A Beam worker started by a portable runner re-runs this binary with
	// Beam's own flags (--worker ...): beam.Init then runs the worker and
	// exits. Otherwise Beam's global flags are left alone and ours parsed.
	if slices.ContainsFunc(os.Args[1:], func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "worker") }) {
		flag.Parse()
	}
	beam.Init()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: eddy-beam run FILE --input GLOB [--runner direct|prism|HOST:PORT] [--output-dir DIR]
                         [--mqtt-broker tcp://HOST:PORT] [--cloud nats://HOST:PORT?domain=hub&node=NAME]
                         [--pipeline NAME]

Runs the pipelines of FILE (Eddy YAML) on Apache Beam over recorded events:
JSON Lines written by 'eddy export', or what edges forwarded to the hub
(--input nats://HOST:4222/eddy_up?subject=eddy.up.NODE.>&domain=hub: the
stream as it is when the job starts). Add &live=true to follow the stream
(a live job: runs until interrupted; prism or a portable runner, not
direct; &from=SEQ starts at a stream sequence). Sinks of kind file write
their path (relative paths under --output-dir; a live job appends as it
goes); log sinks print; mqtt sinks publish to --mqtt-broker; cloud sinks
publish to the hub's up stream under eddy.up.NODE.SUBJECT (--cloud).

  --runner direct     Beam's in-process batch runner (default)
  --runner prism      Beam's in-process portable runner (keeps everything in
                      memory). Its job server listens on 127.0.0.1 only:
                      Beam v2.77.0 binds every interface, so 'make
                      build-beam' builds eddy-beam with a one-line patch
                      (third_party/beam-prism); built without it, eddy-beam
                      refuses --runner prism
  --runner HOST:PORT  a portable job endpoint (Flink, Spark job server), with
                      workers in this process (LOOPBACK environment)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
			return 0
		}
		return 2
	}
	fs := pflag.NewFlagSet("eddy-beam run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	input := fs.String("input", "", "JSON Lines files written by `eddy export` (a path or a glob), or a hub stream nats://HOST:PORT/STREAM?subject=...&domain=...")
	runner := fs.String("runner", "direct", "direct, prism or a portable job endpoint HOST:PORT")
	outDir := fs.String("output-dir", "", "directory for relative file sink paths")
	only := fs.String("pipeline", "", "run only this pipeline (name or namespace/name) of FILE")
	broker := fs.String("mqtt-broker", "", "broker that mqtt sinks publish to, e.g. tcp://127.0.0.1:1883")
	cloud := fs.String("cloud", "", "hub that cloud sinks publish to, e.g. nats://127.0.0.1:4222?domain=hub&node=replay-1 (default node: beam)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err := runFile(ctx, fs.Arg(0), *only, *runner, eddybeam.Options{Input: *input, OutputDir: *outDir, MQTTBroker: *broker, Cloud: *cloud}, stdout); err != nil {
		fmt.Fprintln(stderr, "eddy-beam:", err)
		return 1
	}
	return 0
}

func runFile(ctx context.Context, file, only, runner string, opts eddybeam.Options, stdout io.Writer) error {
	if err := checkRunner(runner, eddybeam.PrismLoopback()); err != nil {
		return err
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	plans, err := pipeline.Load(file, src)
	if err != nil {
		return err
	}
	if hub, ok, err := eddybeam.ParseHubInput(opts.Input); err != nil {
		return err
	} else if ok && hub.Live && runner == eddybeam.RunnerDirect {
		return errors.New("a live input (live=true) needs a streaming runner: Beam's direct runner runs bounded inputs only; use --runner prism or a portable job endpoint")
	}
	ran := 0
	for _, p := range plans {
		if only != "" && only != p.Name && only != p.ID() {
			continue
		}
		bp, err := eddybeam.Translate(p, opts)
		if err != nil {
			return err
		}
		if err := eddybeam.Execute(ctx, runner, bp); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pipeline %s on %s: interrupted (the job was cancelled): %w", p.ID(), runner, err)
			}
			return fmt.Errorf("pipeline %s on %s: %w", p.ID(), runner, err)
		}
		fmt.Fprintf(stdout, "pipeline %s: done on %s\n", p.ID(), runner)
		ran++
	}
	if ran == 0 {
		return errors.New("no pipeline to run (check --pipeline)")
	}
	return nil
}

// checkRunner refuses a runner eddy-beam cannot or must not use, before
// anything runs: prism in a binary built without the loopback patch (its
// job server would listen on every interface), and anything that is
// neither a runner name nor HOST:PORT (it would be dialled for minutes).
func checkRunner(runner string, prismLoopback bool) error {
	switch runner {
	case eddybeam.RunnerDirect:
		return nil
	case eddybeam.RunnerPrism:
		if !prismLoopback {
			return errors.New("--runner prism: this eddy-beam was built without third_party/beam-prism's patch, so prism's job server would listen on every interface without authentication; build it with `make build-beam` (or see third_party/beam-prism/README.md), or use --runner direct or a portable job endpoint")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(runner)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil {
		return fmt.Errorf("--runner %q: want direct, prism or the HOST:PORT of a portable job endpoint (e.g. 127.0.0.1:8099)", runner)
	}
	return nil
}
