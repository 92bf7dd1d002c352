package controller

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// memStore is an in-memory PlanStore: the fleet's contract without NATS,
// used where a test is about the Kubernetes side only.
type memStore struct {
	mu    sync.Mutex
	plans map[string]map[objKey]Object // node -> object
	puts  int
}

func newMemStore() *memStore { return &memStore{plans: map[string]map[objKey]Object{}} }

func (s *memStore) Put(_ context.Context, node string, o Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.plans[node]
	if m == nil {
		m = map[objKey]Object{}
		s.plans[node] = m
	}
	m[objKey{o.Kind, o.Namespace, o.Name}] = o
	s.puts++
	return nil
}

func (s *memStore) Delete(_ context.Context, node string, k ObjectKind, ns, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.plans[node], objKey{k, ns, name})
	return nil
}

func (s *memStore) Holders(_ context.Context, k ObjectKind, ns, name string) ([]ObjectRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ObjectRef
	for node, m := range s.plans {
		if o, ok := m[objKey{k, ns, name}]; ok {
			out = append(out, ObjectRef{Node: node, Kind: k, Namespace: ns, Name: name, Version: o.Version, Hash: o.Hash})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// get returns what node holds for one object.
func (s *memStore) get(node string, k ObjectKind, ns, name string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.plans[node][objKey{k, ns, name}]
	return o, ok
}

func (s *memStore) objects(node string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, o := range s.plans[node] {
		out = append(out, o)
	}
	return out
}

func (s *memStore) putCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// memFeed is a Feed the test pushes into.
type memFeed struct {
	nodes   chan NodeInfo
	reports chan Report
}

func newMemFeed() *memFeed {
	return &memFeed{nodes: make(chan NodeInfo, 1024), reports: make(chan Report, 1024)}
}

func (f *memFeed) Run(ctx context.Context, node func(NodeInfo), report func(Report)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-f.nodes:
			node(n)
		case r := <-f.reports:
			report(r)
		}
	}
}

// simEdge plays one edge runner: it heartbeats and reports every object in
// its plans as running (or failed, per fail) with counters.
func simEdge(ctx context.Context, s *memStore, f *memFeed, name string, labels map[string]string, fail func(Object) string) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var in int64
	for {
		f.nodes <- NodeInfo{Name: name, Labels: labels, Version: "test", Time: time.Now()}
		for _, o := range s.objects(name) {
			in += 10
			r := Report{Node: name, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Version: o.Version,
				MessagesIn: in, MessagesOut: in / 2, AlertsFiring: 1, Time: time.Now()}
			if fail != nil {
				if msg := fail(o); msg != "" {
					r.Failed, r.Error = true, msg
				}
			}
			f.reports <- r
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
