package main

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/internal/configspec"
	"github.com/eddy-edge/eddy/runner"
)

// TestConfigDocs regenerates settings_docs.go from the settings' doc
// comments and docs/edge-config.md from all of runner.Config and settings,
// and fails when either committed file differs. With TestCLIDocs (the
// flags) this is the drift test of the one configuration: a field without
// a doc fails here, a changed comment fails until regenerated.
// go generate ./runner ./cmd/eddy rewrites them.
func TestConfigDocs(t *testing.T) {
	docs, err := configspec.ExtractDocs(".", "settings")
	if err != nil {
		t.Fatal(err)
	}
	src, err := configspec.GoSource("main", "settingsDocs", "settings", docs)
	if err != nil {
		t.Fatal(err)
	}
	const how = "go generate ./runner ./cmd/eddy"
	if err := configspec.CheckGenerated("settings_docs.go", src, *updateDocs, how); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{}
	for k, v := range runner.ConfigDocs {
		all[k] = v
	}
	for k, v := range docs {
		all[k] = v
	}
	fields, err := configspec.Fields(reflect.TypeFor[settings](), all)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`# Edge configuration reference

Generated from the doc comments of ` + "`runner.Config`" + ` and ` + "`cmd/eddy`" + `'s settings by
` + "`" + how + "`" + `; do not edit.

` + "`eddy edge --config FILE`" + ` reads these keys from one YAML document (see
[deploy/edge/edge.yaml](../deploy/edge/edge.yaml)); unknown keys are refused with the
line and a suggestion. Each key with a flag is also a flag of ` + "`eddy run`" + `. Every key
is optional: a missing one takes the default of the command.

`)
	edge, run := edgeDefaults(), runDefaults()
	configspec.Reference(&b, fields, configspec.Defaults{Name: "eddy edge", Value: &edge}, configspec.Defaults{Name: "eddy run", Value: &run})
	if err := configspec.CheckGenerated("../../docs/edge-config.md", bytes.TrimRight(b.Bytes(), "\n"), *updateDocs, how); err != nil {
		t.Fatal(err)
	}
}

// Every setting with a flag is an eddy run flag, and every key is in eddy
// edge's help: the two commands cannot drift from the type.
func TestSettingsReachTheCommands(t *testing.T) {
	root := rootCommand(io.Discard, io.Discard)
	var runCmd, edgeCmd = findCommand(root, "run"), findCommand(root, "edge")
	for _, f := range settingsFields() {
		if f.Flag != "" && runCmd.Flags().Lookup(f.Flag) == nil {
			t.Errorf("setting %s has flag %q, but eddy run has no such flag", f.Key, f.Flag)
		}
		if !strings.Contains(edgeCmd.Long, "\n  "+f.Key+" ") {
			t.Errorf("eddy edge's help does not list the key %s", f.Key)
		}
	}
}

func findCommand(root interface {
	Find([]string) (*cobra.Command, []string, error)
}, name string) *cobra.Command {
	c, _, err := root.Find([]string{name})
	if err != nil {
		panic(err)
	}
	return c
}
