package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
)

// watchers is above nats-server's default of 1,000 consumers per stream
// (server.JSDefaultMaxConsumersPerStream): every edge's plan watch is one
// consumer of the plans bucket's stream.
const watchers = 1100

// TestMoreThanAThousandEdges connects more plan watchers than nats-server
// allows per stream by default, to `eddy hub` and to a plain nats-server
// with its default limits that only fleet.Client.Setup has prepared (any
// production NATS system), and checks that every watcher was created and
// that the last one still receives its plans.
func TestMoreThanAThousandEdges(t *testing.T) {
	if server.JSDefaultMaxConsumersPerStream >= watchers {
		t.Fatalf("nats-server's default consumer limit is now %d: raise watchers above it", server.JSDefaultMaxConsumersPerStream)
	}
	t.Run("eddy hub", func(t *testing.T) {
		h, err := hub.New(hub.Config{ClientAddr: "127.0.0.1:0", LeafAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		manyWatchers(t, h.ClientURL())
	})
	t.Run("nats-server defaults + Setup", func(t *testing.T) {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
			JetStreamDomain: fleet.DefaultDomain, StoreDir: t.TempDir(), NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		defer srv.Shutdown()
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		c, _ := fleet.NewClient(nc, fleet.Options{})
		if err := c.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		s, err := c.JetStream().Stream(context.Background(), "KV_"+fleet.DefaultPlansBucket)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxConsumers; got != fleet.DefaultMaxPlanWatchers {
			t.Fatalf("plans stream MaxConsumers = %d after Setup, want %d", got, fleet.DefaultMaxPlanWatchers)
		}
		// Setup again (eddy fleet apply calls it every time) keeps it.
		if err := c.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		manyWatchers(t, srv.ClientURL())
	})
}

// manyWatchers opens `watchers` plan watchers (one per simulated node,
// over a few shared connections, as the scale benchmark does), then puts
// a plan for the last node and waits for it.
func manyWatchers(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const conns = 4
	clients := make([]*fleet.Client, conns)
	for i := range clients {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		clients[i], _ = fleet.NewClient(nc, fleet.Options{})
	}
	ws := make([]jetstream.KeyWatcher, watchers)
	errs := make([]error, watchers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ws[i], errs[i] = clients[i%conns].WatchPlans(ctx, nodeName(i))
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed == 0 {
				t.Errorf("watcher %d of %d (node %s): %v", i+1, watchers, nodeName(i), err)
			}
			failed++
			continue
		}
		defer ws[i].Stop()
	}
	if failed > 0 {
		t.Fatalf("%d of %d plan watchers could not be created", failed, watchers)
	}
	// Every watcher has its initial (empty) set: the nil marker.
	for i, w := range ws {
		select {
		case e := <-w.Updates():
			if e != nil {
				t.Fatalf("node %s: unexpected initial value %s", nodeName(i), e.Key())
			}
		case <-ctx.Done():
			t.Fatalf("node %s: no initial marker", nodeName(i))
		}
	}
	last := nodeName(watchers - 1)
	env := &fleet.Envelope{Kind: fleet.KindPipeline, Namespace: "default", Name: "p", Node: last, Hash: "h1",
		Object: []byte(`{"apiVersion":"eddy.dev/v1alpha1","kind":"Pipeline"}`)}
	if _, err := clients[0].Put(ctx, env); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ws[watchers-1].Updates():
		if e == nil || e.Key() != env.Key().String() {
			t.Fatalf("node %s got %v, want its plan %s", last, e, env.Key())
		}
	case <-ctx.Done():
		t.Fatalf("node %s: its plan did not arrive", last)
	}
}

func nodeName(i int) string { return fmt.Sprintf("edge-%04d", i) }
