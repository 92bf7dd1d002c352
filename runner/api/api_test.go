package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner/twin"
)

type call struct {
	method, path, token, body string
}

func (ts *testServer) do(t *testing.T, c call) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if c.body != "" {
		rd = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, ts.http.URL+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(c.token, " "):
		req.Header.Set("Authorization", c.token)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var env struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Error == nil {
		t.Fatalf("body is not a JSON error: %s", b)
	}
	if env.Error.Message == "" {
		t.Fatalf("error without message: %s", b)
	}
	return env.Error.Code
}

func TestAuth(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	tests := []struct {
		name     string
		call     call
		status   int
		code     string // expected error code, "" for success
		bodyPart string
	}{
		{"no token", call{"GET", "/api/v1/pipelines", "", ""}, 401, "unauthorized", ""},
		{"wrong token", call{"GET", "/api/v1/pipelines", "nope-nope-nope-nope", ""}, 401, "unauthorized", ""},
		{"not bearer", call{"GET", "/api/v1/pipelines", "Basic " + adminToken, ""}, 401, "unauthorized", ""},
		{"read token reads", call{"GET", "/api/v1/pipelines", readToken, ""}, 200, "", "plant/hot"},
		{"admin token reads", call{"GET", "/api/v1/pipelines", adminToken, ""}, 200, "", "plant/hot"},
		{"read token cannot apply", call{"POST", "/api/v1/pipelines", readToken, thermoYAML}, 403, "forbidden", ""},
		{"read token cannot delete", call{"DELETE", "/api/v1/pipelines/plant/hot", readToken, ""}, 403, "forbidden", ""},
		{"read token cannot stop", call{"POST", "/api/v1/pipelines/plant/hot/stop", readToken, ""}, 403, "forbidden", ""},
		{"read token may validate", call{"POST", "/api/v1/validate", readToken, thermoYAML}, 200, "", `"valid":true`},
		{"info shows role", call{"GET", "/api/v1/info", readToken, ""}, 200, "", `"role":"read"`},
		{"info admin", call{"GET", "/api/v1/info", adminToken, ""}, 200, "", `"role":"admin"`},
		{"metrics need a token", call{"GET", "/metrics", "", ""}, 401, "unauthorized", ""},
		{"metrics with read token", call{"GET", "/metrics", readToken, ""}, 200, "", "eddy_pipeline_lag_records"},
		{"stream needs a token", call{"GET", "/api/v1/alerts/stream", "", ""}, 401, "unauthorized", ""},
		{"healthz is open", call{"GET", "/healthz", "", ""}, 200, "", `"ok"`},
		{"readyz is open", call{"GET", "/readyz", "", ""}, 200, "", `"ready"`},
		{"dashboard is open", call{"GET", "/", "", ""}, 200, "", "<html"},
		{"dashboard deep link", call{"GET", "/pipelines/plant/hot", "", ""}, 200, "", "<html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := ts.do(t, tt.call)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if tt.code != "" {
				if got := errorCode(t, b); got != tt.code {
					t.Fatalf("code %q, want %q", got, tt.code)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("error content type %q", resp.Header.Get("Content-Type"))
				}
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without WWW-Authenticate: %v", resp.Header)
			}
			if !strings.Contains(string(b), tt.bodyPart) {
				t.Fatalf("body lacks %q: %.300s", tt.bodyPart, b)
			}
		})
	}
}

func TestNoAuthMode(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: false})
	resp, b := ts.do(t, call{"POST", "/api/v1/pipelines", "", thermoYAML})
	if resp.StatusCode != 200 {
		t.Fatalf("anonymous apply on a no-auth runner: %d %s", resp.StatusCode, b)
	}
	// A token that is sent is still checked, so typos show up.
	resp, b = ts.do(t, call{"GET", "/api/v1/pipelines", "wrong-token-xxxxxxxx", ""})
	if resp.StatusCode != 401 || errorCode(t, b) != "unauthorized" {
		t.Fatalf("wrong token on no-auth runner: %d %s", resp.StatusCode, b)
	}
	resp, b = ts.do(t, call{"DELETE", "/api/v1/pipelines/plant/hot", readToken, ""})
	if resp.StatusCode != 403 {
		t.Fatalf("read token delete on no-auth runner: %d %s", resp.StatusCode, b)
	}
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a backend succeeded")
	}
	b := newRealBackend(t)
	if _, err := New(Options{Backend: b, RequireAuth: true}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("RequireAuth without tokens: %v", err)
	}
}

const badYAML = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bad}
spec:
  source:
    mqtt: {topic: "a/b"}
  steps:
    - window: {tumbling: "10"}
  sinks:
    - log: {}
