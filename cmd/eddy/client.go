package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
)

// clientFlags are the flags of the commands that talk to a runner's API.
type clientFlags struct {
	server, token, output string
	timeout               time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command, output bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "runner API address (default $EDDY_SERVER or 127.0.0.1:8080)")
	fl.StringVar(&f.token, "token", "", "API bearer token (default $EDDY_TOKEN)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the runner")
	if output {
		fl.StringVarP(&f.output, "output", "o", "table", "output format: table, json or yaml")
	}
}

func (f *clientFlags) client() (*api.Client, error) {
	server := f.server
	if server == "" {
		server = os.Getenv("EDDY_SERVER")
	}
	if server == "" {
		server = "127.0.0.1:8080"
	}
	token := f.token
	if token == "" {
		token = os.Getenv("EDDY_TOKEN")
	}
	switch f.output {
	case "", "table", "json", "yaml":
	default:
		return nil, fmt.Errorf("-o %q: use table, json or yaml", f.output)
	}
	return api.NewClient(server, token), nil
}

// call runs fn with the runner's API client and the command's context
// bounded by --timeout.
func (f *clientFlags) call(cmd *cobra.Command, fn func(context.Context, *api.Client) error) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(commandContext(cmd), f.timeout)
	defer cancel()
	return fn(ctx, c)
}

// commandContext is the context cobra hands the command, or Background
// when it was run without one.
func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// printStructured writes v as JSON or YAML; it reports false for table.
func printStructured(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		// Through JSON, so the field names are the API's.
		b, err := json.Marshal(v)
		if err != nil {
			return true, err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return true, err
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return true, err
		}
		_, err = w.Write(out)
		return true, err
	}
	return false, nil
}

// clientCommands returns the commands that talk to a runner's API:
// get, describe, stats and tap.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{getCommand(), describeCommand(), statsCommand(), tapCommand()}
}

