// Code generated from the doc comments of settings by internal/configspec; DO NOT EDIT.
// Regenerate with: go test -run TestConfigDocs -update (in this package).

package main

// settingsDocs holds the doc comment of every field of settings, for the flags,
// the help and the config reference generated from it (internal/configspec).
var settingsDocs = map[string]string{
	"CPUs":      "CPUs fixes the cores eddy runs Go code on at once (GOMAXPROCS).\n0 (the default) sizes it by load: one core while eddy uses less than\n70 % of one (time the log spends in fsync counts as used: a core in\nfsync runs nothing else), more (up to the Go runtime's choice: every core, or the\ncgroup's CPU limit) within a quarter of a second of needing them, and\none fewer after 5 s below half of one fewer. One core costs the\nleast CPU per message at moderate rates: no wake-ups of a second\ncore for each hand-off between the broker, the log and the pipelines\n(docs/benchmarks.md measures both). GOMAXPROCS in the environment\nfixes it too.",
	"Devices":   "Devices are more YAML files or directories to run, read like\npipelines (kept for files of KubeEdge Device and DeviceModel\nresources).",
	"Pipelines": "Pipelines are YAML files or directories to run: Pipelines, and\nKubeEdge Devices and DeviceModels, in any mix (eddy run takes them as\narguments).",
	"TokenFile": "TokenFile is the API's bearer tokens file (YAML lists admin and\nreadOnly). Without it, eddy run on a loopback address needs no token;\neddy edge and any other address generate one under dataDir at first\nstart (mode 0600).",
}
