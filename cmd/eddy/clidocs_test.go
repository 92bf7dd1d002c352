package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/cli.md")

// TestCLIDocs renders every command's help into docs/cli.md and fails when
// the committed page differs, so flags and their docs never drift apart.
// go test ./cmd/eddy -run TestCLIDocs -update rewrites it.
func TestCLIDocs(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("# The eddy command line\n\nGenerated from the commands' own help by `go test ./cmd/eddy -run TestCLIDocs -update`; do not edit.\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		fmt.Fprintf(&b, "\n## %s\n\n", c.CommandPath())
		desc := c.Long
		if desc == "" {
			desc = c.Short
		}
		b.WriteString(strings.TrimSpace(desc) + "\n\n```\n")
		b.WriteString(strings.TrimSpace(c.UsageString()) + "\n```\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := rootCommand(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	walk(root)
	const path = "../../docs/cli.md"
	if *updateDocs {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(old, b.Bytes()) {
		t.Fatalf("docs/cli.md is out of date with the commands' help; run go test ./cmd/eddy -run TestCLIDocs -update")
	}
}