`

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true, MaxBodyBytes: 4096})
	ts.apply(t, thermoYAML)
	tests := []struct {
		name   string
		call   call
		status int
		code   string
	}{
		{"invalid pipeline", call{"POST", "/api/v1/pipelines?file=bad.yaml", adminToken, badYAML}, 422, "invalid_pipeline"},
		{"not yaml", call{"POST", "/api/v1/pipelines", adminToken, "{{{"}, 422, "invalid_pipeline"},
		{"empty body", call{"POST", "/api/v1/pipelines", adminToken, ""}, 400, "bad_request"},
		{"too large", call{"POST", "/api/v1/pipelines", adminToken, strings.Repeat("# x\n", 2000)}, 413, "too_large"},
		{"put wrong name", call{"PUT", "/api/v1/pipelines/plant/other", adminToken, thermoYAML}, 400, "name_mismatch"},
		{"unknown pipeline", call{"GET", "/api/v1/pipelines/plant/nope", adminToken, ""}, 404, "not_found"},
		{"unknown pipeline stats", call{"GET", "/api/v1/pipelines/plant/nope/stats", adminToken, ""}, 404, "not_found"},
		{"unknown pipeline tap", call{"GET", "/api/v1/pipelines/plant/nope/tap", adminToken, ""}, 404, "not_found"},
		{"delete unknown", call{"DELETE", "/api/v1/pipelines/plant/nope", adminToken, ""}, 404, "not_found"},
		{"start unknown", call{"POST", "/api/v1/pipelines/plant/nope/start", adminToken, ""}, 404, "not_found"},
		{"unknown device", call{"GET", "/api/v1/devices/default/nope", adminToken, ""}, 404, "not_found"},
		{"unknown endpoint", call{"GET", "/api/v1/nothing", adminToken, ""}, 404, "not_found"},
		{"wrong method", call{"PATCH", "/api/v1/pipelines", adminToken, ""}, 405, "method_not_allowed"},
		{"explain invalid", call{"POST", "/api/v1/explain", adminToken, badYAML}, 422, "invalid_pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := ts.do(t, tt.call)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if got := errorCode(t, b); got != tt.code {
				t.Fatalf("code %q, want %q: %s", got, tt.code, b)
			}
		})
	}
	t.Run("details point at file and line", func(t *testing.T) {
		_, b := ts.do(t, call{"POST", "/api/v1/pipelines?file=bad.yaml", adminToken, badYAML})
		var env struct{ Error Error }
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(env.Error.Message, "bad.yaml:8") || len(env.Error.Details) == 0 || env.Error.Details[0].Line != 8 {
			t.Fatalf("error does not point at bad.yaml:8: %+v", env.Error)
		}
	})
	t.Run("wrong method says Allow", func(t *testing.T) {
		resp, _ := ts.do(t, call{"PATCH", "/api/v1/pipelines", adminToken, ""})
		if a := resp.Header.Get("Allow"); !strings.Contains(a, "GET") || !strings.Contains(a, "POST") {
			t.Fatalf("Allow = %q", a)
		}
	})
	t.Run("validate reports errors without failing", func(t *testing.T) {
		v, err := ts.client(adminToken).Validate(context.Background(), "bad.yaml", []byte(badYAML))
		if err != nil {
			t.Fatal(err)
		}
		if v.Valid || len(v.Errors) == 0 || v.Errors[0].Path == "" {
			t.Fatalf("validate bad: %+v", v)
		}
	})
}

func (ts *testServer) client(token string) *Client { return NewClient(ts.http.URL, token) }

func TestPipelineLifecycle(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ctx := context.Background()
	c := ts.client(adminToken)

	res, err := c.Apply(ctx, "hot.yaml", []byte(thermoYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 1 || res.Applied[0] != "plant/hot" {
		t.Fatalf("applied %v", res.Applied)
	}
	list, err := c.Pipelines(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "plant/hot" || list[0].State != "running" {
		t.Fatalf("list %+v %v", list, err)
	}
	d, err := c.Pipeline(ctx, "plant/hot")
	if err != nil {
		t.Fatal(err)
	}
	if d.Source != thermoYAML || d.Plan == nil || len(d.Plan.Nodes) != 4 || len(d.Status.Steps) != 2 {
		t.Fatalf("detail: source %q plan %+v steps %+v", d.Source, d.Plan, d.Status.Steps)
	}
	text, err := c.Explain(ctx, "plant/hot")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pipeline plant/hot", "filter-0", "alert-1", "temperature > 30", "key: device"} {
		if !strings.Contains(text, want) {
			t.Fatalf("explain lacks %q:\n%s", want, text)
		}
	}
	resp, b := ts.do(t, call{"POST", "/api/v1/explain", readToken, thermoYAML})
	if resp.StatusCode != 200 || !strings.Contains(string(b), "filter-0") {
		t.Fatalf("explain YAML: %d %s", resp.StatusCode, b)
	}

	// PUT of the same pipeline replaces it (200); of a new one creates (201).
	resp, b = ts.do(t, call{"PUT", "/api/v1/pipelines/plant/hot", adminToken, thermoYAML})
	if resp.StatusCode != 200 {
		t.Fatalf("PUT existing: %d %s", resp.StatusCode, b)
	}
	other := strings.Replace(thermoYAML, "name: hot", "name: cold", 1)
	resp, b = ts.do(t, call{"PUT", "/api/v1/pipelines/plant/cold", adminToken, other})
	if resp.StatusCode != 201 {
		t.Fatalf("PUT new: %d %s", resp.StatusCode, b)
	}

	st, err := c.Stop(ctx, "plant/hot")
	if err != nil || st.State != "stopped" {
		t.Fatalf("stop: %+v %v", st.State, err)
	}
	st, err = c.Start(ctx, "plant/hot")
	if err != nil || st.State != "running" {
		t.Fatalf("start: %+v %v", st.State, err)
	}
	if err := c.Delete(ctx, "plant/cold"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Pipeline(ctx, "plant/cold")
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "not_found" {
		t.Fatalf("deleted pipeline: %v", err)
	}
	// A name without a namespace means "default".
	if PipelinePath("x") != "/api/v1/pipelines/default/x" {
		t.Fatal(PipelinePath("x"))
	}
}

func TestReadOnlyEdge(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	ts.setReadOnly(true)
	for _, c := range []call{
		{"POST", "/api/v1/pipelines", adminToken, thermoYAML},
		{"PUT", "/api/v1/pipelines/plant/hot", adminToken, thermoYAML},
		{"DELETE", "/api/v1/pipelines/plant/hot", adminToken, ""},
		{"POST", "/api/v1/pipelines/plant/hot/stop", adminToken, ""},
		{"POST", "/api/v1/pipelines/plant/hot/start", adminToken, ""},
	} {
		resp, b := ts.do(t, c)
		if resp.StatusCode != 403 || errorCode(t, b) != "read_only" {
			t.Fatalf("%s %s on a read-only edge: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
	info, err := ts.client(adminToken).Info(context.Background())
	if err != nil || !info.ReadOnly || info.Role != "admin" || !info.AuthRequired {
		t.Fatalf("info %+v %v", info, err)
	}
	if st, _ := ts.Pipeline("plant/hot"); st.State != "running" {
		t.Fatalf("read-only edge changed the pipeline: %s", st.State)
	}
}

// TestCountersAlertsMetrics feeds MQTT messages through the real broker
// and checks that the API, the alert list and /metrics show the same
// numbers.
func TestCountersAlertsMetrics(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	ctx := context.Background()
	c := ts.client(readToken)
	ts.publish(t, "factory/m1/data", `{"device":"m1","temperature":20}`, `{"device":"m1","temperature":35}`,
		`{"device":"m2","temperature":25}`, `{"device":"m2","temperature":41}`, `{"device":"m1","temperature":36}`)

	var st = ts.waitStats(t, "plant/hot", func(s int64) bool { return s == 5 })
	if f := st.Steps[0]; f.In != 5 || f.Out != 3 || f.Errors != 0 {
		t.Fatalf("filter counters %+v", f)
	}
	// Head counts the 5 inputs and the 2 alerts the mqtt sink published
	// back through the broker (which logs every message).
	if st.Lag != 0 || st.Head != 7 {
		t.Fatalf("lag %d head %d", st.Lag, st.Head)
	}
	stats, err := c.Stats(ctx, "plant/hot")
	if err != nil || stats.Source.In != 5 {
		t.Fatalf("stats %+v %v", stats.Source, err)
	}

	al, err := c.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(al.Firing) != 2 || al.Firing[0].Severity != "critical" || al.Firing[0].State != "firing" {
		t.Fatalf("firing %+v", al.Firing)
	}
	keys := map[string]bool{al.Firing[0].Key: true, al.Firing[1].Key: true}
	if !keys["m1"] || !keys["m2"] || !strings.Contains(al.Firing[0].Message, "is hot") {
		t.Fatalf("firing %+v", al.Firing)
	}
	if len(al.History) < 2 {
		t.Fatalf("history %+v", al.History)
	}
	d, err := c.Pipeline(ctx, "plant/hot")
	if err != nil || len(d.Firing) != 2 {
		t.Fatalf("pipeline firing %+v %v", d.Firing, err)
	}

	w, err := c.WAL(ctx)
	if err != nil || w.Last < 5 || w.Records < 5 || w.Appends < 5 {
		t.Fatalf("wal %+v %v", w, err)
	}
	br, err := c.Broker(ctx)
	if err != nil || br.Stats.MessagesIn < 5 || br.Stats.Logged < 5 {
		t.Fatalf("broker %+v %v", br.Stats, err)
	}
	var sawTwinFilter bool
	for _, tp := range br.Topics {
		sawTwinFilter = sawTwinFilter || tp.Name == twin.Subscriptions[0]
	}
	if !sawTwinFilter {
		t.Fatalf("topics lack the twin subscription: %+v", br.Topics)
	}
	l, err := c.Link(ctx)
	if err != nil || l.State != LinkNone {
		t.Fatalf("link %+v %v", l, err)
	}

	fams := ts.scrape(t)
	step := map[string]string{"pipeline": "plant/hot", "step": "filter-0"}
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"eddy_step_records_in_total", step, 5},
		{"eddy_step_records_out_total", step, 3},
		{"eddy_step_errors_total", step, 0},
		{"eddy_pipeline_lag_records", map[string]string{"pipeline": "plant/hot"}, 0},
		{"eddy_alerts_firing", map[string]string{"pipeline": "plant/hot", "severity": "critical"}, 2},
		{"eddy_wal_last_offset", nil, float64(w.Last)},
		{"eddy_link_up", map[string]string{"state": "none"}, 0},
	} {
		got, ok := metricValue(fams, m.name, m.labels)
		if !ok || got != m.want {
			t.Errorf("%s%v = %v (found %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
	if bm, _ := metricValue(fams, "eddy_broker_messages_in_total", nil); bm < 5 {
		t.Fatalf("eddy_broker_messages_in_total = %v", bm)
	}
}

func (ts *testServer) waitStats(t *testing.T, id string, sourceIn func(int64) bool) (st struct {
	Steps []struct{ In, Out, Errors int64 }
	Lag   uint64
	Head  uint64
}) {
	t.Helper()
	mqtttest.WaitFor(t, "pipeline "+id+" to read its input", func() bool {
		s, ok := ts.Pipeline(id)
		if !ok || !sourceIn(s.Source.In) || s.Lag != 0 {
			return false
		}
		st.Steps = nil
		for _, x := range s.Steps {
			st.Steps = append(st.Steps, struct{ In, Out, Errors int64 }{x.In, x.Out, x.Errors})
		}
		st.Lag, st.Head = s.Lag, s.Head
		return true
	})
	return st
}

func (ts *testServer) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, b := ts.do(t, call{"GET", "/metrics", readToken, ""})
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, b)
	}
	return fams
}

func findMetric(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	m := findMetric(fams, name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func TestDevices(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ctx := context.Background()
	err := ts.twins.SetDevices(ctx, []twin.DeviceSpec{{ID: "default/thermo-1", Description: "line 1",
		Properties: []twin.PropertySpec{{Name: "setpoint", Type: "INT", Desired: "21"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ts.publish(t, "$hw/events/device/default/thermo-1/twin/update",
		`{"event_id":"e1","timestamp":1700000000000,"twin":{"setpoint":{"actual":{"value":"19"},"metadata":{"type":"int"}}}}`)
	c := ts.client(readToken)
	var devs []*twin.DeviceRecord
	mqtttest.WaitFor(t, "the reported twin value", func() bool {
		devs, err = c.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(devs) == 1 && devs[0].Twins["setpoint"] != nil && devs[0].Twins["setpoint"].Actual != nil
	})
	tw := devs[0].Twins["setpoint"]
	if devs[0].ID != "default/thermo-1" || string(tw.Expected.Value) != `"21"` || string(tw.Actual.Value) != `"19"` || tw.Actual.Timestamp == 0 {
		t.Fatalf("device %+v twin expected %s actual %s", devs[0], tw.Expected.Value, tw.Actual.Value)
	}
	resp, b := ts.do(t, call{"GET", "/api/v1/devices/default/thermo-1", readToken, ""})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"setpoint"`) {
		t.Fatalf("device: %d %s", resp.StatusCode, b)
	}
	fams := ts.scrape(t)
	var n float64
	for _, m := range fams["eddy_devices"].GetMetric() {
		n += m.GetGauge().GetValue()
	}
	if n != 1 {
		t.Fatalf("eddy_devices sums to %v", n)
	}
}

