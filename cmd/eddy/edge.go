package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

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

Config keys (all optional except what your setup needs):
  dataDir, mqttAddr, mqttWSAddr, httpAddr, allowAnonymous, authFile, node,
  checkpointInterval, shutdownTimeout, retentionMaxAge, retentionMaxBytes, retentionPolicy, memoryLimit,
  tokenFile, fileSinkDirs (directories file sinks may write in besides dataDir),
  pipelines (list of YAML files), devices (list of YAML files),
  link (the hub: hub, user, password, passwordFile, credentialsFile, caFile,
  certFile, keyFile, labels, localAddr, reconnectInterval, heartbeatInterval,
  fleet; see docs/fleet.md), actions (container actions: runtime, allowedImages,
  foreignTargets, maxConcurrent, staleIntent, startRetry, outputBytes, lifecycle;
  see docs/actions.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := loadEdgeConfig(path)
			if err != nil {
				return err
			}
			s.edge = true
			if !s.AllowAnonymous && s.AuthFile == "" {
				return fmt.Errorf("%s: set authFile (MQTT users and ACLs) or allowAnonymous: true", path)
			}
			return runRunner(cmd.Context(), g, s)
		},
	}
	cmd.Flags().StringVar(&path, "config", "/etc/eddy/edge.yaml", "config file")
	return cmd
}

// loadEdgeConfig reads an edge config with defaults for what it leaves out.
func loadEdgeConfig(path string) (*runnerSettings, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := runnerSettings{DataDir: "/var/lib/eddy", MQTTAddr: "0.0.0.0:1883", HTTPAddr: "127.0.0.1:8080"}
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
