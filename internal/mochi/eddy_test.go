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
