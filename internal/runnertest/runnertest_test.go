package runnertest

import (
	"log/slog"
	"testing"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner"
)

// Subscribe returns only once the broker holds exactly the subscriber's
// filters, and Subscribed tells a different client or set apart.
func TestSubscribe(t *testing.T) {
	mqtttest.RequireClients(t)
	r := Start(t, runner.Config{AllowAnonymous: true, Logger: slog.New(slog.DiscardHandler)})
	sub := Subscribe(t, r, mqtttest.SubOptions{Topics: []string{"b/#", "a/+"}, ID: "s1", QoS: 1})
	if !Subscribed(r, "s1", "a/+", "b/#")() {
		t.Fatal("Subscribe returned before the broker listed both filters")
	}
	for _, c := range []struct {
		id     string
		topics []string
	}{{"s1", []string{"a/+"}}, {"s1", []string{"a/+", "b/#", "c"}}, {"s2", []string{"a/+", "b/#"}}} {
		if Subscribed(r, c.id, c.topics...)() {
			t.Errorf("Subscribed(%s, %v) is true; the broker holds s1 with [a/+ b/#]", c.id, c.topics)
		}
	}
	mqtttest.Pub(t, BrokerPort(r), "a/x", 1, "hello")
	if got := sub.Next(); got != "a/x hello" {
		t.Fatalf("subscriber got %q", got)
	}
}
