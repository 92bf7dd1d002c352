package main

import (
	"context"
	"fmt"
	"io"

	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/spf13/cobra"
)

// pipelineCommand holds the operator's escape hatches for one pipeline:
// skip and seek. Both go through the runner's API and are logged there.
func pipelineCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline skip|seek NAME",
		Short: "Operate on a running pipeline: skip the record it is stuck on, or move its cursor",
	}
	cmd.AddCommand(skipCommand(), seekCommand())
	return cmd
}

func skipCommand() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "skip NAME",
		Short: "Drop the output a degraded pipeline is stuck on and let it go on",
		Long: `Drop the output a degraded pipeline is stuck on and let it go on. A pipeline is
degraded when a sink keeps refusing one event with an error that looks retryable
(eddy stats NAME shows the error and blockedAt, the log offset). skip stops the
pipeline, writes its checkpoint just past that record (operator state kept), and
starts it again. The runner logs it. NAME is namespace/name or name (namespace
default). A pipeline that is not degraded is left alone (exit status 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(cmd, func(ctx context.Context, c *api.Client) error {
				return show(cmd.OutOrStdout(), f.output, func() (engine.SkipResult, error) { return c.Skip(ctx, args[0]) },
					func(w io.Writer, res engine.SkipResult) error {
						if res.Skipped == 0 && res.Resume > 0 {
							fmt.Fprintf(w, "%s: nothing skipped (the sink recovered, or it was stuck on a timer's output); continuing from offset %d\n", args[0], res.Resume)
							return nil
						}
						fmt.Fprintf(w, "%s: skipped the output of offset %d; continuing from offset %d\n", args[0], res.Skipped, res.Resume)
						return nil
					})
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func seekCommand() *cobra.Command {
	f := &clientFlags{}
	var offset uint64
	var start, end bool
	cmd := &cobra.Command{
		Use:   "seek NAME (--offset N | --start | --end)",
		Short: "Move a pipeline's cursor in the log",
		Long: `Move a pipeline's cursor in the log: the pipeline is stopped with a final
checkpoint, its cursor is set (operator state kept), and it starts again if it was
running. --start is the oldest record kept, --end skips everything not yet read.
Records seeked back over are processed again (their output repeats); records
skipped over are never processed. The runner logs it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to := ""
			n := 0
			if cmd.Flags().Changed("offset") {
				n++
			}
			if start {
				to, n = "start", n+1
			}
			if end {
				to, n = "end", n+1
			}
			if n != 1 {
				return fmt.Errorf("give exactly one of --offset N, --start or --end")
			}
			return f.call(cmd, func(ctx context.Context, c *api.Client) error {
				return show(cmd.OutOrStdout(), f.output, func() (engine.SeekResult, error) { return c.Seek(ctx, args[0], offset, to) },
					func(w io.Writer, res engine.SeekResult) error {
						fmt.Fprintf(w, "%s: cursor moved from offset %d to %d\n", args[0], res.From, res.To)
						return nil
					})
			})
		},
	}
	f.register(cmd, true)
	cmd.Flags().Uint64Var(&offset, "offset", 0, "log offset to continue from")
	cmd.Flags().BoolVar(&start, "start", false, "continue from the oldest record the log keeps")
	cmd.Flags().BoolVar(&end, "end", false, "continue with new records only")
	return cmd
}
