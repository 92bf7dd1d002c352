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
	twins      map[objKey]map[string]TwinReport // device -> property -> latest
	states     map[objKey]reportedState         // device -> connection state (devicestate.go)
	dirtyObjs  map[objKey]struct{}
	dirtyNodes map[string]struct{}
	// notReadyAfter is the silence after which a node is NotReady: a
	// heartbeat after such a silence marks the node dirty, so it turns
	// Ready at once instead of at its next periodic refresh.
	notReadyAfter time.Duration
}

func newTracker() *tracker {
	return &tracker{
		nodes:      map[string]NodeInfo{},
		reports:    map[objKey]map[string]Report{},
		twins:      map[objKey]map[string]TwinReport{},
		dirtyObjs:  map[objKey]struct{}{},
		dirtyNodes: map[string]struct{}{},
	}
}

// NodeRecord takes one status record of a node: its heartbeat and the full
// set of objects it holds.
func (t *tracker) NodeRecord(n NodeInfo, reps []Report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, seen := t.nodes[n.Name]
	t.nodes[n.Name] = n
	if !seen || old.Version != n.Version || !sameLabels(old.Labels, n.Labels) ||
		(t.notReadyAfter > 0 && n.Time.Sub(old.Time) >= t.notReadyAfter) {
		t.dirtyNodes[n.Name] = struct{}{}
	}
	held := make(map[objKey]bool, len(reps))
	for _, r := range reps {
		k := objKey{r.Kind, r.Namespace, r.Name}
		held[k] = true
		m := t.reports[k]
		if m == nil {
			m = map[string]Report{}
			t.reports[k] = m
		}
		prev, had := m[n.Name]
		m[n.Name] = r
		if !had || prev.Version != r.Version || prev.Failed != r.Failed {
			t.dirtyNodes[n.Name] = struct{}{} // its pipeline count may change
		}
		if !had || !sameReport(prev, r) {
			t.dirtyObjs[k] = struct{}{}
		}
	}
	t.nodeDevices(n)
	// Objects the node no longer holds.
	for k, m := range t.reports {
		if _, ok := m[n.Name]; ok && !held[k] {
			delete(m, n.Name)
			t.dirtyObjs[k] = struct{}{}
			t.dirtyNodes[n.Name] = struct{}{}
		}
	}
}

// DeviceTwin records a reported twin value (newest wins).
func (t *tracker) DeviceTwin(r TwinReport) {
	k := objKey{KindDevice, r.Namespace, r.Name}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.twins[k]
	if m == nil {
		m = map[string]TwinReport{}
		t.twins[k] = m
	}
	if old, ok := m[r.Property]; ok && old.Time.After(r.Time) {
		return
	}
	m[r.Property] = r
	t.dirtyObjs[k] = struct{}{}
}

// twinsOf returns a copy of a device's latest reported values.
func (t *tracker) twinsOf(k objKey) map[string]TwinReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]TwinReport, len(t.twins[k]))
	for p, r := range t.twins[k] {
		out[p] = r
	}
	return out
}

// sameReport compares two reports, ignoring their time.
func sameReport(a, b Report) bool {
	return a.Node == b.Node && a.Kind == b.Kind && a.Namespace == b.Namespace && a.Name == b.Name &&
		a.Version == b.Version && a.Failed == b.Failed && a.Error == b.Error &&
		a.MessagesIn == b.MessagesIn && a.MessagesOut == b.MessagesOut && a.Errors == b.Errors &&
		a.AlertsFiring == b.AlertsFiring
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
	delete(t.twins, k)
	delete(t.states, k)
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
