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
	any bool
}

// has reports whether a subscription matches topic, asking lookup on a
// miss.
func (c *subCache) has(topic string, lookup func(topic string) bool) bool {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[topic]
	c.mu.RUnlock()
	if ok && e.gen == g {
		return e.any
	}
	any := lookup(topic)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= subCacheMax {
		c.m = make(map[string]subCacheEntry)
	}
	c.m[topic] = subCacheEntry{gen: g, any: any}
	c.mu.Unlock()
	return any
}

// invalidate forgets every answer; call it after any subscription change.
func (c *subCache) invalidate() { c.gen.Add(1) }

// hasSubscribers reports whether publishing to topic would reach any
// subscriber, network or inline.
func (b *Broker) hasSubscribers(topic string) bool {
	return b.subs.has(topic, func(topic string) bool {
		s := b.srv.Topics.Subscribers(topic)
		return len(s.Subscriptions) > 0 || len(s.Shared) > 0 || len(s.InlineSubscriptions) > 0
	})
}
