// Package modbustest runs connectors/modbus's simulated slave over TCP for
// the length of a test: started on a free port, its address returned once
// it listens, stopped and waited for when the test ends. Only tests import
// it. (connectors/modbus's own in-package tests cannot: that would be an
// import cycle.)
package modbustest

import (
	"context"
	"testing"

	"github.com/eddy-edge/eddy/connectors/modbus"
)

// Serve runs a simulated Modbus TCP slave with opts until the test ends and
// returns the address it listens on. An empty opts.TCPAddr is a free port
// on 127.0.0.1; opts.Ready, when set, is called as well. A slave that stops
// before it listens fails the test with its error.
func Serve(t testing.TB, opts modbus.SlaveOptions) string {
	t.Helper()
	if opts.TCPAddr == "" {
		opts.TCPAddr = "127.0.0.1:0"
	}
	addrc := make(chan string, 1)
	ready := opts.Ready
	opts.Ready = func(addr string) {
		if ready != nil {
			ready(addr)
		}
		addrc <- addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- modbus.Serve(ctx, opts) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		t.Fatalf("modbus slave on %s stopped before it listened: %v", opts.TCPAddr, err)
		return ""
	}
}
