package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/engine"
)

func sampleStatus() engine.Status {
	return engine.Status{ID: "plant/hot", Name: "hot", Namespace: "plant", State: "running", Hash: "abc", Cursor: 11, Head: 12, Lag: 2,
		EventTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Source:    engine.StepStatus{ID: "source", Kind: "json", Role: "source", In: 10, Out: 10},
		Steps: []engine.StepStatus{{ID: "filter-0", Kind: "filter", Role: "step", In: 10, Out: 4, Errors: 1, LastError: "unknown name temp",
			LatencyP50: 1023 * time.Nanosecond, LatencyP99: 4095 * time.Nanosecond}},
		Sinks: []engine.StepStatus{{ID: "sink-mqtt-0", Kind: "mqtt", Role: "sink", In: 4, Out: 4}}}
}

func TestWritePipelines(t *testing.T) {
	var b bytes.Buffer
	if err := writePipelines(&b, []engine.Status{sampleStatus()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	want := []string{"plant/hot", "running", "10", "4", "1", "2", "2026-01-02T03:04:05Z"}
	if got := strings.Fields(lines[1]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("row %q, want %q", got, want)
	}
}

func TestWriteDescribeAndStats(t *testing.T) {
	d := api.PipelineDetail{Status: sampleStatus(), Source: "kind: Pipeline\n",
		Firing: []api.Alert{{Severity: "critical", Message: "m1 is hot", Key: "m1", State: "firing"}}}
	var b bytes.Buffer
	if err := writeDescribe(&b, d, "pipeline plant/hot\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Name:       plant/hot", "lag 2", "filter-0", "unknown name temp", "1.023µs", "[critical] m1 is hot",
		"Plan:\npipeline plant/hot", "YAML:\nkind: Pipeline"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("describe lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeStats(&b, sampleStatus()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plant/hot  running  lag 2  late 0  dead-lettered 0\n\n", "filter-0", "unknown name temp"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lacks %q:\n%s", want, b.String())
		}
	}
}

func TestWriteAlerts(t *testing.T) {
	tests := []struct {
		name string
		l    api.AlertList
		want string
	}{
		{"none", api.AlertList{History: []api.Alert{{}}}, "no alerts firing (1 notifications"},
		{"one", api.AlertList{Firing: []api.Alert{{Severity: "warning", State: "firing", Pipeline: "a/b", Key: "k", Message: "too hot"}}}, "warning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeAlerts(&b, tt.l); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tt.want) {
				t.Fatalf("%q lacks %q", b.String(), tt.want)
			}
		})
	}
}

func TestPrintStructured(t *testing.T) {
	st := sampleStatus()
	for _, format := range []string{"json", "yaml"} {
		var b bytes.Buffer
		ok, err := printStructured(&b, format, st)
		if !ok || err != nil {
			t.Fatalf("%s: %v %v", format, ok, err)
		}
		var m map[string]any
		if format == "json" {
			err = json.Unmarshal(b.Bytes(), &m)
		} else {
			err = yaml.Unmarshal(b.Bytes(), &m)
		}
		// Field names are the API's JSON names in both formats.
		if err != nil || m["id"] != "plant/hot" || m["lag"] == nil {
			t.Fatalf("%s output %v: %s", format, err, b.String())
		}
	}
	if ok, _ := printStructured(&bytes.Buffer{}, "table", st); ok {
		t.Fatal("table handled as structured")
	}
}

func TestClientFlags(t *testing.T) {
	t.Setenv("EDDY_SERVER", "10.0.0.5:9090")
	t.Setenv("EDDY_TOKEN", "tok-from-env")
	tests := []struct {
		name            string
		f               clientFlags
		wantURL, wantTo string
		wantErr         bool
	}{
		{"env", clientFlags{}, "http://10.0.0.5:9090", "tok-from-env", false},
		{"flags win", clientFlags{server: "https://edge:8443/", token: "flag-tok"}, "https://edge:8443", "flag-tok", false},
		{"bad output", clientFlags{output: "xml"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.f.client()
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil || c.BaseURL != tt.wantURL || c.Token != tt.wantTo {
				t.Fatalf("client %+v %v", c, err)
			}
		})
	}
}

func TestClientCommandsParse(t *testing.T) {
	cmds := clientCommands()
	names := map[string]bool{}
	for _, c := range cmds {
		names[c.Name()] = true
	}
	for _, n := range []string{"get", "describe", "stats", "tap"} {
		if !names[n] {
			t.Errorf("missing command %s", n)
		}
	}
	// An unknown resource is refused before any network call.
	get := cmds[0]
	get.SetArgs([]string{"widgets", "--server", "127.0.0.1:1"})
	get.SetOut(&bytes.Buffer{})
	get.SetErr(&bytes.Buffer{})
	if err := get.Execute(); err == nil || !strings.Contains(err.Error(), "unknown resource") {
		t.Fatalf("get widgets: %v", err)
	}
}
