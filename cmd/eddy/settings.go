package main

import (
	"reflect"
	"time"

	"github.com/eddy-edge/eddy/internal/configspec"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/wal"
)

//go:generate go test -run TestConfigDocs -update
//go:generate go test -run TestCLIDocs -update

// settings are what `eddy run` takes as flags and `eddy edge` reads from
// its config file: the runner's Config, inline, and the few settings the
// command itself reads. Their flags, the edge config reference
// (docs/edge-config.md) and the key list in `eddy edge --help` are all
// generated from the fields (internal/configspec); TestConfigDocs fails
// when any of them drifts from the doc comments.
type settings struct {
	runner.Config
	// TokenFile is the API's bearer tokens file (YAML lists admin and
	// readOnly). Without it, eddy run on a loopback address needs no token;
	// eddy edge and any other address generate one under dataDir at first
	// start (mode 0600).
	TokenFile string `json:"tokenFile,omitempty" flag:"token-file"`
	// Pipelines are YAML files or directories to run: Pipelines, and
	// KubeEdge Devices and DeviceModels, in any mix (eddy run takes them as
	// arguments).
	Pipelines []string `json:"pipelines,omitempty"`
	// Devices are more YAML files or directories to run, read like
	// pipelines (kept for files of KubeEdge Device and DeviceModel
	// resources).
	Devices []string `json:"devices,omitempty" flag:"devices"`
	// CPUs fixes the cores eddy runs Go code on at once (GOMAXPROCS).
	// 0 (the default) sizes it by load: one core while eddy uses less than
	// 70 % of one (time the log spends in fsync counts as used: a core in
	// fsync runs nothing else), more (up to the Go runtime's choice: every core, or the
	// cgroup's CPU limit) within a quarter of a second of needing them, and
	// one fewer after 5 s below half of one fewer. One core costs the
	// least CPU per message at moderate rates: no wake-ups of a second
	// core for each hand-off between the broker, the log and the pipelines
	// (docs/benchmarks.md measures both). GOMAXPROCS in the environment
	// fixes it too.
	CPUs int `json:"cpus,omitempty" flag:"cpus"`
}

// runDefaults are eddy run's defaults: a development machine, data in
// ./eddy-data, everything on loopback.
func runDefaults() settings {
	return settings{Config: runner.Config{
		DataDir:            "./eddy-data",
		MQTTAddr:           runner.DefaultMQTTAddr,
		HTTPAddr:           runner.DefaultHTTPAddr,
		CheckpointInterval: 2 * time.Second,
		RetentionPolicy:    wal.Block,
	}}
}

// edgeDefaults are eddy edge's defaults for what its file leaves out: a
// device-facing broker with authentication, data under /var/lib/eddy.
func edgeDefaults() settings {
	s := runDefaults()
	s.DataDir = "/var/lib/eddy"
	s.MQTTAddr = "0.0.0.0:1883"
	return s
}

// settingsFields are the settings with their docs.
func settingsFields() []configspec.Field {
	docs := map[string]string{}
	for k, v := range runner.ConfigDocs {
		docs[k] = v
	}
	for k, v := range settingsDocs {
		docs[k] = v
	}
	return configspec.MustFields(reflect.TypeFor[settings](), docs)
}
