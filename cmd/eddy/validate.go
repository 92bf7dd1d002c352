package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func validateCommand(g *globals) *cobra.Command {
	var deviceFiles []string
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check Pipeline, Device and DeviceModel YAML without running it; print every error with file:line",
		Long: `Check the documents in the given files and directories (a directory's .yaml, .yml
and .json files) as 'eddy run' would, without starting anything: Pipelines are
compiled, Devices and DeviceModels (devices.kubeedge.io v1beta1 or v1alpha2) are
decoded and every Device is joined to its model across all the files. Every problem
is printed with file:line and the field path; the exit status is 1 if there is one.`,
		Args: cobra.MinimumNArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := append(append([]string(nil), args...), deviceFiles...)
			if len(paths) == 0 {
				return fmt.Errorf("name at least one file or directory to check")
			}
			set, err := loadDocuments(paths)
			if err != nil {
				fmt.Fprintln(g.stderr, err)
				return exitError{}
			}
			if len(set.Pipelines)+len(set.Devices)+len(set.Models) == 0 {
				fmt.Fprintf(g.stderr, "no Pipeline, Device or DeviceModel documents in %v\n", paths)
				return exitError{}
			}
			for _, p := range set.Pipelines {
				fmt.Fprintf(g.stdout, "%s: pipeline %s ok (hash %s, %d steps, %d sinks)\n",
					p.File, p.Plan.ID(), p.Plan.Hash, len(p.Plan.Spec.Steps), len(p.Plan.Spec.Sinks))
			}
			for _, m := range set.Models {
				fmt.Fprintf(g.stdout, "%s: model %s ok (%s)\n", m.Pos().File, m.ID(), plural(len(m.Properties), "property", "properties"))
			}
			for i := range set.Devices {
				d := &set.Devices[i]
				fmt.Fprintf(g.stdout, "%s: %s\n", d.Pos().File, describeDevice(d))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&deviceFiles, "devices", nil, "more files or directories to check (same as naming them as arguments)")
	return cmd
}
