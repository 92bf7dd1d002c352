package main

import "github.com/spf13/cobra"

// extraCommands returns the commands that talk to a runner's API.
func extraCommands(g *globals) []*cobra.Command {
	return append(clientCommands(), pipelineCommand())
}
