package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/internal/configspec"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

func edgeCommand(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "edge --config FILE",
		Short: "Run the edge runner daemon from a config file (auth on by default)",
		Long: `Run the edge runner daemon: broker, WAL, twins, engine and API, configured by a
YAML file. Unlike 'eddy run', anonymous MQTT clients are refused unless the file
says allowAnonymous: true, and the API always requires a token.

Config keys (all optional except what your setup needs; reference with defaults:
docs/edge-config.md; each is also an eddy run flag unless it is file only):
` + configspec.KeyList(settingsFields()),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := loadEdgeConfig(path)
			if err != nil {
				return err
			}
			if !s.AllowAnonymous && s.AuthFile == "" {
				return fmt.Errorf("%s: set authFile (MQTT users and ACLs) or allowAnonymous: true", path)
			}
			return runRunner(cmd.Context(), g, s, true)
		},
	}
	cmd.Flags().StringVar(&path, "config", "/etc/eddy/edge.yaml", "config file")
	return cmd
}

// loadEdgeConfig reads an edge config with defaults for what it leaves out.
func loadEdgeConfig(path string) (*settings, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := edgeDefaults()
	docs, errs := strictyaml.Split(path, src)
	if len(errs) == 0 && len(docs) != 1 {
		errs = append(errs, strictyaml.Error{Pos: strictyaml.Pos{File: path}, Msg: "want exactly one YAML document"})
	}
	if len(errs) == 0 {
		errs = docs[0].Decode(&s)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &s, nil
}
