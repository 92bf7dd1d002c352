package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/wal"
)

// The shipped deploy files must stay valid.
func TestDeployEdgeFilesLoad(t *testing.T) {
	s, err := loadEdgeConfig("../../deploy/edge/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.AuthFile == "" || s.AllowAnonymous || s.RetentionPolicy != wal.Block || s.RetentionMaxAge != 168*time.Hour {
		t.Errorf("unexpected edge settings %+v", s)
	}
	if _, err := broker.LoadAuthFile("../../deploy/edge/mqtt-users.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestEdgeConfigErrorsPointAtTheLine(t *testing.T) {
	p := e2etest.WriteFile(t, t.TempDir(), "edge.yaml", "dataDir: /x\nmqtAddr: 1.2.3.4:1\n")
	_, err := loadEdgeConfig(p)
	if err == nil || !strings.Contains(err.Error(), p+`:2: mqtAddr: unknown field "mqtAddr" (did you mean "mqttAddr"?)`) {
		t.Fatalf("error %v", err)
	}
}

// eddy edge refuses anonymous MQTT clients, accepts a user from the auth
// file, and its API requires a token (generated and printed at first start).
func TestE2EEdgeRequiresAuth(t *testing.T) {
	pub := mqtttest.Tool(t, "mosquitto_pub")
	dir := t.TempDir()
	cmd := exec.Command(eddyBin, "passwd")
	cmd.Stdin = strings.NewReader("s3cret\n")
	h, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	users := e2etest.WriteFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  - username: dev1\n    password: %q\n    acl: {publish: [\"factory/%%u/data\"]}\n", strings.TrimSpace(string(h))))
	spec := e2etest.WriteFile(t, dir, "p.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  steps: [{filter: "t > 1"}]
  sinks: [{log: {}}]
`)
	mqttPort, httpPort := mqtttest.FreePort(t), mqtttest.FreePort(t)
	cfg := e2etest.WriteFile(t, dir, "edge.yaml", fmt.Sprintf("dataDir: %s\nmqttAddr: 127.0.0.1:%s\nhttpAddr: 127.0.0.1:%s\nauthFile: %s\npipelines: [%s]\n",
		filepath.Join(dir, "data"), mqttPort, httpPort, users, spec))
	edge := startProc(t, "pipeline running", "edge", "--config", cfg)
	if !strings.Contains(edge.Logs(), "API tokens generated in "+filepath.Join(dir, "data", "api-tokens.yaml")) {
		t.Errorf("first start did not print the path of the generated API tokens")
	}
	if out, err := exec.Command(pub, "-p", mqttPort, "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err == nil {
		t.Errorf("anonymous publish was accepted: %s", out)
	}
	if out, err := exec.Command(pub, "-p", mqttPort, "-u", "dev1", "-P", "wrong", "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err == nil {
		t.Errorf("wrong password was accepted: %s", out)
	}
	if out, err := exec.Command(pub, "-p", mqttPort, "-u", "dev1", "-P", "s3cret", "-q", "1", "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err != nil {
		t.Errorf("valid user refused: %v %s", err, out)
	}
	res, err := http.Get("http://127.0.0.1:" + httpPort + "/api/v1/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a token answered %d, want 401", res.StatusCode)
	}
	tokenPath := filepath.Join(dir, "data", "api-tokens.yaml")
	tokens, err := api.LoadTokens(tokenPath)
	if err != nil || tokens.Empty() {
		t.Fatalf("token file: %v", err)
	}
	if st, err := os.Stat(tokenPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	// The tokens are secrets: they must not be in the output (the journal).
	for _, tok := range append(tokens.Admin, tokens.ReadOnly...) {
		if strings.Contains(edge.Logs(), tok) {
			t.Errorf("a generated API token was printed in clear")
		}
	}
}

// Every setting can be written in the edge file, in its user-facing form
// (sizes and durations with units, the anonymous policy's words).
func TestEdgeConfigEverySetting(t *testing.T) {
	p := e2etest.WriteFile(t, t.TempDir(), "edge.yaml", `
readOnly: true
allowAnonymous: true
memoryLimit: 96MiB
retentionMaxBytes: 4GiB
retentionPolicy: drop-oldest
checkpointInterval: 500ms
tokenFile: /etc/eddy/tokens.yaml
pprof: true
actions: {staleIntent: 90s, lifecycle: false}
link: {hub: [tls://hub:7422], reconnectInterval: 250ms, fleet: {domain: hub}}
`)
	s, err := loadEdgeConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if !s.ReadOnly || !s.AllowAnonymous || s.MemoryLimit != 96<<20 || s.RetentionMaxBytes != 4<<30 ||
		s.RetentionPolicy != wal.DropOldest || s.CheckpointInterval != 500*time.Millisecond ||
		s.TokenFile != "/etc/eddy/tokens.yaml" || !s.Pprof || s.MQTTAddr != "0.0.0.0:1883" ||
		s.Actions.StaleIntent.Duration != 90*time.Second || s.Actions.Lifecycle == nil || *s.Actions.Lifecycle ||
		s.Link.Hub[0] != "tls://hub:7422" || s.Link.ReconnectInterval.Duration != 250*time.Millisecond || s.Link.Fleet.Domain != "hub" {
		t.Errorf("edge settings %+v", s)
	}
	for in, want := range map[string]string{
		"allowAnonymous: auto\n":        `allowAnonymous: want true or false, got "auto"`,
		"memoryLimit: 64 furlongs\n":    `memoryLimit: "64 furlongs" is not a size`,
		"retentionPolicy: newest\n":     `retention policy "newest" is unknown`,
		"checkpointInterval: 10\n":      `checkpointInterval: "10" has no unit`,
		"readonly: true\n":              `unknown field "readonly" (did you mean "readOnly"?)`,
		"devices: thermo.yaml\n":        `devices: want a list`,
		"mqttAddr: [a, b]\n":            `mqttAddr: want a string`,
		"retentionMaxBytes: -1GiB\n":    `is not a size`,
		"pipelines: {a: b}\n":           `pipelines: want a list`,
		"allowAnonymous: [true]\n":      `allowAnonymous: want true or false, got a list`,
		"tokenFile: /x\ntokenFile: /y":  `"tokenFile" is written twice`,
		"actions: {startRetry: 60}\n":   `actions.startRetry: "60" has no unit; use e.g. 60s`,
		"actions: {startRetry: soon}\n": `actions.startRetry: "soon" is not a duration`,
		"link: {hubs: [x]}\n":           `link.hubs: unknown field "hubs" (did you mean "hub"?)`,
	} {
		_, err := loadEdgeConfig(e2etest.WriteFile(t, t.TempDir(), "edge.yaml", in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v; want it to contain %q", in, err, want)
		}
	}
}
