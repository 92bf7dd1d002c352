package twin

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

const (
	dev        = "default/thermo-1"
	updTopic   = "$hw/events/device/default/thermo-1/twin/update"
	resTopic   = "$hw/events/device/default/thermo-1/twin/update/result"
	deltaTopic = "$hw/events/device/default/thermo-1/twin/update/delta"
	docTopic   = "$hw/events/device/default/thermo-1/twin/update/document"
	getTopic   = "$hw/events/device/default/thermo-1/twin/get"
	getResult  = "$hw/events/device/default/thermo-1/twin/get/result"
)

var t0 = time.UnixMilli(1700000000000).UTC()

type recPub struct {
	mu   sync.Mutex
	msgs []struct{ topic, body string }
}

func (r *recPub) Publish(topic string, payload []byte, qos byte, retain bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, struct{ topic, body string }{topic, string(payload)})
	return nil
}

// take returns topic -> payload (last wins) and clears.
func (r *recPub) take() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, m := range r.msgs {
		out[m.topic] = normalize(m.body)
	}
	r.msgs = nil
	return out
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

func normalize(s string) string { return uuidRE.ReplaceAllString(s, "UUID") }

type rig struct {
	m   *Manager
	pub *recPub
	clk *clock.Fake
	evs []string
}

func newRig(t testing.TB, store Store) *rig {
	t.Helper()
	r := &rig{pub: &recPub{}, clk: clock.NewFake(t0)}
	m, err := New(context.Background(), Options{
		Node: "edge-a", Publisher: r.pub, Store: store, Clock: r.clk,
		OnEvent: func(stream, device string, f map[string]any, at time.Time) {
			b, _ := json.Marshal(f)
			r.evs = append(r.evs, stream+" "+device+" "+string(b))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	return r
}

func thermoSpec() []DeviceSpec {
	return []DeviceSpec{{ID: dev, Node: "edge-a", Properties: []PropertySpec{
		{Name: "temperature", Type: "INT", Desired: "22"},
		{Name: "mode", Type: "STRING"},
	}}}
}

func (r *rig) setup(t testing.TB) {
	t.Helper()
	if err := r.m.SetDevices(context.Background(), thermoSpec()); err != nil {
		t.Fatal(err)
	}
	r.pub.take()
	r.evs = nil
}

func TestUpdateProtocol(t *testing.T) {
	big := `"` + strings.Repeat("x", DefaultMaxValueBytes) + `"`
	cases := []struct {
		name    string
		payload string
		wantErr error
		want    map[string]string // topic -> exact JSON ("" = must not be published)
	}{
		{
			name:    "actual equal to desired: result and document, no delta",
			payload: `{"event_id":"e1","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"22"},"metadata":{"type":"int"}}}}`,
			want: map[string]string{
				resTopic:   `{"event_id":"e1","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"22","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":0,"edge":1}}}}`,
				docTopic:   `{"event_id":"e1","timestamp":1700000000000,"twin":{"temperature":{"last":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}},"current":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"actual":{"value":"22","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}}}}}`,
				deltaTopic: "",
			},
		},
		{
			name:    "actual differs: delta with the expected value",
			payload: `{"event_id":"e2","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"25"}}}}`,
			want: map[string]string{
				resTopic:   `{"event_id":"e2","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"25","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":0,"edge":1}}}}`,
				deltaTopic: `{"event_id":"UUID","timestamp":1700000000000,"twin":{"temperature":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"actual":{"value":"25","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}}},"delta":{"temperature":"22"}}`,
			},
		},
		{
			name:    "numbers compare by string form: 22 equals \"22\"",
			payload: `{"event_id":"e3","twin":{"temperature":{"actual":{"value":22}}}}`,
			want: map[string]string{
				resTopic:   `{"event_id":"e3","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":22,"metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":0,"edge":1}}}}`,
				deltaTopic: "",
			},
		},
		{
			name:    "expected set from the edge bumps the edge version",
			payload: `{"event_id":"e4","twin":{"mode":{"expected":{"value":"eco"}}}}`,
			want: map[string]string{
				resTopic:   `{"event_id":"e4","timestamp":1700000000000,"twin":{"mode":{"expected":{"value":"eco","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"string"},"expected_version":{"cloud":0,"edge":1}}}}`,
				deltaTopic: `{"event_id":"UUID","timestamp":1700000000000,"twin":{"mode":{"expected":{"value":"eco","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}}},"delta":{"mode":"eco","temperature":"22"}}`,
			},
		},
		{
			name:    "JSON object value for an undeclared property is kept and flagged",
			payload: `{"event_id":"e5","twin":{"location":{"actual":{"value":{"lat":52.5,"lon":13.4}}}}}`,
			want: map[string]string{
				resTopic: `{"event_id":"e5","timestamp":1700000000000,"twin":{"location":{"actual":{"value":{"lat":52.5,"lon":13.4},"metadata":{"timestamp":1700000000000}},"optional":true,"metadata":{"type":"object"},"actual_version":{"cloud":0,"edge":1},"undeclared":true}}}`,
				docTopic: `{"event_id":"e5","timestamp":1700000000000,"twin":{"location":{"last":null,"current":{"actual":{"value":{"lat":52.5,"lon":13.4},"metadata":{"timestamp":1700000000000}},"optional":true,"metadata":{"type":"object"},"undeclared":true}}}}`,
			},
		},
		{
			name:    "unknown device",
			payload: `{"event_id":"e6","twin":{"temperature":{"actual":{"value":"1"}}}}`,
			wantErr: ErrRejected,
			want: map[string]string{
				"$hw/events/device/default/nope/twin/update/result": `{"event_id":"e6","timestamp":1700000000000,"code":404,"reason":"device default/nope is not known on this node; declare it with a Device resource bound to this node"}`,
			},
		},
		{
			name:    "not JSON",
			payload: `{"twin":`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"","timestamp":1700000000000,"code":400,"reason":"twin/update payload for device default/thermo-1 is not valid JSON: unexpected end of JSON input"}`,
			},
		},
		{
			name:    "no twin object",
			payload: `{"event_id":"e7"}`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"e7","timestamp":1700000000000,"code":400,"reason":"twin/update for device default/thermo-1 has no \"twin\" object; send {\"twin\":{\"\u003cprop\u003e\":{\"actual\":{\"value\":...}}}}"}`,
			},
		},
		{
			name:    "value over the size cap",
			payload: `{"event_id":"e8","twin":{"mode":{"actual":{"value":` + big + `}}}}`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"e8","timestamp":1700000000000,"code":400,"reason":"twin.mode.actual: value is 65538 bytes; the limit is 65536 bytes (raise Options.MaxValueBytes on the edge runner, or send a smaller value)"}`,
			},
		},
		{
			name:    "value does not match the declared type",
			payload: `{"event_id":"e9","twin":{"temperature":{"actual":{"value":"hot"}}}}`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"e9","timestamp":1700000000000,"code":400,"reason":"twin.temperature.actual: value \"hot\" is not an integer but the property is declared int"}`,
			},
		},
		{
			name:    "invalid property name",
			payload: `{"event_id":"e10","twin":{"bad key":{"actual":{"value":"1"}}}}`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"e10","timestamp":1700000000000,"code":400,"reason":"property name \"bad key\" is invalid: use 1-128 characters from a-z A-Z 0-9 - _ . , : / @ #"}`,
			},
		},
		{
			name:    "declared property cannot be deleted from the edge",
			payload: `{"event_id":"e11","twin":{"temperature":null}}`,
			wantErr: ErrRejected,
			want: map[string]string{
				resTopic: `{"event_id":"e11","timestamp":1700000000000,"code":400,"reason":"property temperature of device default/thermo-1 is declared by its device model and cannot be deleted from the edge; remove it from the Device spec instead"}`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.setup(t)
			topic := updTopic
			if strings.HasPrefix(tc.name, "unknown") {
				topic = "$hw/events/device/default/nope/twin/update"
			}
			err := r.m.HandleMessage(context.Background(), topic, []byte(tc.payload))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("HandleMessage error = %v, want %v", err, tc.wantErr)
			}
			got := r.pub.take()
			for topic, want := range tc.want {
				if want == "" {
					if g, ok := got[topic]; ok {
						t.Errorf("%s published but should not be:\n%s", topic, g)
					}
					continue
				}
				if got[topic] != want {
					t.Errorf("%s:\n got %s\nwant %s", topic, got[topic], want)
				}
			}
		})
	}
}

func TestUndeclaredCounted(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	for _, p := range []string{
		`{"twin":{"humidity":{"actual":{"value":"40"}}}}`,
		`{"twin":{"humidity":{"actual":{"value":"41"}}}}`,
	} {
		if err := r.m.HandleMessage(context.Background(), updTopic, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	st := r.m.Stats()
	if st.UndeclaredTwins != 1 || st.UndeclaredReports != 2 || st.Twins != 3 {
		t.Fatalf("stats = %+v", st)
	}
	dst := map[string]any{}
	r.m.Values(dev, []string{"humidity"}, dst)
	if dst["twin_humidity"] != "41" {
		t.Fatalf("Values = %v", dst)
	}
	// An undeclared property can be deleted from the edge.
	if err := r.m.HandleMessage(context.Background(), updTopic, []byte(`{"event_id":"d","twin":{"humidity":null}}`)); err != nil {
		t.Fatal(err)
	}
	got := r.pub.take()
	if want := `{"event_id":"d","timestamp":1700000000000,"twin":{"humidity":null}}`; got[resTopic] != want {
		t.Fatalf("delete result %s, want %s", got[resTopic], want)
	}
	if st := r.m.Stats(); st.Twins != 2 {
		t.Fatalf("twin not deleted: %+v", st)
	}
}

func TestNoRevert(t *testing.T) {
	type step struct {
		payload  string
		wantCode string // "" = accepted
		wantVal  any
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"replayed actual_version is rejected", []step{
			{`{"twin":{"temperature":{"actual":{"value":"20"}}}}`, "", int64(20)},
			{`{"twin":{"temperature":{"actual":{"value":"21"},"actual_version":{"cloud":0,"edge":1}}}}`, "", int64(21)},
			{`{"twin":{"temperature":{"actual":{"value":"23"},"actual_version":{"cloud":0,"edge":2}}}}`, "", int64(23)},
			// the second message again, after a reconnect:
			{`{"twin":{"temperature":{"actual":{"value":"21"},"actual_version":{"cloud":0,"edge":1}}}}`, `"code":409`, int64(23)},
		}},
		{"older message timestamp is rejected", []step{
			{`{"timestamp":1700000005000,"twin":{"temperature":{"actual":{"value":"30"}}}}`, "", int64(30)},
			{`{"timestamp":1700000001000,"twin":{"temperature":{"actual":{"value":"10"}}}}`, `older than the stored value's 1700000005000 ms`, int64(30)},
			{`{"timestamp":1700000009000,"twin":{"temperature":{"actual":{"value":"31"}}}}`, "", int64(31)},
		}},
		{"older value metadata timestamp is rejected", []step{
			{`{"twin":{"temperature":{"actual":{"value":"5","metadata":{"timestamp":200}}}}}`, "", int64(5)},
			{`{"twin":{"temperature":{"actual":{"value":"4","metadata":{"timestamp":100}}}}}`, `"code":409`, int64(5)},
		}},
		{"a rejected message changes nothing, not even other properties", []step{
			{`{"timestamp":50,"twin":{"temperature":{"actual":{"value":"7"}}}}`, "", int64(7)},
			{`{"timestamp":40,"twin":{"mode":{"actual":{"value":"x"}},"temperature":{"actual":{"value":"6"}}}}`, `"code":409`, int64(7)},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.setup(t)
			for i, s := range tc.steps {
				err := r.m.HandleMessage(context.Background(), updTopic, []byte(s.payload))
				got := r.pub.take()[resTopic]
				if s.wantCode == "" {
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				} else if !errors.Is(err, ErrRejected) || !strings.Contains(got, s.wantCode) {
					t.Fatalf("step %d: err %v, result %s; want rejection containing %s", i, err, got, s.wantCode)
				}
				dst := map[string]any{}
				r.m.Values(dev, nil, dst)
				if dst["twin_temperature"] != s.wantVal {
					t.Fatalf("step %d: temperature = %#v, want %#v", i, dst["twin_temperature"], s.wantVal)
				}
				if _, ok := dst["twin_mode"]; ok {
					t.Fatalf("step %d: mode changed by a rejected message", i)
				}
			}
		})
	}
}

