package mqtt

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mochi/packets"
	"github.com/stretchr/testify/require"
)

// eddy: Subscribers answers are cached per topic; every change to the index
// must be seen by the next lookup.
func TestSubscribersCacheFollowsChanges(t *testing.T) {
	x := NewTopicsIndex()
	topic := "factory/line1/temp"
	require.Empty(t, x.Subscribers(topic).Subscriptions)
	require.Empty(t, x.Subscribers(topic).Subscriptions) // answered from the cache

	x.Subscribe("a", packets.Subscription{Filter: "factory/+/temp", Qos: 1})
	subs := x.Subscribers(topic)
	require.Contains(t, subs.Subscriptions, "a")
	require.Same(t, subs, x.Subscribers(topic), "a second lookup without a change is cached")

	x.Subscribe("a", packets.Subscription{Filter: "factory/+/temp", Qos: 0})
	require.Equal(t, byte(0), x.Subscribers(topic).Subscriptions["a"].Qos, "a changed subscription")

	x.InlineSubscribe(InlineSubscription{Subscription: packets.Subscription{Filter: "factory/#", Identifier: 7}})
	require.Contains(t, x.Subscribers(topic).InlineSubscriptions, 7)
	x.InlineUnsubscribe(7, "factory/#")
	require.Empty(t, x.Subscribers(topic).InlineSubscriptions)

	x.Unsubscribe("factory/+/temp", "a")
	require.Empty(t, x.Subscribers(topic).Subscriptions)
}

// Answers with shared subscriptions are modified by publishToSubscribers
// (it selects one member per group): they are never shared between callers.
func TestSubscribersSharedNotCached(t *testing.T) {
	x := NewTopicsIndex()
	x.Subscribe("a", packets.Subscription{Filter: SharePrefix + "/g/t"})
	x.Subscribe("b", packets.Subscription{Filter: SharePrefix + "/g/t"})
	s1, s2 := x.Subscribers("t"), x.Subscribers("t")
	require.Len(t, s1.Shared[SharePrefix+"/g/t"], 2)
	require.NotSame(t, s1, s2)
}

// The cache stays bounded however many topic names are published to.
func TestSubscribersCacheBounded(t *testing.T) {
	x := NewTopicsIndex()
	x.Subscribe("a", packets.Subscription{Filter: "#"})
	for i := 0; i < 3*subscribersCacheMax; i++ {
		require.Contains(t, x.Subscribers(fmt.Sprintf("d/%d", i)).Subscriptions, "a")
	}
	require.LessOrEqual(t, len(x.cache.m), subscribersCacheMax)
}

// A lookup racing a subscribe never keeps the stale answer past the
// subscribe: once Subscribe returned, every lookup sees the subscriber.
func TestSubscribersCacheRace(t *testing.T) {
	x := NewTopicsIndex()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					x.Subscribers("a/b")
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		id := fmt.Sprint(i)
		x.Subscribe(id, packets.Subscription{Filter: "a/+"})
		require.Contains(t, x.Subscribers("a/b").Subscriptions, id, "after subscribe %d", i)
		x.Unsubscribe("a/+", id)
		require.NotContains(t, x.Subscribers("a/b").Subscriptions, id, "after unsubscribe %d", i)
	}
	close(stop)
	wg.Wait()
}

// eddy: the keepalive deadline is moved only when less than 1.5 keepalives
// remain, and a silent client is still cut off after 1.5 keepalives plus
// at most the slack.
func TestRefreshDeadlineThrottled(t *testing.T) {
	cl, r, w := newTestClient()
	defer r.Close()
	defer w.Close()

	cl.refreshDeadline(2) // 3 s + 0.75 s slack
	first := cl.Net.deadline
	require.WithinDuration(t, time.Now().Add(3750*time.Millisecond), first, 100*time.Millisecond)
	cl.refreshDeadline(2)
	require.Equal(t, first, cl.Net.deadline, "not moved while 1.5 keepalives remain")

	cl.refreshDeadline(1) // 1 s: 3.75 s remain, more than 1 s
	require.Equal(t, first, cl.Net.deadline)

	cl.Net.deadline = time.Now().Add(500 * time.Millisecond) // as if the slack were used up
	cl.refreshDeadline(1)
	require.WithinDuration(t, time.Now().Add(1250*time.Millisecond), cl.Net.deadline, 100*time.Millisecond)

	start := time.Now()
	_, err := cl.Net.Conn.Read(make([]byte, 1))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	require.GreaterOrEqual(t, time.Since(start), time.Second, "never before 1.5 keepalives (1 s)")

	cl.refreshDeadline(0)
	require.True(t, cl.Net.deadline.IsZero())
	require.True(t, cl.Net.noDeadline)
}

// eddy: network subscribers share one copy of a payload. An inline
// publisher keeps its slice (it may reuse it once Publish returns), so its
// payload is copied once; a network packet's payload is its own buffer and
// is not copied at all.
func TestPublishSharesPayloadCopies(t *testing.T) {
	s := newServer()
	cl1, _, _ := newQueueOnlyTestClient()
	cl1.ID = "cl1"
	cl2, _, _ := newQueueOnlyTestClient()
	cl2.ID = "cl2"
	s.Clients.Add(cl1)
	s.Clients.Add(cl2)
	require.True(t, s.Topics.Subscribe(cl1.ID, packets.Subscription{Filter: "a/#"}))
	require.True(t, s.Topics.Subscribe(cl2.ID, packets.Subscription{Filter: "a/#"}))
	publish := func(origin string, payload []byte, frozen ...bool) (*packets.Packet, *packets.Packet) {
		s.publishToSubscribers(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName: "a/b", Payload: payload, Origin: origin, Mods: packets.Mods{FrozenPayload: len(frozen) > 0}})
		return <-cl1.State.outbound, <-cl2.State.outbound
	}

	inline := []byte("hello")
	q1, q2 := publish(InlineClientId, inline)
	copy(inline, "XXXXX") // the publisher reuses its buffer
	require.Equal(t, "hello", string(q1.Payload))
	require.Equal(t, "hello", string(q2.Payload))
	require.Same(t, &q1.Payload[0], &q2.Payload[0], "one copy for both subscribers")

	network := []byte("world")
	q1, q2 = publish("device-1", network)
	require.Same(t, &network[0], &q1.Payload[0], "a network packet's payload is not copied")
	require.Same(t, &network[0], &q2.Payload[0])

	frozen := []byte("still")
	q1, q2 = publish(InlineClientId, frozen, true) // PublishFrozen
	require.Same(t, &frozen[0], &q1.Payload[0], "a frozen inline payload is not copied")
	require.Same(t, &frozen[0], &q2.Payload[0])
}

// TestPublishFrozen: the inline PublishFrozen reaches subscribers like
// Publish, with the payload shared.
func TestPublishFrozen(t *testing.T) {
	s := newServerWithInlineClient()
	require.NoError(t, s.Serve())
	defer s.Close()
	cl, _, _ := newQueueOnlyTestClient()
	cl.ID = "sub"
	s.Clients.Add(cl)
	require.True(t, s.Topics.Subscribe(cl.ID, packets.Subscription{Filter: "out/#"}))
	payload := []byte("frozen")
	require.NoError(t, s.PublishFrozen("out/x", payload, false, 0))
	q := <-cl.State.outbound
	require.Equal(t, "out/x", q.TopicName)
	require.Same(t, &payload[0], &q.Payload[0])
	require.NoError(t, s.Publish("out/y", payload, false, 0))
	q = <-cl.State.outbound
	require.NotSame(t, &payload[0], &q.Payload[0], "Publish copies")
}
