package controller

import (
	"sync"
	"time"
)

// objKey identifies one shipped object across nodes.
type objKey struct {
	Kind      ObjectKind
	Namespace string
	Name      string
}

// tracker keeps what the edges last said, in memory, and remembers which
// objects and nodes changed since the last flush. Feeding it is cheap (a
// map write under a mutex), so a busy fleet's reports never turn into API
// writes directly: the flusher turns the dirty sets into at most one
// reconcile (and so at most one status write) per object per interval.
type tracker struct {
	mu         sync.Mutex
	nodes      map[string]NodeInfo
	reports    map[objKey]map[string]Report
	dirtyObjs  map[objKey]struct{}
	dirtyNodes map[string]struct{}
}

func newTracker() *tracker {
	return &tracker{
		nodes:      map[string]NodeInfo{},
		reports:    map[objKey]map[string]Report{},
		dirtyObjs:  map[objKey]struct{}{},
		dirtyNodes: map[string]struct{}{},
	}
}

// node records a registration or heartbeat.
func (t *tracker) node(n NodeInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, seen := t.nodes[n.Name]
	t.nodes[n.Name] = n
	if !seen || old.Version != n.Version || !sameLabels(old.Labels, n.Labels) {
		t.dirtyNodes[n.Name] = struct{}{}
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// report records a status report. A report also counts as a heartbeat of
// its node.
func (t *tracker) report(r Report) {
	k := objKey{r.Kind, r.Namespace, r.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.reports[k]
	if m == nil {
		m = map[string]Report{}
		t.reports[k] = m
	}
	old, had := m[r.Node]
	m[r.Node] = r
	if !had || old.Version != r.Version || old.Failed != r.Failed {
		t.dirtyNodes[r.Node] = struct{}{} // its pipeline count may change
	}
	t.dirtyObjs[k] = struct{}{}
	if n, ok := t.nodes[r.Node]; ok && r.Time.After(n.Time) {
		n.Time = r.Time
		t.nodes[r.Node] = n
	}
}

// nodeInfo returns the last heartbeat of a node.
func (t *tracker) nodeInfo(name string) (NodeInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nodes[name]
	return n, ok
}

// nodeNames lists every node that ever registered since the start.
func (t *tracker) nodeNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.nodes))
	for n := range t.nodes {
		out = append(out, n)
	}
	return out
}

// reportsFor returns a copy of the per-node reports of one object.
func (t *tracker) reportsFor(k objKey) map[string]Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Report, len(t.reports[k]))
	for n, r := range t.reports[k] {
		out[n] = r
	}
	return out
}

// pipelinesOn counts the Pipeline objects a node reports running.
func (t *tracker) pipelinesOn(node string) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int32
	for k, m := range t.reports {
		if k.Kind != KindPipeline {
			continue
		}
		if r, ok := m[node]; ok && !r.Failed {
			n++
		}
	}
	return n
}

// forgetNode drops what a node reported for one object (the object left
// the node).
func (t *tracker) forgetNode(k objKey, node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.reports[k], node)
}

// forget drops everything about a deleted object.
func (t *tracker) forget(k objKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.reports, k)
	delete(t.dirtyObjs, k)
}

// takeDirty returns and clears the objects and nodes changed since the
// last call.
func (t *tracker) takeDirty() ([]objKey, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	objs := make([]objKey, 0, len(t.dirtyObjs))
	for k := range t.dirtyObjs {
		objs = append(objs, k)
	}
	nodes := make([]string, 0, len(t.dirtyNodes))
	for n := range t.dirtyNodes {
		nodes = append(nodes, n)
	}
	t.dirtyObjs = map[objKey]struct{}{}
	t.dirtyNodes = map[string]struct{}{}
	return objs, nodes
}

// ready says whether a node's last heartbeat is within notReadyAfter of now.
func ready(n NodeInfo, ok bool, now time.Time, notReadyAfter time.Duration) bool {
	return ok && now.Sub(n.Time) < notReadyAfter
}
