package broker

import "sync"

// subCacheMax bounds the topics subCache remembers. Devices usually publish
// to one topic each, so a few thousand devices fit; past the bound the
// cache starts over (a miss costs one subscriber lookup).
const subCacheMax = 4096

// subCache remembers, per topic name, what the broker derives from the
// topic's subscribers: whether any subscription (network, shared or inline)
// matches it, so that a publish nobody subscribes to skips mochi's fan-out,
// and whether a subscriber may be served from the log (which decides
// whether sink output is logged). mochi's own lookup is cached in the fork
// (internal/mochi, TopicsIndex.Subscribers); the second answer walks every
// subscriber's subscriptions, so it is kept here.
//
// Entries follow the topic index's generation (TopicsIndex.Generation),
// which every subscribe and unsubscribe (network or inline) bumps after
// changing the index and before mochi answers the client. An entry is used
// only while its generation is current, and a lookup reads the generation
// before it asks mochi, so an answer computed while a subscription was
// being added is never kept past that subscription's SUBACK: a publish
// that starts after a client got its SUBACK is delivered to it, which is
// all MQTT promises.
type subCache struct {
	gen func() uint64 // the topic index's generation
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
	g := c.gen()
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
