// Command eddy is Eddy's one binary: the edge runner (`eddy run`, `eddy
// edge`), the pipeline checker (`eddy validate`), device simulators (`eddy
// sim`) and the client of a runner's API. This package is wiring only: each
// command parses flags and calls into the packages that do the work.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the exit status. The first SIGINT or
// SIGTERM cancels the command's context (a runner then shuts down in
// order, bounded); a second one exits at once.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := onSignals(context.Background(), stderr, func() { os.Exit(2) })
	defer stop()
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if _, ok := err.(exitError); !ok {
			fmt.Fprintln(stderr, "eddy:", err)
		}
		return 1
	}
	return 0
}

// onSignals returns a context cancelled by the first SIGINT or SIGTERM;
// the second one calls exit (the shutdown is taking too long for whoever
// sent it). stop releases the signals.
func onSignals(parent context.Context, stderr io.Writer, exit func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "eddy: %v: shutting down; send it again to exit at once\n", s)
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "eddy: second %v: exiting now without finishing the shutdown (pipelines replay from their last checkpoint)\n", s)
			exit()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// exitError is an error already reported to the user.
type exitError struct{}

func (exitError) Error() string { return "failed" }

// globals are the flags every command shares.
type globals struct {
	logLevel  string
	logFormat string
	stdout    io.Writer
	stderr    io.Writer
}

func (g *globals) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "eddy",
		Short:         "Eddy: event-driven stream processing for the edge",
		Long:          "Eddy runs pipelines of filter / window / aggregate / alert steps on MQTT data at the edge,\nwith an embedded broker, a write-ahead log, device twins and a dashboard.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(runCommand(g), edgeCommand(g), validateCommand(g), simCommand(g), passwdCommand(g))
	root.AddCommand(hubCommand(g), fleetCommand(g), controllerCommand(g))
	root.AddCommand(extraCommands(g)...)
	root.AddCommand(exportCommand(g), beamCommand(g))
	return root
}
