package link_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/internal/testtools"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/wal"
)

// testHub is a real hub whose ports survive a restart.
type testHub struct {
	t       *testing.T
	h       *hub.Hub
	dir     string
	client  string // host:port
	leaf    string
	creds   *hub.Credentials
	adminPW string
	nodePW  map[string]string
	domain  string
}

func newTestHub(t *testing.T, nodes ...string) *testHub {
	th := &testHub{t: t, dir: t.TempDir(), client: freeAddr(t), leaf: freeAddr(t), creds: &hub.Credentials{BcryptCost: bcrypt.MinCost}, nodePW: map[string]string{}}
	th.adminPW, _ = th.creds.Set("admin", false)
	for _, n := range nodes {
		th.nodePW[n], _ = th.creds.Set(n, true)
	}
	th.start()
	t.Cleanup(th.stop)
	return th
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (th *testHub) start() {
	th.t.Helper()
	h, err := hub.New(hub.Config{ClientAddr: th.client, LeafAddr: th.leaf, DataDir: th.dir, Credentials: th.creds,
		Fleet: fleet.Options{Domain: th.domain}})
	if err != nil {
		th.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		th.t.Fatal(err)
	}
	th.h = h
}

func (th *testHub) stop() {
	if th.h != nil {
		th.h.Close()
		th.h = nil
	}
}

func (th *testHub) admin() *fleet.Client {
	th.t.Helper()
	nc, err := nats.Connect("nats://"+th.client, nats.UserInfo("admin", th.adminPW), nats.MaxReconnects(-1), nats.Timeout(30*time.Second),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		th.t.Fatal(err)
	}
	th.t.Cleanup(nc.Close)
	c, err := fleet.NewClient(nc, fleet.Options{Domain: th.domain, Writer: "test"})
	if err != nil {
		th.t.Fatal(err)
	}
	return c
}

func startEdge(t *testing.T, th *testHub, node, dataDir string) *runner.Runner {
	t.Helper()
	return startEdgeLocal(t, th, node, dataDir, "-")
}

// startEdgeLocal starts an edge whose leaf serves local apps on localAddr.
func startEdgeLocal(t *testing.T, th *testHub, node, dataDir, localAddr string) *runner.Runner {
	t.Helper()
	return runnertest.Start(t, runner.Config{DataDir: dataDir, AllowAnonymous: true,
		Node: node, CheckpointInterval: 100 * time.Millisecond, Logger: testLogger(t),
		Link: link.Config{Hub: []string{"nats-leaf://" + th.leaf}, User: node, Password: th.nodePW[node], LocalAddr: localAddr,
			ReconnectInterval: pd(100 * time.Millisecond), HeartbeatInterval: pd(time.Second),
			Fleet: fleet.Options{Domain: th.domain}, Labels: map[string]string{"site": "test"}}})
}

const pipelineYAML = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {mqtt: {topic: "sensors/%s"}}
  steps:
    - filter: "temperature > %d"
  sinks:
    - log: {}
`

func pipelineObj(t *testing.T, name string, threshold int) fleet.Object {
	t.Helper()
	objs, err := fleet.Load(name+".yaml", []byte(fmt.Sprintf(pipelineYAML, name, name, threshold)))
	if err != nil {
		t.Fatal(err)
	}
	return objs[0]
}

func put(t *testing.T, c *fleet.Client, node string, o fleet.Object) fleet.PutResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Put(ctx, o.Envelope(node, "", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// running returns the hash of the pipeline running on r, or "".
func running(r *runner.Runner, id string) string {
	st, ok := r.Engine().Status(id)
	if !ok || st.State != "running" {
		return ""
	}
	return st.Hash
}

func pd(d time.Duration) pipeline.Duration { return pipeline.D(d) }

func TestPlansDownUpdateDeleteAndStatus(t *testing.T) {
	th := newTestHub(t, "edge-1", "edge-2")
	admin := th.admin()
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	e2 := startEdge(t, th, "edge-2", t.TempDir())

	a := pipelineObj(t, "a", 30)
	put(t, admin, "edge-1", a)
	mqtttest.WaitFor(t, "edge-1 runs a", func() bool { return running(e1, "default/a") == a.Hash })
	if running(e2, "default/a") != "" {
		t.Fatal("edge-2 runs a pipeline meant for edge-1")
	}

	// Update: hot swap to the new hash; the status record reports it.
	a2 := pipelineObj(t, "a", 40)
	res := put(t, admin, "edge-1", a2)
	mqtttest.WaitFor(t, "edge-1 runs a v2", func() bool { return running(e1, "default/a") == a2.Hash })
	mqtttest.WaitForErr(t, "edge-1 reports a v2", func() error {
		st, err := admin.Node(context.Background(), "edge-1")
		if err != nil {
			return err
		}
		o, ok := st.Object(fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindPipeline, Namespace: "default", Name: "a"})
		if !ok || o.State != fleet.StateRunning || o.Generation != res.Generation || o.Hash != a2.Hash {
			return fmt.Errorf("status %+v", o)
		}
		if st.Labels["site"] != "test" || st.Capacity.CPUs == 0 {
			return fmt.Errorf("registration %+v", st)
		}
		return nil
	})

	// Delete: edge-1 stops it.
	if err := admin.Delete(context.Background(), fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindPipeline, Namespace: "default", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "edge-1 removes a", func() bool { _, ok := e1.Engine().Status("default/a"); return !ok })
	if l := e1.Link(); l.State != "connected" || l.Node != "edge-1" {
		t.Fatalf("link status %+v", l)
	}
}

func TestLatestVersionWinsAfterOfflineAndAutonomy(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	dir := t.TempDir()
	e1 := startEdge(t, th, "edge-1", dir)
	put(t, admin, "edge-1", pipelineObj(t, "keep", 1))
	put(t, admin, "edge-1", pipelineObj(t, "gone", 1))
	mqtttest.WaitFor(t, "edge-1 runs both", func() bool {
		return running(e1, "default/keep") != "" && running(e1, "default/gone") != ""
	})
	e1.Close()

	// While the edge is away: 200 versions of one pipeline, a delete, a new one.
	var last fleet.Object
	for i := 0; i < 200; i++ {
		last = pipelineObj(t, "keep", 100+i)
		put(t, admin, "edge-1", last)
	}
	admin.Delete(context.Background(), fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindPipeline, Namespace: "default", Name: "gone"})
	fresh := pipelineObj(t, "fresh", 5)
	put(t, admin, "edge-1", fresh)

	e1 = startEdge(t, th, "edge-1", dir)
	mqtttest.WaitFor(t, "edge-1 runs the latest set", func() bool {
		_, goneThere := e1.Engine().Status("default/gone")
		return running(e1, "default/keep") == last.Hash && running(e1, "default/fresh") == fresh.Hash && !goneThere
	})

	// Autonomy: with the hub down, a restarted edge runs its last plans from disk.
	e1.Close()
	th.stop()
	e1 = startEdge(t, th, "edge-1", dir)
	if running(e1, "default/keep") != last.Hash || running(e1, "default/fresh") != fresh.Hash {
		t.Fatalf("after a restart without the hub: keep=%q fresh=%q", running(e1, "default/keep"), running(e1, "default/fresh"))
	}
	if l := e1.Link(); l.State != "disconnected" {
		t.Fatalf("link state %q without a hub", l.State)
	}
	if err := e1.Ready(); err != nil {
		t.Fatalf("not ready while the hub is away (autonomy is normal operation): %v", err)
	}
	// The hub comes back: a new version arrives quickly (the watcher is
	// made again on reconnect instead of waiting 13-17 s).
	th.start()
	admin = th.admin()
	mqtttest.WaitFor(t, "edge-1 reconnects", func() bool { return e1.Link().State == "connected" })
	newer := pipelineObj(t, "keep", 7)
	start := time.Now()
	put(t, admin, "edge-1", newer)
	mqtttest.WaitFor(t, "edge-1 runs the version put after the hub restart", func() bool { return running(e1, "default/keep") == newer.Hash })
	t.Logf("plan delivered %v after the put (hub restarted)", time.Since(start))
}

func TestMalformedPlansAreRefusedAndReported(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	good := pipelineObj(t, "good", 1)
	put(t, admin, "edge-1", good)
	mqtttest.WaitFor(t, "good runs", func() bool { return running(e1, "default/good") == good.Hash })

	kv, err := admin.JetStream().KeyValue(context.Background(), fleet.DefaultPlansBucket)
	if err != nil {
		t.Fatal(err)
	}
	env := good.Envelope("edge-1", "test", time.Now())
	badStep := *env
	badStep.Name = "badstep"
	badStep.Object = json.RawMessage(strings.Replace(string(env.Object), `"filter":`, `"filtre":`, 1))
	badStep.Object = json.RawMessage(strings.Replace(string(badStep.Object), `"name":"good"`, `"name":"badstep"`, 1))
	badStepJSON, _ := json.Marshal(&badStep)
	wrongNode := *env
	wrongNode.Node = "edge-2"
	wrongNodeJSON, _ := json.Marshal(&wrongNode)
	cases := map[string]struct{ val, want string }{
		"edge-1.pipeline.default.garbage": {"this: is: not json", "not an Eddy envelope"},
		"edge-1.pipeline.default.badstep": {string(badStepJSON), "filtre"},
		"edge-1.pipeline.default.good":    {string(wrongNodeJSON), "not for its key"},
	}
	for k, c := range cases {
		if _, err := kv.Put(context.Background(), k, []byte(c.val)); err != nil {
			t.Fatal(err)
		}
	}
	mqtttest.WaitForErr(t, "edge-1 reports every bad value", func() error {
		st, err := admin.Node(context.Background(), "edge-1")
		if err != nil {
			return err
		}
		for k, c := range cases {
			key, _ := fleet.ParseKey(k)
			o, ok := st.Object(key)
			if !ok || o.State != fleet.StateRejected || !strings.Contains(o.Error, c.want) {
				return fmt.Errorf("%s: %+v", k, o)
			}
		}
		return nil
	})
	// The good pipeline was never touched by the bad value under its key.
	if running(e1, "default/good") != good.Hash {
		t.Fatal("a malformed value stopped the pipeline that ran under its key")
	}
	// Fixing the value clears the problem.
	put(t, admin, "edge-1", pipelineObj(t, "good", 2))
	mqtttest.WaitFor(t, "good v2 runs", func() bool { return running(e1, "default/good") == pipelineObj(t, "good", 2).Hash })
}

// TestOutboxLosesNothing forwards records through a hub kill and restart
// and an edge restart: every record arrives once in the hub's stream, in
// order.
func TestOutboxLosesNothing(t *testing.T) {
	th := newTestHub(t, "edge-1")
	dir := t.TempDir()
	e1 := startEdge(t, th, "edge-1", dir)
	mqtttest.WaitFor(t, "edge-1 connects", func() bool { return e1.Link().State == "connected" })
	const perPhase = 3000
	seq := 0
	write := func(r *runner.Runner, n int) {
		for i := 0; i < n; i++ {
			seq++
			rec := &wal.Record{Topic: link.UpTopicPrefix + "test.data", Payload: []byte(strconv.Itoa(seq)), Time: time.Now().UnixNano()}
			// A record nobody forwards, in between.
			other := &wal.Record{Topic: "sensors/x", Payload: []byte("{}"), Time: time.Now().UnixNano()}
			if err := r.Log().AppendWith(context.Background(), wal.Async, rec, other); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(e1, perPhase)
	th.stop() // the hub goes away mid-stream
	write(e1, perPhase)
	e1.Close() // and the edge restarts while it is away
	e1 = startEdge(t, th, "edge-1", dir)
	write(e1, perPhase)
	th.start()
	write(e1, perPhase)
	total := seq

	admin := th.admin()
	js := admin.JetStream()
	mqtttest.WaitForErr(t, "every record in the hub's stream", func() error {
		st, err := js.Stream(context.Background(), fleet.DefaultUpStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(total) {
			return fmt.Errorf("%d of %d stored", info.State.Msgs, total)
		}
		return nil
	})
	cons, err := js.OrderedConsumer(context.Background(), fleet.DefaultUpStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"eddy.up.edge-1.test.data"}})
	if err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= total; want++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("record %d: %v", want, err)
		}
		if got := string(msg.Data()); got != strconv.Itoa(want) {
			t.Fatalf("record %d: got %s (lost or out of order)", want, got)
		}
	}
	st, _ := js.Stream(context.Background(), fleet.DefaultUpStream)
	info, _ := st.Info(context.Background())
	if info.State.Msgs != uint64(total) {
		t.Fatalf("stream holds %d messages, want exactly %d (a duplicate was stored)", info.State.Msgs, total)
	}
	if _, ok := e1.Log().Stats().Consumers[link.ConsumerName]; !ok {
		t.Fatal("the outbox is not a WAL consumer: retention would not wait for it")
	}
	l := e1.Link()
	t.Logf("forwarded %d, duplicates dropped by the hub %d, errors %d, reconnects %d", l.Forwarded, l.Duplicates, l.Errors, l.Reconnects)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

const devicesYAML = `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: sensor-model, namespace: default}
spec:
  properties:
  - {name: temperature, type: INT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sensor-1, namespace: default}
