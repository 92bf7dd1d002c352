package mqtt

// eddy: tests of batched deliveries (batch.go).

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mochi/packets"
	"github.com/eddy-edge/eddy/internal/mochi/system"
	"github.com/stretchr/testify/require"
)

// tryConn records what is written to it. TryWrite takes at most take
// bytes per call (all when take < 0).
type tryConn struct {
	net.Conn // addresses
	mu       sync.Mutex
	got      bytes.Buffer
	take     int
	tries    int
}

func (c *tryConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.Write(p)
}

func (c *tryConn) TryWrite(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries++
	n := len(p)
	if c.take >= 0 && n > c.take {
		n = c.take
	}
	return c.got.Write(p[:n])
}

func (c *tryConn) written() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.String()
}

// newBatchTestServer returns a server with an inline client and a
// subscriber to out/# writing to a tryConn, without a write loop.
func newBatchTestServer(t *testing.T, take int) (*Server, *Client, *tryConn) {
	t.Helper()
	s := newServerWithInlineClient()
	require.NoError(t, s.Serve())
	t.Cleanup(func() { _ = s.Close() })
	r, w := net.Pipe()
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	conn := &tryConn{Conn: w, take: take}
	cl := newClient(conn, &ops{
		info:  new(system.Info),
		hooks: new(Hooks),
		log:   logger,
		options: &Options{Capabilities: &Capabilities{
			ReceiveMaximum: 10, MaximumInflight: 5, TopicAliasMaximum: 10000,
			MaximumClientWritesPending: 3, maximumPacketID: 10,
		}},
	})
	cl.ID = "sub"
	cl.Properties.ProtocolVersion = 4
	s.Clients.Add(cl)
	require.True(t, s.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "out/#"}))
	return s, cl, conn
}

// requireInOrder fails unless each of want occurs in got, in that order.
func requireInOrder(t *testing.T, got string, want ...string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		require.GreaterOrEqual(t, i, 0, "%q missing or out of order in %q", w, got)
		rest = rest[i+len(w):]
	}
}

// Batched deliveries wait in the subscriber's buffer, not its queue,
// until the batch is flushed; then they leave in one write, in order.
func TestPublishBatchedWaitsForFlush(t *testing.T) {
	s, cl, conn := newBatchTestServer(t, -1)
	var b packets.Batch
	for i := range 3 {
		require.NoError(t, s.PublishBatched("out/x", []byte(fmt.Sprintf("m%d", i)), false, 0, &b))
	}
	require.Empty(t, conn.written(), "nothing leaves before Flush")
	require.Zero(t, cl.PendingWrites(), "batched deliveries are not queued")
	require.Equal(t, 1, b.Len(), "one subscriber holds deliveries")
	b.Flush()
	requireInOrder(t, conn.written(), "m0", "m1", "m2")
	require.Equal(t, 1, conn.tries, "one write for the batch")
	require.Zero(t, b.Len())
	require.Equal(t, int64(3), cl.ops.info.MessagesSent, "counted as sent")
}

// A delivery behind queued packets, or while the write loop holds the
// buffer, goes through the queue: batching never reorders a client's
// packets.
func TestPublishBatchedQueuesBehindQueued(t *testing.T) {
	s, cl, conn := newBatchTestServer(t, -1)
	var b packets.Batch
	require.NoError(t, s.Publish("out/x", []byte("queued"), false, 0))
	require.NoError(t, s.PublishBatched("out/x", []byte("after"), false, 0, &b))
	require.Equal(t, 2, cl.PendingWrites())
	require.Zero(t, b.Len())

	go cl.WriteLoop()
	require.Eventually(t, func() bool { return strings.Contains(conn.written(), "after") }, 10*time.Second, time.Millisecond)
	requireInOrder(t, conn.written(), "queued", "after")
}

func TestPublishBatchedQueuesWhileBufferBusy(t *testing.T) {
	s, cl, conn := newBatchTestServer(t, -1)
	var b packets.Batch
	cl.Lock() // as the write loop does while it writes
	require.NoError(t, s.PublishBatched("out/x", []byte("busy"), false, 0, &b))
	require.Equal(t, 1, cl.PendingWrites())
	require.Zero(t, b.Len())
	cl.Unlock()
	go cl.WriteLoop()
	require.Eventually(t, func() bool { return strings.Contains(conn.written(), "busy") }, 10*time.Second, time.Millisecond)
}

// What the socket does not take at once is left to the write loop, which
// writes the rest in order; Flush itself never waits for it.
func TestFlushBatchedLeavesRestToWriteLoop(t *testing.T) {
	s, cl, conn := newBatchTestServer(t, 5)
	var b packets.Batch
	for i := range 3 {
		require.NoError(t, s.PublishBatched("out/x", []byte(fmt.Sprintf("m%d", i)), false, 0, &b))
	}
	b.Flush()
	require.Len(t, conn.written(), 5, "the socket took 5 bytes")
	require.Len(t, cl.State.flushReq, 1, "the write loop is asked for the rest")

	go cl.WriteLoop()
	require.Eventually(t, func() bool { return strings.Contains(conn.written(), "m2") }, 10*time.Second, time.Millisecond)
	requireInOrder(t, conn.written(), "m0", "m1", "m2")

	// The buffer is the write loop's again once empty: a later batch goes
	// out the same way.
	require.NoError(t, s.PublishBatched("out/x", []byte("m3"), false, 0, &b))
	b.Flush()
	require.Eventually(t, func() bool { return strings.Contains(conn.written(), "m3") }, 10*time.Second, time.Millisecond)
}

// A subscriber whose socket takes nothing holds at most maxBatched bytes
// of batched deliveries; further ones go to its queue, under its bound
// (here 3), and the rest are dropped and counted as for any full queue.
func TestPublishBatchedIsBounded(t *testing.T) {
	s, cl, _ := newBatchTestServer(t, 0)
	var b packets.Batch
	payload := bytes.Repeat([]byte("x"), 1024)
	const n = maxBatched/1024 + 10
	for range n {
		err := s.PublishBatched("out/x", payload, false, 0, &b)
		_ = err // publishToSubscribers does not report a subscriber's full queue
		b.Flush()
	}
	require.LessOrEqual(t, cl.Net.outbuf.Len(), maxBatched)
	require.Equal(t, 3, cl.PendingWrites())
	require.Positive(t, s.Info.MessagesDropped)
}

func TestBatchAddDedups(t *testing.T) {
	var b packets.Batch
	clients := make([]*Client, 40)
	for i := range clients {
		clients[i] = &Client{ID: fmt.Sprint(i)}
	}
	for range 3 {
		for _, c := range clients {
			b.Add(c)
		}
	}
	require.Equal(t, len(clients), b.Len())
}
