package link_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline/rules"
	"github.com/eddy-edge/eddy/runner"
)

func putRoute(t *testing.T, c *fleet.Client, node string, r rules.Route) {
	t.Helper()
	b, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, &fleet.Envelope{Format: fleet.EnvelopeFormat, Kind: fleet.KindRule, Namespace: r.Namespace, Name: r.Name,
		Node: node, Hash: fleet.ObjectHash(b), Object: b, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func waitRule(t *testing.T, c *fleet.Client, node, name string, want fleet.ObjectState) {
	t.Helper()
	mqtttest.WaitForErr(t, fmt.Sprintf("%s reports rule %s %s", node, name, want), func() error {
		st, err := c.Node(context.Background(), node)
		if err != nil {
			return err
		}
		o, ok := st.Object(fleet.ObjectKey{Node: node, Kind: fleet.KindRule, Namespace: "default", Name: name})
		if want == "" {
			if ok {
				return fmt.Errorf("still holds it: %+v", o)
			}
			return nil
		}
		if !ok || o.State != want {
			return fmt.Errorf("status %+v", o)
		}
		return nil
	})
}

// request sends a router request as the controller does and waits for the
// reply.
func request(t *testing.T, nc *nats.Conn, node, rule string, hdr map[string]string, body string) *nats.Msg {
	t.Helper()
	inbox := fleet.NodeReplyPrefix(node) + ".test." + strconv.FormatInt(time.Now().UnixNano(), 10)
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m := nats.NewMsg(fleet.DownSubject(node, "default", rule))
	m.Reply, m.Data = inbox, []byte(body)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	reply, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no reply from %s for rule %s: %v", node, rule, err)
	}
	return reply
}

func mqttPort(r *runner.Runner) string {
	return strconv.Itoa(r.Broker().Addr().(*net.TCPAddr).Port)
}

// TestRoutes: routes arrive as plans; the edge publishes a router request
// on the rule's topic, calls its servicebus service (refusing dot
// segments), and forwards what apps publish on an eventbus->rest topic
// through the outbox, including while the hub is away and across a
// restart of the edge; a deleted rule routes nothing.
func TestRoutes(t *testing.T) {
	th := newTestHub(t, "edge-1")
	admin := th.admin()
	dir := t.TempDir()
	e1 := startEdge(t, th, "edge-1", dir)

	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}))
	defer svc.Close()
	port := svc.Listener.Addr().(*net.TCPAddr).Port

	putRoute(t, admin, "edge-1", rules.Route{Namespace: "default", Name: "down", Pair: rules.RestToEventBus, Path: "/a", Topic: "cloud/cmd"})
	putRoute(t, admin, "edge-1", rules.Route{Namespace: "default", Name: "svc", Pair: rules.RestToServiceBus, Path: "/s", ServicePort: port, ServicePath: "/b"})
	putRoute(t, admin, "edge-1", rules.Route{Namespace: "default", Name: "up", Pair: rules.EventBusToRest, Topic: "default/telemetry/#", URL: "http://cloud/x", NodeName: "edge-1"})
	for _, n := range []string{"down", "svc", "up"} {
		waitRule(t, admin, "edge-1", n, fleet.StateApplied)
	}
	nc := admin.Conn()

	// rest->eventbus.
	sub := mqtttest.StartSub(t, mqttPort(e1), mqtttest.SubOptions{Topics: []string{"cloud/cmd", "probe/ctl"}, ProbeTopic: "probe/ctl"})
	if r := request(t, nc, "edge-1", "down", nil, "hello"); r.Header.Get(fleet.HeaderStatus) != "200" {
		t.Fatalf("publish: %v", r.Header)
	}
	if got := sub.Next(); got != "cloud/cmd hello" {
		t.Fatalf("on the edge: %q", got)
	}
	// rest->servicebus, with a dot segment refused.
	r := request(t, nc, "edge-1", "svc", map[string]string{fleet.HeaderMethod: "PUT", fleet.HeaderPath: "/x/", fleet.HeaderQuery: "q=1"}, "ping")
	if st, body := r.Header.Get(fleet.HeaderStatus), string(r.Data); st != "202" || body != "PUT /b/x/?q=1 ping" || r.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("servicebus: %s %q %v", st, body, r.Header)
	}
	if r := request(t, nc, "edge-1", "svc", map[string]string{fleet.HeaderPath: "/../admin"}, ""); r.Header.Get(fleet.HeaderStatus) != "400" {
		t.Fatalf("dot segment: %v %q", r.Header, r.Data)
	}
	if r := request(t, nc, "edge-1", "nope", nil, ""); r.Header.Get(fleet.HeaderStatus) != "404" || r.Header.Get(fleet.HeaderError) == "" {
		t.Fatalf("unknown rule: %v", r.Header)
	}

	// eventbus->rest: online, while the hub is away, and after the edge
	// restarted without it (the route comes from the applied set on disk).
	port1 := mqttPort(e1)
	mqtttest.Pub(t, port1, "default/telemetry/a", 1, "m1")
	mqtttest.Pub(t, port1, "default/other", 1, "not-routed")
	th.stop()
	mqtttest.WaitFor(t, "edge-1 sees the hub gone", func() bool { return e1.Link().State == "disconnected" })
	mqtttest.Pub(t, port1, "default/telemetry/b", 1, "m2")
	e1.Close()
	e1 = startEdge(t, th, "edge-1", dir)
	mqtttest.Pub(t, mqttPort(e1), "default/telemetry", 1, "m3")
	th.start()
	admin = th.admin()
	js := admin.JetStream()
	cons, err := js.OrderedConsumer(context.Background(), fleet.DefaultUpStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"eddy.up.edge-1." + fleet.RulesSubject}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"m1", "m2", "m3"} {
		msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(msg.Data()) != want || msg.Headers().Get(fleet.HeaderRules) != "default/up" {
			t.Fatalf("message %d: %q rules %q, want %q for default/up", i, msg.Data(), msg.Headers().Get(fleet.HeaderRules), want)
		}
	}
	if msg, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
		t.Fatalf("an unrouted topic was forwarded: %q", msg.Data())
	}

	// Deleting the rule stops the forwarding.
	if err := admin.Delete(context.Background(), fleet.ObjectKey{Node: "edge-1", Kind: fleet.KindRule, Namespace: "default", Name: "up"}); err != nil {
		t.Fatal(err)
	}
	waitRule(t, admin, "edge-1", "up", "")
	mqtttest.Pub(t, mqttPort(e1), "default/telemetry", 1, "after-delete")
	if msg, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
		t.Fatalf("a deleted rule still forwards: %q", msg.Data())
	}
}