spec:
  deviceModelRef: {name: sensor-model}
  nodeName: edge-1
  protocol: {protocolName: virtual}
  properties:
  - {name: temperature, desired: {value: "%d"}}
`

// TestDevicesDown ships a DeviceModel and a Device: the edge serves the
// twin with the desired value; an update changes it; a device without its
// model is Failed and changes nothing; deleting the device removes the twin.
func TestDevicesDown(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	objs, err := fleet.Load("devices.yaml", []byte(fmt.Sprintf(devicesYAML, 22)))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		put(t, admin, "edge-1", o)
	}
	desired := func() string {
		for _, d := range e1.Devices() {
			if d.ID == "default/sensor-1" {
				if p, ok := d.Twins["temperature"]; ok && p.Expected != nil {
					return strings.Trim(string(p.Expected.Value), `"`)
				}
			}
		}
		return ""
	}
	mqtttest.WaitFor(t, "the twin of sensor-1 with desired 22", func() bool { return desired() == "22" })
	objs2, _ := fleet.Load("devices.yaml", []byte(fmt.Sprintf(devicesYAML, 25)))
	put(t, admin, "edge-1", objs2[1])
	mqtttest.WaitFor(t, "desired 25", func() bool { return desired() == "25" })

	// Deleting the model leaves sensor-1 without one: refused, nothing changes.
	ctx := context.Background()
	modelKey := fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindDeviceModel, Namespace: "default", Name: "sensor-model"}
	if err := admin.Delete(ctx, modelKey); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitForErr(t, "the model delete reported as Failed", func() error {
		st, err := admin.Node(ctx, "edge-1")
		if err != nil {
			return err
		}
		if o, ok := st.Object(modelKey); !ok || o.State != fleet.StateFailed {
			return fmt.Errorf("%+v", o)
		}
		return nil
	})
	if desired() != "25" {
		t.Fatal("a refused device set changed the twins")
	}
	// Deleting the device too makes the set valid (empty): both go.
	if err := admin.Delete(ctx, fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindDevice, Namespace: "default", Name: "sensor-1"}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "sensor-1 removed", func() bool { return len(e1.Devices()) == 0 })
}

