package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/broker"
)

// The shipped deploy files must stay valid.
func TestDeployEdgeFilesLoad(t *testing.T) {
	s, err := loadEdgeConfig("../../deploy/edge/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.AuthFile == "" || s.AllowAnonymous || s.RetentionPolicy != "block" || s.RetentionMaxAge.Duration != 168*time.Hour {
		t.Errorf("unexpected edge settings %+v", s)
	}
	if _, err := broker.LoadAuthFile("../../deploy/edge/mqtt-users.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestEdgeConfigErrorsPointAtTheLine(t *testing.T) {
	p := writeFile(t, t.TempDir(), "edge.yaml", "dataDir: /x\nmqtAddr: 1.2.3.4:1\n")
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
	users := writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  - username: dev1\n    password: %q\n    acl: {publish: [\"factory/%%u/data\"]}\n", strings.TrimSpace(string(h))))
	spec := writeFile(t, dir, "p.yaml", `
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "factory/+/data"}}
  steps: [{filter: "t > 1"}]
  sinks: [{log: {}}]
`)
	mqttPort, httpPort := freePort(t), freePort(t)
	cfg := writeFile(t, dir, "edge.yaml", fmt.Sprintf("dataDir: %s\nmqttAddr: 127.0.0.1:%d\nhttpAddr: 127.0.0.1:%d\nauthFile: %s\npipelines: [%s]\n",
		filepath.Join(dir, "data"), mqttPort, httpPort, users, spec))
	logs := &syncBuffer{}
	edge := exec.Command(eddyBin, "edge", "--config", cfg)
	edge.Stdout, edge.Stderr = logs, logs
	if err := edge.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		edge.Process.Signal(syscall.SIGTERM)
		edge.Wait()
		if t.Failed() {
			t.Logf("eddy edge logs:\n%s", logs.String())
		}
	}()
	mqtttest.WaitFor(t, "eddy edge to start", func() bool { return strings.Contains(logs.String(), "pipeline running") })
	if !strings.Contains(logs.String(), "API tokens generated in "+filepath.Join(dir, "data", "api-tokens.yaml")) {
		t.Errorf("first start did not print the path of the generated API tokens")
	}
	port := fmt.Sprint(mqttPort)
	if out, err := exec.Command(pub, "-p", port, "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err == nil {
		t.Errorf("anonymous publish was accepted: %s", out)
	}
	if out, err := exec.Command(pub, "-p", port, "-u", "dev1", "-P", "wrong", "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err == nil {
		t.Errorf("wrong password was accepted: %s", out)
	}
	if out, err := exec.Command(pub, "-p", port, "-u", "dev1", "-P", "s3cret", "-q", "1", "-t", "factory/dev1/data", "-m", `{"t":2}`).CombinedOutput(); err != nil {
		t.Errorf("valid user refused: %v %s", err, out)
	}
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/pipelines", httpPort))
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
		if strings.Contains(logs.String(), tok) {
			t.Errorf("a generated API token was printed in clear")
		}
	}
}
