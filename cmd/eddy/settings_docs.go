// Code generated from the doc comments of settings by internal/configspec; DO NOT EDIT.
// Regenerate with: go test -run TestConfigDocs -update (in this package).

package main

// settingsDocs holds the doc comment of every field of settings, for the flags,
// the help and the config reference generated from it (internal/configspec).
var settingsDocs = map[string]string{
	"Devices":   "Devices are more YAML files or directories to run, read like\npipelines (kept for files of KubeEdge Device and DeviceModel\nresources).",
	"Pipelines": "Pipelines are YAML files or directories to run: Pipelines, and\nKubeEdge Devices and DeviceModels, in any mix (eddy run takes them as\narguments).",
	"TokenFile": "TokenFile is the API's bearer tokens file (YAML lists admin and\nreadOnly). Without it, eddy run on a loopback address needs no token;\neddy edge and any other address generate one under dataDir at first\nstart (mode 0600).",
}