func getCommand() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:       "get pipelines|alerts|devices",
		Short:     "List a runner's pipelines, alerts or devices",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"pipelines", "alerts", "devices"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(cmd, func(ctx context.Context, c *api.Client) error {
				w := cmd.OutOrStdout()
				switch strings.TrimSuffix(args[0], "s") {
				case "pipeline":
					return show(w, f.output, func() ([]engine.Status, error) { return c.Pipelines(ctx) }, writePipelines)
				case "alert":
					return show(w, f.output, func() (api.AlertList, error) { return c.Alerts(ctx) }, writeAlerts)
				case "device":
					return show(w, f.output, func() ([]*twin.DeviceRecord, error) { return c.Devices(ctx) }, writeDevices)
				}
				return fmt.Errorf("eddy get %s: unknown resource; use pipelines, alerts or devices", args[0])
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

// show fetches a resource and prints it as the table writer lays it out,
// or as JSON/YAML when -o asks for it.
func show[T any](w io.Writer, output string, fetch func() (T, error), table func(io.Writer, T) error) error {
	v, err := fetch()
	if err != nil {
		return err
	}
	if ok, err := printStructured(w, output, v); ok {
		return err
	}
	return table(w, v)
}

func writeDevices(w io.Writer, devs []*twin.DeviceRecord) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATE\tTWINS\tLAST ONLINE")
	for _, d := range devs {
		state := d.State
		if state == "" {
			state = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.ID, state, len(d.Twins), dash(d.LastOnline))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pipelineTotals(st engine.Status) (in, out, errs int64) {
	in = st.Source.In
	errs = st.Source.Errors
	for _, s := range st.Steps {
		errs += s.Errors
	}
	for _, s := range st.Sinks {
		errs += s.Errors
		if s.Role == pipeline.RoleSink {
			out += s.In
		}
	}
	return
}

func writePipelines(w io.Writer, list []engine.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSTATE\tIN\tOUT\tERRORS\tLAG\tEVENT TIME")
	for _, st := range list {
		in, out, errs := pipelineTotals(st)
		et := "-"
		if !st.EventTime.IsZero() {
			et = st.EventTime.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", st.ID, st.State, in, out, errs, st.Lag, et)
	}
	return tw.Flush()
}

func writeAlerts(w io.Writer, al api.AlertList) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tSTATE\tPIPELINE\tKEY\tSINCE\tMESSAGE")
	for _, a := range al.Firing {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(a.Severity), a.State, a.Pipeline, dash(a.Key),
			a.Time.UTC().Format(time.RFC3339), a.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(al.Firing) == 0 {
		fmt.Fprintf(w, "no alerts firing (%d notifications in recent history)\n", len(al.History))
	}
	return nil
}

func writeSteps(w io.Writer, st engine.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tROLE\tIN\tOUT\tERRORS\tP50\tP99\tSTATE\tLAST ERROR")
	steps := append(append([]engine.StepStatus{st.Source}, st.Steps...), st.Sinks...)
	for _, s := range steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\t%s\n", s.ID, s.Kind, s.Role, s.In, s.Out, s.Errors,
			durOrDash(s.LatencyP50), durOrDash(s.LatencyP99), s.StateSize, dash(s.LastError))
	}
	return tw.Flush()
}

func durOrDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.String()
}

func describeCommand() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "describe pipeline NAME",
		Short: "Show a pipeline's status, steps, plan, firing alerts and YAML",
		Long:  "Show a pipeline on a runner. NAME is namespace/name, or name in the default namespace.",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSuffix(args[0], "s") != "pipeline" {
				return fmt.Errorf("eddy describe %s: unknown resource; use: eddy describe pipeline NAME", args[0])
			}
			return f.call(cmd, func(ctx context.Context, c *api.Client) error {
				return show(cmd.OutOrStdout(), f.output, func() (api.PipelineDetail, error) { return c.Pipeline(ctx, args[1]) },
					func(w io.Writer, d api.PipelineDetail) error {
						explain, err := c.Explain(ctx, args[1])
						if err != nil {
							return err
						}
						return writeDescribe(w, d, explain)
					})
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func writeDescribe(w io.Writer, d api.PipelineDetail, explain string) error {
	st := d.Status
	fmt.Fprintf(w, "Name:       %s\nState:      %s\n", st.ID, st.State)
	if st.Error != "" {
		fmt.Fprintf(w, "Error:      %s\n", st.Error)
	}
	fmt.Fprintf(w, "Hash:       %s\nVersion:    %d\nStarted:    %s\n", st.Hash, st.Version, st.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "WAL:        cursor %d, head %d, lag %d, checkpointed %d\n", st.Cursor, st.Head, st.Lag, st.Committed)
	if !st.EventTime.IsZero() {
		fmt.Fprintf(w, "Event time: %s (%d late events)\n", st.EventTime.UTC().Format(time.RFC3339Nano), st.Late)
	}
	fmt.Fprintln(w, "\nSteps:")
	if err := writeSteps(w, st); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nAlerts firing: %d\n", len(d.Firing))
	for _, a := range d.Firing {
		fmt.Fprintf(w, "  [%s] %s (key %s, since %s)\n", a.Severity, a.Message, a.Key, a.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w, "\nPlan:")
	fmt.Fprint(w, explain)
	if d.Source != "" {
		fmt.Fprintln(w, "\nYAML:")
		fmt.Fprint(w, d.Source)
		if !strings.HasSuffix(d.Source, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}

func statsCommand() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "stats NAME",
		Short: "Show per-step counters of a pipeline: in/out, errors, latency, state size",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(cmd, func(ctx context.Context, c *api.Client) error {
				return show(cmd.OutOrStdout(), f.output, func() (engine.Status, error) { return c.Stats(ctx, args[0]) }, writeStats)
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func writeStats(w io.Writer, st engine.Status) error {
	fmt.Fprintf(w, "%s  %s  lag %d  late %d  dead-lettered %d\n", st.ID, st.State, st.Lag, st.Late, st.DeadLettered)
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", st.Error)
	}
	if st.BlockedAt > 0 {
		fmt.Fprintf(w, "blocked on offset %d (eddy pipeline skip %s drops its output)\n", st.BlockedAt, st.ID)
	}
	fmt.Fprintln(w)
	return writeSteps(w, st)
}

func tapCommand() *cobra.Command {
	f := &clientFlags{}
	var limit int
	cmd := &cobra.Command{
		Use:   "tap NAME",
		Short: "Print a pipeline's output live, one JSON object per line",
		Long: `Stream what a pipeline emits, one JSON object per line, until Ctrl-C (or -n events).
The runner keeps a bounded buffer per tap: when this terminal is slower than the
pipeline, outputs are skipped (never delayed) and a note on stderr says how many.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt)
			defer stop()
			// The timeout applies to connecting only: streams last.
			if _, err := func() (api.Info, error) {
				cctx, cancel := context.WithTimeout(ctx, f.timeout)
				defer cancel()
				return c.Info(cctx)
			}(); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			n := 0
			errDone := fmt.Errorf("done")
			err = c.Tap(ctx, args[0], func(e api.Event) error {
				switch e.Name {
				case "output":
					if _, err := fmt.Fprintf(w, "%s\n", e.Data); err != nil {
						return err
					}
					n++
					if limit > 0 && n >= limit {
						return errDone
					}
				case "dropped":
					var d api.Dropped
					if json.Unmarshal(e.Data, &d) == nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "eddy tap: %d outputs skipped so far (this reader is slower than the pipeline)\n", d.Dropped)
					}
				}
				return nil
			})
			if err == errDone {
				return nil
			}
			return err
		},
	}
	f.register(cmd, false)
	cmd.Flags().IntVarP(&limit, "count", "n", 0, "stop after this many outputs (0: until Ctrl-C)")
	return cmd
}
