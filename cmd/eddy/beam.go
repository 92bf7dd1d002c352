package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// beamCommand runs the eddy-beam binary: Beam and its runners are kept out
// of this (edge) binary, so `eddy beam ...` finds eddy-beam next to eddy or
// on PATH, the way git finds its subcommands.
func beamCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "beam run FILE --input GLOB [--runner direct|prism|HOST:PORT]",
		Short:              "Run pipelines on Apache Beam over exported history (runs the eddy-beam binary)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findBeside("eddy-beam")
			if err != nil {
				return err
			}
			c := exec.CommandContext(cmd.Context(), path, args...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, g.stdout, g.stderr
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitError{}
				}
				return err
			}
			return nil
		},
	}
}

// findBeside finds the program name in this executable's directory, else
// on PATH.
func findBeside(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed next to eddy or on PATH (make build builds it into bin/)", name)
	}
	return p, nil
}
