package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/runner/broker"
)

func passwdCommand(g *globals) *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Read a password on stdin and print its bcrypt hash for an MQTT auth file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			h, err := broker.HashPassword(strings.TrimRight(line, "\r\n"), cost)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, h)
			return nil
		},
	}
	cmd.Flags().IntVar(&cost, "cost", 0, "bcrypt cost (0: the library default, 10)")
	return cmd
}
