package main

import (
	"fmt"

	"github.com/eddy-edge/eddy/pipeline/rules"

	"github.com/spf13/cobra"
)

func validateCommand(g *globals) *cobra.Command {
	var deviceFiles []string
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check Pipeline, Device, DeviceModel, Rule, RuleEndpoint and EdgeNode YAML without running it; print every error with file:line",
		Long: `Check the documents in the given files and directories (a directory's .yaml, .yml
and .json files) as 'eddy run' would, without starting anything: Pipelines are
compiled, Devices and DeviceModels (devices.kubeedge.io v1beta1 or v1alpha2) are
decoded and every Device is joined to its model across all the files, and KubeEdge
Rules (rules.kubeedge.io/v1) are compiled against the RuleEndpoints of all the files
as eddy-controller compiles them. Every problem
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
			if len(set.Pipelines)+len(set.Devices)+len(set.Models)+len(set.Rules)+len(set.Endpoints)+len(set.EdgeNodes) == 0 {
				fmt.Fprintf(g.stderr, "no documents Eddy reads in %v (%s)\n", paths, knownKinds())
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
			for _, e := range set.Endpoints {
				fmt.Fprintf(g.stdout, "ruleendpoint %s/%s ok (%s)\n", e.Metadata.Namespace, e.Metadata.Name, e.Spec.RuleEndpointType)
			}
			for _, r := range set.Rules {
				fmt.Fprintf(g.stdout, "%s: rule %s ok (%s)\n", r.Doc.File, r.Route.ID(), describeRoute(r.Route))
			}
			for _, n := range set.EdgeNodes {
				fmt.Fprintf(g.stdout, "edgenode %s ok\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&deviceFiles, "devices", nil, "more files or directories to check (same as naming them as arguments)")
	return cmd
}

// describeRoute says what a compiled rule routes.
func describeRoute(r *rules.Route) string {
	switch r.Pair {
	case rules.RestToEventBus:
		return fmt.Sprintf("%s: /{node}/%s%s -> edge topic %s", r.Pair, r.Namespace, r.Path, r.Topic)
	case rules.RestToServiceBus:
		return fmt.Sprintf("%s: /{node}/%s%s -> http://127.0.0.1:%d%s on the edge", r.Pair, r.Namespace, r.Path, r.ServicePort, r.ServicePath)
	default:
		return fmt.Sprintf("%s: edge topic %s -> POST %s", r.Pair, r.Topic, r.URL)
	}
}
