// Package runnertest starts an Eddy runner in the test's own process (the
// embedded broker, WAL and engine, no eddy binary) and talks to its broker
// with Debian's mosquitto clients. It is for the runner's external tests,
// the link's and the examples'. Only tests import it; the runner package's
// in-package tests cannot (import cycle).
package runnertest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/broker"
)

// Start builds and starts a runner with cfg and closes it when the test
// ends. An empty MQTTAddr is a free port on 127.0.0.1 and an empty HTTPAddr
// is no HTTP listener ("-"), so a test never takes a fixed port. Everything
// else is cfg's, the logger included (nil: the runner's default).
func Start(t testing.TB, cfg runner.Config) *runner.Runner {
	t.Helper()
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "-"
	}
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// BrokerPort returns the port of r's MQTT listener, as the mosquitto
// helpers of mqtttest take it.
func BrokerPort(r *runner.Runner) string {
	_, port, _ := net.SplitHostPort(r.Broker().Addr().String())
	return port
}

// Subscribed reports whether r's broker lists the client id as connected
// with exactly the subscriptions topics (in any order): what a test waits
// for before it publishes to a subscriber it started.
func Subscribed(r *runner.Runner, id string, topics ...string) func() bool {
	want := slices.Sorted(slices.Values(topics))
	return func() bool {
		return slices.ContainsFunc(r.Broker().Clients(), func(c broker.ClientInfo) bool {
			return c.ID == id && c.Connected && slices.Equal(slices.Sorted(slices.Values(c.Subscriptions)), want)
		})
	}
}

var subSeq atomic.Int64

// Subscribe starts mosquitto_sub on r's broker with opts (a client id is
// chosen when opts.ID is empty) and returns once r's broker lists that
// client with exactly opts.Topics.
func Subscribe(t testing.TB, r *runner.Runner, opts mqtttest.SubOptions) *mqtttest.Sub {
	t.Helper()
	if opts.ID == "" {
		opts.ID = fmt.Sprintf("runnertest-sub-%d", subSeq.Add(1))
	}
	opts.Ready = Subscribed(r, opts.ID, opts.Topics...)
	return mqtttest.StartSub(t, BrokerPort(r), opts)
}