// TestCloudSink runs a pipeline with a cloud sink on an edge: its output
// reaches the hub's stream under the node's up prefix.
func TestCloudSink(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	objs, err := fleet.Load("cloud.yaml", []byte(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: up}
spec:
  source: {mqtt: {topic: "sensors/+"}}
  key: device
  steps:
    - filter: "temperature > 30"
  sinks:
    - cloud: {subject: "hot.{{key}}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	put(t, admin, "edge-1", objs[0])
	mqtttest.WaitFor(t, "the pipeline runs", func() bool { return running(e1, "default/up") != "" })
	for i, temp := range []int{20, 35, 40} {
		if err := e1.Broker().Publish("sensors/a", []byte(fmt.Sprintf(`{"device":"d 1","temperature":%d,"i":%d}`, temp, i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	js := admin.JetStream()
	mqtttest.WaitForErr(t, "two readings in the hub's stream", func() error {
		st, err := js.Stream(context.Background(), fleet.DefaultUpStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("eddy.up.edge-1.hot.>"))
		if err != nil {
			return err
		}
		// "d 1" is not a valid subject token: the space becomes "_".
		if n := info.State.Subjects["eddy.up.edge-1.hot.d_1"]; n != 2 {
			return fmt.Errorf("subjects %v", info.State.Subjects)
		}
		return nil
	})
	// A cloud subject with a wildcard does not compile.
	if _, err := fleet.Load("bad.yaml", []byte(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: bad}
spec:
  source: {mqtt: {topic: "x"}}
  sinks:
    - cloud: {subject: "a.>"}
`)); err == nil || !strings.Contains(err.Error(), "cannot contain") {
		t.Fatalf("wildcard subject: %v", err)
	}
}

// TestIsolationThroughTheLeaf acts as a local app on edge-1 (its loopback
// NATS, no credentials): everything it does reaches the hub as edge-1, so
// it can read edge-1's plans but not edge-2's, and publish under edge-1's up
// prefix but not edge-2's.
func TestIsolationThroughTheLeaf(t *testing.T) {
	th := newTestHub(t, "edge-1", "edge-2")
	admin := th.admin()
	local := freeAddr(t)
	e1 := startEdgeLocal(t, th, "edge-1", t.TempDir(), local)
	mqtttest.WaitFor(t, "edge-1 connects", func() bool { return e1.Link().State == "connected" })
	for _, n := range []string{"edge-1", "edge-2"} {
		put(t, admin, n, pipelineObj(t, "p", 1))
	}
	nc, err := nats.Connect("nats://"+local, nats.CustomInboxPrefix(fleet.InboxPrefix("edge-1")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	app, _ := fleet.NewClient(nc, fleet.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	read := func(node string) error {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		w, err := app.WatchPlans(c, node)
		if err != nil {
			return err
		}
		defer w.Stop()
		select {
		case ent := <-w.Updates():
			if ent == nil {
				return fmt.Errorf("no keys")
			}
			return nil
		case <-c.Done():
			return c.Err()
		}
	}
	if err := read("edge-1"); err != nil {
		t.Fatalf("a local app on edge-1 reading edge-1's plans: %v", err)
	}
	if err := read("edge-2"); err == nil {
		t.Fatal("a local app on edge-1 read edge-2's plans")
	}
	// Publishing: edge-1's prefix reaches the stream, edge-2's does not.
	for _, n := range []string{"edge-1", "edge-2"} {
		if err := nc.Publish(fleet.Options{}.UpSubject(n, "spoof"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	js := admin.JetStream()
	mqtttest.WaitForErr(t, "edge-1's message stored", func() error {
		st, err := js.Stream(ctx, fleet.DefaultUpStream)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("eddy.up.>"))
		if err != nil {
			return err
		}
		if info.State.Subjects["eddy.up.edge-1.spoof"] != 1 {
			return fmt.Errorf("subjects %v", info.State.Subjects)
		}
		if n := info.State.Subjects["eddy.up.edge-2.spoof"]; n != 0 {
			t.Fatalf("a local app on edge-1 published under edge-2's prefix (%d stored)", n)
		}
		return nil
	})
}

// TestLargePlanThroughTheLeaf ships a plan value of about 900 KiB through
// the leaf with node permissions (the watcher's flow control must be
// allowed, or it stalls on large values), and a value over the bucket's
// limit is refused by the hub.
func TestLargePlanThroughTheLeaf(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	big := pipelineObj(t, "big", 1)
	var obj map[string]any
	json.Unmarshal(big.JSON, &obj)
	obj["metadata"].(map[string]any)["annotations"] = map[string]any{"blob": strings.Repeat("x", 900<<10)}
	big.JSON, _ = json.Marshal(obj)
	put(t, admin, "edge-1", big)
	mqtttest.WaitFor(t, "edge-1 runs the 900 KiB plan", func() bool { return running(e1, "default/big") == big.Hash })

	kv, err := admin.JetStream().KeyValue(context.Background(), fleet.DefaultPlansBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "edge-1.pipeline.default.huge", make([]byte, fleet.MaxValueSize+1)); err == nil {
		t.Fatal("the hub stored a value over the plans bucket's limit")
	}
}

// TestTLSVerifiedAgainstCA runs the hub with a certificate from `eddy hub
// dev-ca`: an edge with that CA connects over TLS; an edge that trusts
// another CA does not.
func TestTLSVerifiedAgainstCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := hub.WriteDevCA(filepath.Join(dir, "good"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := hub.WriteDevCA(filepath.Join(dir, "other"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	creds := &hub.Credentials{BcryptCost: bcrypt.MinCost}
	pw, _ := creds.Set("edge-1", true)
	h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0", Credentials: creds,
		TLSCertFile: ca.CertFile, TLSKeyFile: ca.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !strings.HasPrefix(h.LeafURL(), "tls://") {
		t.Fatalf("leaf URL %s", h.LeafURL())
	}
	edge := func(caFile string) *runner.Runner {
		return runnertest.Start(t, runner.Config{AllowAnonymous: true, Node: "edge-1",
			Link: link.Config{Hub: []string{h.LeafURL()}, User: "edge-1", Password: pw, CAFile: caFile, LocalAddr: "-",
				ReconnectInterval: pd(100 * time.Millisecond)}})
	}
	good := edge(ca.CAFile)
	mqtttest.WaitFor(t, "the edge with the hub's CA connects", func() bool { return good.Link().State == "connected" })
	bad := edge(other.CAFile)
	time.Sleep(time.Second) // ten reconnect intervals: it must stay out
	if s := bad.Link().State; s != "disconnected" {
		t.Fatalf("an edge trusting another CA is %s", s)
	}
}

// TestWrongPasswordSaysWhy: an edge with a wrong password stays
// disconnected and its log says why.
func TestWrongPasswordSaysWhy(t *testing.T) {
	th := newTestHub(t, "edge-1")
	var logs testtools.Buffer
	r := runnertest.Start(t, runner.Config{AllowAnonymous: true, Node: "edge-1",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Link: link.Config{Hub: []string{"nats-leaf://" + th.leaf}, User: "edge-1", Password: "wrong", LocalAddr: "-",
			ReconnectInterval: pd(100 * time.Millisecond)}})
	mqtttest.WaitFor(t, "a warning about the refused connection", func() bool {
		return strings.Contains(logs.String(), "level=WARN") && strings.Contains(strings.ToLower(logs.String()), "authorization")
	})
	if s := r.Link().State; s != "disconnected" {
		t.Fatalf("state %s with a wrong password", s)
	}
}

// TestRevokeWithoutRestart removes edge-2 from the hub's credentials and
// reloads them: edge-2's leaf connection is closed and stays out, edge-1
// stays connected.
func TestRevokeWithoutRestart(t *testing.T) {
	th := newTestHub(t, "edge-1", "edge-2")
	e1 := startEdge(t, th, "edge-1", t.TempDir())
	e2 := startEdge(t, th, "edge-2", t.TempDir())
	mqtttest.WaitFor(t, "both connected", func() bool {
		return e1.Link().State == "connected" && e2.Link().State == "connected"
	})
	revoked := &hub.Credentials{Admins: th.creds.Admins}
	for _, u := range th.creds.Nodes {
		if u.Name != "edge-2" {
			revoked.Nodes = append(revoked.Nodes, u)
		}
	}
	if err := th.h.Reload(revoked); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "edge-2 cut off", func() bool { return e2.Link().State == "disconnected" })
	time.Sleep(time.Second) // ten reconnect intervals: it must stay out
	if e2.Link().State != "disconnected" || e1.Link().State != "connected" {
		t.Fatalf("after revoking edge-2: edge-1 %s, edge-2 %s", e1.Link().State, e2.Link().State)
	}
}
