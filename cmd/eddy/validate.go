package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/pipeline"
)

func validateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Compile pipelines without running them; print every error with file:line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, path := range args {
				plans, _, err := loadPipelines(path)
				if err != nil {
					fmt.Fprintln(g.stderr, err)
					failed = true
					continue
				}
				for _, p := range plans {
					fmt.Fprintf(g.stdout, "%s: pipeline %s ok (hash %s, %d steps, %d sinks)\n",
						path, p.ID(), p.Hash, len(p.Spec.Steps), len(p.Spec.Sinks))
				}
			}
			if failed {
				return exitError{}
			}
			return nil
		},
	}
}

// loadPipelines reads and compiles one YAML file.
func loadPipelines(path string) ([]*pipeline.Plan, []byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	plans, err := pipeline.Load(path, src)
	if err != nil {
		return nil, nil, err
	}
	return plans, src, nil
}
