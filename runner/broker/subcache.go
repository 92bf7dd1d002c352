package broker

import (
	"sync"
	"sync/atomic"
)

// subCacheMax bounds the topics subCache remembers. Devices usually publish
// to one topic each, so a few thousand devices fit; past the bound the
// cache starts over (a miss costs one subscriber lookup).
const subCacheMax = 4096

// subCache remembers, per topic name, whether any subscription (network,
// shared or inline) matches it, so that a publish nobody subscribes to
// skips mochi's fan-out. mochi's TopicsIndex.Subscribers builds four maps
// and copies every matching particle's subscription map on each call; on
// an edge node most publishes are device readings that only pipelines read
// (from the log), and the lookup was the largest allocation left on that
// path.
//
// Every subscription change bumps a generation (the hook's OnSubscribed
// and OnUnsubscribed, which mochi calls after changing its index and
// before it answers the client; inline subscriptions too). An entry is used
// only while its generation is current, and a lookup reads the generation
// before it asks mochi, so an answer computed while a subscription was
// being added is never kept past that subscription's SUBACK: a publish
// that starts after a client got its SUBACK is delivered to it, which is
// all MQTT promises.
type subCache struct {
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]subCacheEntry
}

type subCacheEntry struct {
	gen uint64
	subs
}

// subs is what the cache knows about a topic's subscribers.
type subs struct {
	any bool // some subscription matches (network, shared or inline)
	// mayLag: some network subscriber of the topic holds a QoS 1/2
	// subscription (to any topic), so it may be served from the log when
	// it falls behind (slow.go).
	mayLag bool
}

// get returns what is known about topic's subscribers, asking lookup on a
// miss.
func (c *subCache) get(topic string, lookup func(topic string) subs) subs {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[topic]
	c.mu.RUnlock()
	if ok && e.gen == g {
		return e.subs
	}
	s := lookup(topic)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= subCacheMax {
		c.m = make(map[string]subCacheEntry)
	}
	c.m[topic] = subCacheEntry{gen: g, subs: s}
	c.mu.Unlock()
	return s
}

// invalidate forgets every answer; call it after any subscription change.
func (c *subCache) invalidate() { c.gen.Add(1) }

// hasSubscribers reports whether publishing to topic would reach any
// subscriber, network or inline.
func (b *Broker) hasSubscribers(topic string) bool { return b.topicSubs(topic).any }

// topicSubs returns what the cache knows about topic's subscribers.
func (b *Broker) topicSubs(topic string) subs {
	return b.subs.get(topic, b.lookupSubs)
}

func (b *Broker) lookupSubs(topic string) subs {
	found := b.srv.Topics.Subscribers(topic)
	s := subs{any: len(found.Subscriptions) > 0 || len(found.Shared) > 0 || len(found.InlineSubscriptions) > 0}
	qos := func(id string) bool {
		cl, ok := b.srv.Clients.Get(id)
		if !ok || cl.Net.Inline {
			return false
		}
		for _, sub := range cl.State.Subscriptions.GetAll() {
			if sub.Qos > 0 {
				return true
			}
		}
		return false
	}
	for id := range found.Subscriptions {
		if qos(id) {
			s.mayLag = true
			return s
		}
	}
	for _, group := range found.Shared {
		for id := range group {
			if qos(id) {
				s.mayLag = true
				return s
			}
		}
	}
	return s
}