func TestTapStream(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- ts.client(readToken).Tap(ctx, "plant/hot", func(e Event) error {
			got <- e
			return nil
		})
	}()
	// The tap is attached when the server has taken a stream slot.
	mqtttest.WaitFor(t, "the tap to attach", func() bool { return len(ts.srv.streams) == 1 })
	ts.publish(t, "factory/m1/data", `{"device":"m1","temperature":20}`, `{"device":"m1","temperature":45}`)
	select {
	case e := <-got:
		var out map[string]any
		if e.Name != "output" || json.Unmarshal(e.Data, &out) != nil || out["key"] != "m1" || out["state"] != "firing" {
			t.Fatalf("tap event %s %s", e.Name, e.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no tap output")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "the stream slot to be released", func() bool { return len(ts.srv.streams) == 0 })
}

func TestAlertStream(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true, AlertPoll: 20 * time.Millisecond})
	ts.apply(t, thermoYAML)
	ts.publish(t, "factory/m1/data", `{"device":"m1","temperature":50}`)
	mqtttest.WaitFor(t, "the first alert", func() bool { return len(ts.Alerts()) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Event, 16)
	go ts.client(readToken).AlertStream(ctx, func(e Event) error {
		got <- e
		return nil
	})
	next := func() Event {
		select {
		case e := <-got:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no alert event")
		}
		return Event{}
	}
	snap := next()
	var l AlertList
	if snap.Name != "snapshot" || json.Unmarshal(snap.Data, &l) != nil || len(l.Firing) != 1 {
		t.Fatalf("snapshot %s %s", snap.Name, snap.Data)
	}
	ts.publish(t, "factory/m2/data", `{"device":"m2","temperature":60}`)
	e := next()
	var a Alert
	if e.Name != "alert" || json.Unmarshal(e.Data, &a) != nil || a.Key != "m2" || a.State != "firing" || a.Pipeline != "plant/hot" {
		t.Fatalf("alert event %s %s", e.Name, e.Data)
	}
}

func TestStreamLimit(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true, MaxStreams: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.client(readToken).AlertStream(ctx, func(Event) error { return nil })
	mqtttest.WaitFor(t, "the first stream", func() bool { return len(ts.srv.streams) == 1 })
	resp, b := ts.do(t, call{"GET", "/api/v1/alerts/stream", readToken, ""})
	if resp.StatusCode != 503 || errorCode(t, b) != "too_many_streams" {
		t.Fatalf("second stream: %d %s", resp.StatusCode, b)
	}
}

func TestNewAlerts(t *testing.T) {
	mk := func(id string, sec int64) engineAlert { return engineAlert{id, sec} }
	tests := []struct {
		name string
		recs []engineAlert
		last *engineAlert
		want []string
	}{
		{"nothing seen yet", []engineAlert{mk("a", 1), mk("b", 2)}, nil, []string{"a", "b"}},
		{"suffix after last", []engineAlert{mk("a", 1), mk("b", 2), mk("c", 3)}, &engineAlert{"b", 2}, []string{"c"}},
		{"nothing new", []engineAlert{mk("a", 1), mk("b", 2)}, &engineAlert{"b", 2}, nil},
		{"last fell out of history", []engineAlert{mk("c", 3), mk("d", 4)}, &engineAlert{"a", 1}, []string{"c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := toRecords(tt.recs)
			var last alertMark
			if tt.last != nil {
				last = markOf(toRecords([]engineAlert{*tt.last})[0])
			}
			var got []string
			for _, r := range newAlerts(recs, last) {
				got = append(got, r.Fields["alert_id"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLatencyMetric checks the sampled latency histogram reaches /metrics
// (the engine times one event in 64).
func TestLatencyMetric(t *testing.T) {
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	var msgs []string
	for i := range 200 {
		msgs = append(msgs, fmt.Sprintf(`{"device":"m%d","temperature":%d}`, i%3, i%25))
	}
	ts.publish(t, "factory/m1/data", msgs...)
	ts.waitStats(t, "plant/hot", func(n int64) bool { return n == 200 })
	h := findMetric(ts.scrape(t), "eddy_step_latency_seconds", map[string]string{"pipeline": "plant/hot", "step": "filter-0"})
	if h == nil || h.GetHistogram().GetSampleCount() < 3 || len(h.GetHistogram().GetBucket()) < len(latencyBuckets) {
		t.Fatalf("latency histogram %v", h)
	}
	var prev uint64
	for _, bkt := range h.GetHistogram().GetBucket() {
		if bkt.GetCumulativeCount() < prev {
			t.Fatalf("buckets not cumulative: %v", h.GetHistogram().GetBucket())
		}
		prev = bkt.GetCumulativeCount()
	}
}