func TestGet(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	ctx := context.Background()
	if err := r.m.HandleMessage(ctx, updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"25"}}}}`)); err != nil {
		t.Fatal(err)
	}
	r.pub.take()
	if err := r.m.HandleMessage(ctx, getTopic, []byte(`{"event_id":"g1"}`)); err != nil {
		t.Fatal(err)
	}
	want := `{"event_id":"g1","timestamp":1700000000000,"twin":{"mode":{"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"actual":{"value":"25","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}}}}`
	if got := r.pub.take()[getResult]; got != want {
		t.Fatalf("get result\n got %s\nwant %s", got, want)
	}
	err := r.m.HandleMessage(ctx, "$hw/events/device/default/ghost/twin/get", []byte(`{"event_id":"g2"}`))
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v", err)
	}
	want = `{"event_id":"g2","timestamp":1700000000000,"code":404,"reason":"Device default/ghost not found while getting twin; declare it with a Device resource bound to this node"}`
	if got := r.pub.take()["$hw/events/device/default/ghost/twin/get/result"]; got != want {
		t.Fatalf("get 404\n got %s\nwant %s", got, want)
	}
}

func TestStateUpdate(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	ctx := context.Background()
	stTopic := "$hw/events/device/default/thermo-1/state/update"
	stRes := stTopic + "/result"
	cases := []struct {
		payload, want string
		events        int
	}{
		{`{"event_id":"s1","state":"online"}`, `{"event_id":"UUID","timestamp":1700000000000,"device":{"name":"thermo-1","state":"online","last_online":"2023-11-14 22:13:20"}}`, 1},
		{`{"event_id":"s2","state":"online"}`, `{"event_id":"UUID","timestamp":1700000001000,"device":{"name":"thermo-1","state":"online","last_online":"2023-11-14 22:13:21"}}`, 0},
		{`{"event_id":"s3","state":"offline"}`, `{"event_id":"UUID","timestamp":1700000002000,"device":{"name":"thermo-1","state":"offline","last_online":"2023-11-14 22:13:22"}}`, 1},
		{`{"event_id":"s4","state":"sleepy"}`, `{"event_id":"s4","timestamp":1700000003000,"code":400,"reason":"state/update for device default/thermo-1 has state \"sleepy\"; use \"online\", \"offline\" or \"unknown\""}`, 0},
	}
	for i, c := range cases {
		r.evs = nil
		_ = r.m.HandleMessage(ctx, stTopic, []byte(c.payload))
		if got := r.pub.take()[stRes]; got != c.want {
			t.Errorf("case %d\n got %s\nwant %s", i, got, c.want)
		}
		if len(r.evs) != c.events {
			t.Errorf("case %d: events %v, want %d", i, r.evs, c.events)
		}
		r.clk.Advance(time.Second)
	}
}

func TestMembership(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	if err := r.m.SetDevices(ctx, thermoSpec()); err != nil {
		t.Fatal(err)
	}
	got := r.pub.take()
	want := `{"event_id":"UUID","timestamp":1700000000000,"added_devices":[{"id":"default/thermo-1","name":"thermo-1","twin":{"mode":{"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":1700000000000}},"optional":false,"metadata":{"type":"int"}}}}],"removed_devices":[]}`
	if g := got["$hw/events/node/edge-a/membership/updated"]; g != want {
		t.Fatalf("membership/updated\n got %s\nwant %s", g, want)
	}
	if g := got[deltaTopic]; !strings.Contains(g, `"delta":{"temperature":"22"}`) {
		t.Fatalf("new device with desired value must get a delta, got %q", g)
	}
	if err := r.m.HandleMessage(ctx, "$hw/events/node/edge-a/membership/get", []byte(`{"event_id":"m1"}`)); err != nil {
		t.Fatal(err)
	}
	want = `{"event_id":"m1","timestamp":1700000000000,"devices":[{"id":"default/thermo-1","name":"thermo-1"}]}`
	if g := r.pub.take()["$hw/events/node/edge-a/membership/get/result"]; g != want {
		t.Fatalf("membership/get/result\n got %s\nwant %s", g, want)
	}
	// Replace thermo-1 by pump-1: one update with added and removed.
	r.evs = nil
	if err := r.m.SetDevices(ctx, []DeviceSpec{{ID: "default/pump-1"}}); err != nil {
		t.Fatal(err)
	}
	want = `{"event_id":"UUID","timestamp":1700000000000,"added_devices":[{"id":"default/pump-1","name":"pump-1"}],"removed_devices":[{"id":"default/thermo-1","name":"thermo-1"}]}`
	if g := r.pub.take()["$hw/events/node/edge-a/membership/updated"]; g != want {
		t.Fatalf("membership/updated\n got %s\nwant %s", g, want)
	}
	if len(r.evs) != 1 || r.evs[0] != `membership  {"added":["default/pump-1"],"node":"edge-a","removed":["default/thermo-1"]}` {
		t.Fatalf("events %q", r.evs)
	}
}

func TestSetDevicesCloudVersion(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	ctx := context.Background()
	spec := thermoSpec()
	spec[0].Properties[0].Desired = json.RawMessage(`24`)
	if err := r.m.SetDevices(ctx, spec); err != nil {
		t.Fatal(err)
	}
	got := r.pub.take()
	if !strings.Contains(got[deltaTopic], `"delta":{"temperature":24}`) {
		t.Fatalf("delta %s", got[deltaTopic])
	}
	if err := r.m.HandleMessage(ctx, updTopic, []byte(`{"event_id":"x","twin":{"temperature":{"expected":{"value":"26"}}}}`)); err != nil {
		t.Fatal(err)
	}
	if g := r.pub.take()[resTopic]; !strings.Contains(g, `"expected_version":{"cloud":2,"edge":1}`) {
		t.Fatalf("versions after cloud,cloud,edge: %s", g)
	}
	// The same desired again changes nothing.
	if err := r.m.SetDevices(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Invalid specs change nothing and say where.
	for _, bad := range []struct {
		specs []DeviceSpec
		msg   string
	}{
		{[]DeviceSpec{{ID: "x/y/z"}}, `devices[0] (x/y/z): device id "x/y/z" is invalid`},
		{[]DeviceSpec{{ID: "a/b"}, {ID: "a/b"}}, `appears twice`},
		{[]DeviceSpec{{ID: "a/b", Properties: []PropertySpec{{Name: "t", Type: "INT", Desired: "warm"}}}}, `devices[0] (a/b).properties[0] (t): desired value: value "warm" is not an integer`},
	} {
		err := r.m.SetDevices(ctx, bad.specs)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("SetDevices(%v) = %v, want %q", bad.specs, err, bad.msg)
		}
	}
	if st := r.m.Stats(); st.Devices != 1 {
		t.Fatalf("bad spec changed state: %+v", st)
	}
}

func TestEvents(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	if err := r.m.HandleMessage(context.Background(), updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"25"}},"extra":{"actual":{"value":true}}}}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`twin default/thermo-1 {"actual":true,"device":"default/thermo-1","expected":null,"property":"extra","source":"edge","type":"boolean","undeclared":true,"version":1}`,
		`twin default/thermo-1 {"actual":25,"device":"default/thermo-1","expected":22,"property":"temperature","source":"edge","type":"int","undeclared":false,"version":2}`,
	}
	if strings.Join(r.evs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(r.evs, "\n"), strings.Join(want, "\n"))
	}
}

func TestDataUpdate(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	ctx := context.Background()
	if err := r.m.HandleMessage(ctx, "$ke/events/device/default/thermo-1/data/update", []byte(`{"timestamp":10,"data":{"temperature":{"value":"19"}}}`)); err != nil {
		t.Fatal(err)
	}
	if got := r.pub.take(); len(got) != 0 {
		t.Fatalf("data/update must not be answered: %v", got)
	}
	dst := map[string]any{}
	r.m.Values(dev, []string{"temperature"}, dst)
	if dst["twin_temperature"] != int64(19) {
		t.Fatalf("Values = %v", dst)
	}
	// Data for devices without a twin is not ours.
	if err := r.m.HandleMessage(ctx, "$ke/events/device/default/other/data/update", []byte(`{"data":{"x":{"value":"1"}}}`)); err != nil {
		t.Fatal(err)
	}
}

func TestTopics(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		topic string
		err   error
	}{
		{resTopic, nil}, {deltaTopic, nil}, {"$hw/events/device/default/thermo-1/twin/cloud_updated", nil},
		{"$hw/events/node/edge-a/membership/get/result", nil},
		{"sensors/temp", ErrUnknownTopic}, {"$hw/events/device/twin/update", ErrUnknownTopic},
	} {
		if err := r.m.HandleMessage(ctx, tc.topic, []byte(`{}`)); !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", tc.topic, err, tc.err)
		}
	}
	if len(r.pub.take()) != 0 {
		t.Fatal("ignored topics must not be answered")
	}
}

func TestValuesNoAlloc(t *testing.T) {
	r := newRig(t, nil)
	r.setup(t)
	if err := r.m.HandleMessage(context.Background(), updTopic, []byte(`{"twin":{"temperature":{"actual":{"value":"25"}},"mode":{"expected":{"value":"eco"}}}}`)); err != nil {
		t.Fatal(err)
	}
	props := []string{"temperature", "mode", "missing"}
	dst := map[string]any{}
	r.m.Values(dev, props, dst)
	if dst["twin_temperature"] != int64(25) || dst["twin_mode"] != "eco" || len(dst) != 2 {
		t.Fatalf("Values = %v", dst)
	}
	if n := testing.AllocsPerRun(100, func() { r.m.Values(dev, props, dst) }); n != 0 {
		t.Fatalf("Values allocates %v times per call", n)
	}
}
