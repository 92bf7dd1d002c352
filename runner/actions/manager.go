// Package actions carries out the container actions of pipelines on an edge
// node and records the node's container lifecycle as a stream.
//
// An action sink (pipeline.ActionSink) turns a triggering event — usually an
// alert notification — into an episode: it runs a container (or stops or
// restarts existing ones) through the node's CRI runtime at most once per
// episode, even across a crash of the runner. The order that makes this
// hold:
//
//  1. The decision is checked against the edge policy (Config); a refusal
//     is recorded as a refused event and nothing is run.
//  2. The intent, with the fully rendered container spec, is appended
//     durably to the WAL on the actions stream before the runtime is asked
//     for anything.
//  3. The pod sandbox gets a name and UID derived from the action and the
//     episode, and labels carrying them; the runtime itself refuses a
//     second sandbox with the same name, so even a retried start cannot
//     run twice.
//  4. Results (started, exited with code, timed out, replaced, failed) are
//     appended to the same stream; the pod is removed only after its
//     result is durable.
//
// On start-up the Manager reads the actions stream back from the WAL: every
// episode that has a record is never acted on again (a pipeline replaying
// from its checkpoint triggers it again and is ignored), and every intent
// without a result is reconciled with what the runtime reports under its
// labels: adopted if the pod exists, carried out if the runtime never saw
// it (and the intent is recent), reported failed otherwise.
//
// The package owns the policy, the episode index, the goroutines that wait
// for containers, action metrics and the recent-actions list. The wire to
// the runtime is connectors/cri.
package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

// Labels Eddy puts on the pods and containers it starts.
const (
	LabelManaged = "eddy.dev/managed"
	LabelAction  = "eddy.dev/action"
	LabelEpisode = "eddy.dev/episode"
	LabelAlertID = "eddy.dev/alert-id"
	LabelNode    = "eddy.dev/node"
)

// PodNamespace is the CRI namespace of the pods actions start.
const PodNamespace = "eddy-actions"

// maxEpisodes bounds the episode index; the oldest finished episodes are
// forgotten first (a replay reaching that far back would be older than
// any checkpoint).
const maxEpisodes = 100_000

// recentLen is how many records Recent keeps.
const recentLen = 200

// Options configures a Manager.
type Options struct {
	// Config is the edge policy and runtime settings.
	Config Config
	// Log is the runner's WAL: intents, results and lifecycle events are
	// appended to it, and read back on Start.
	Log wal.Log
	// Node is this edge node's name, put on records and labels.
	Node string
	// DataDir holds container output (DataDir/logs). Empty: a temporary
	// directory removed on Close.
	DataDir string
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Clock stamps records and measures latency. Default: the real clock.
	Clock clock.Clock
}

// Manager runs actions and the lifecycle stream. Start it before the
// engine applies pipelines with action sinks.
type Manager struct {
	opt     Options
	cfg     Config
	log     *slog.Logger
	rt      *cri.Runtime
	watcher *cri.Watcher
	logDir  string
	tmpDir  bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	episodes map[string]State // action \x00 episode -> last state
	order    []string         // episode keys, oldest first
	active   map[string]map[string]*run
	running  int
	stats    map[string]*Stats
	recent   []Record
	runtime  string // runtime state: connected / disconnected / ""
	lat      latencies
}

// run is one container action in progress.
type run struct {
	rec    Record
	ctx    context.Context // cancelled with errReplaced or errClosing
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var (
	errReplaced = errors.New("replaced by a newer trigger (concurrency: replace)")
	errClosing  = errors.New("runner shutting down")
)

// New prepares a manager; nothing talks to the runtime until Start.
func New(opt Options) (*Manager, error) {
	if opt.Log == nil {
		return nil, errors.New("actions: a log is required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	m := &Manager{opt: opt, cfg: opt.Config.withDefaults(), log: opt.Logger,
		episodes: map[string]State{}, active: map[string]map[string]*run{}, stats: map[string]*Stats{}}
	if opt.DataDir != "" {
		m.logDir = filepath.Join(opt.DataDir, "logs")
	} else {
		d, err := os.MkdirTemp("", "eddy-actions-")
		if err != nil {
			return nil, err
		}
		m.logDir, m.tmpDir = d, true
	}
	rt, err := cri.Dial(m.cfg.Runtime)
	if err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	m.rt = rt
	return m, nil
}

// Start reads the actions stream back from the log, reconciles unfinished
// intents with the runtime and starts the lifecycle watcher. The runtime
// being down is not an error: reconciliation then waits for it in the
// background (each intent retries for StartRetry).
func (m *Manager) Start(ctx context.Context) error {
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	pending, err := m.replay(ctx)
	if err != nil {
		return fmt.Errorf("actions: reading the actions stream back from the log: %w", err)
	}
	for _, rec := range pending {
		m.wg.Add(1)
		go m.reconcile(rec)
	}
	if m.hasFinished() {
		// Only finished episodes can have pods left to remove; without
		// any (no action ever ran here) nothing dials the runtime, so an
		// edge without actions runs no gRPC client retrying every second.
		m.wg.Add(1)
		go m.sweep()
	}
	if m.lifecycleOn() {
		m.watcher = cri.NewWatcher(m.rt, cri.WatchOptions{OnEvent: m.onLifecycle, Logger: m.log, Clock: m.opt.Clock})
		m.watcher.Start(m.ctx)
	}
	return nil
}

// hasFinished reports whether the log holds a finished episode.
func (m *Manager) hasFinished() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.episodes {
		if st.Terminal() {
			return true
		}
	}
	return false
}

// lifecycleOn: explicitly configured, or by default when the runtime's
// socket exists.
func (m *Manager) lifecycleOn() bool {
	if m.cfg.Lifecycle != nil {
		return *m.cfg.Lifecycle
	}
	_, err := os.Stat(cri.SocketPath(m.cfg.Runtime))
	return err == nil
}

// Close stops waiting for containers (they keep running; a restarted
// runner adopts them) and the lifecycle watcher.
func (m *Manager) Close() error {
	if m.cancel != nil {
		m.mu.Lock()
		for _, runs := range m.active {
			for _, r := range runs {
				r.cancel(errClosing)
			}
		}
		m.mu.Unlock()
		m.cancel()
		if m.watcher != nil {
			m.watcher.Close()
		}
		m.wg.Wait()
	}
	if m.tmpDir {
		os.RemoveAll(m.logDir)
	}
	return m.rt.Close()
}

// Runtime returns the CRI client.
func (m *Manager) Runtime() *cri.Runtime { return m.rt }

// RuntimeState is connected or disconnected once the lifecycle watcher has
// tried, "" before or without it.
func (m *Manager) RuntimeState() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runtime
}

func (m *Manager) onLifecycle(ev cri.LifecycleEvent) {
	switch ev.Type {
	case cri.RuntimeConnected, cri.RuntimeDisconnected:
		m.mu.Lock()
		m.runtime = strings.TrimPrefix(string(ev.Type), "runtime_")
		m.mu.Unlock()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	rec := &wal.Record{Time: ev.Time * int64(time.Millisecond), Topic: LifecycleTopic, Payload: b, Client: "$eddy"}
	if err := m.opt.Log.AppendWith(m.ctx, wal.Buffered, rec); err != nil && m.ctx.Err() == nil {
		m.log.Warn("podlifecycle: appending to the log failed; event lost", "type", ev.Type, "container", ev.ContainerID, "err", err)
	}
}

// replay reads the actions stream from the log and returns the intents
// that have no result yet.
func (m *Manager) replay(ctx context.Context) ([]Record, error) {
	pending := map[string]Record{}
	var keys []string
	last := m.opt.Log.Last()
	from := m.opt.Log.First()
	buf := make([]wal.Record, 512)
	for from <= last && last > 0 {
		n, err := m.opt.Log.Read(ctx, from, buf)
		var gap *wal.GapError
		if errors.As(err, &gap) {
			from = gap.First
			continue
		}
		if err != nil {
			return nil, err
		}
		for i := range buf[:n] {
			r := &buf[i]
			if r.Offset > last {
				break
			}
			if r.Topic != Topic {
				continue
			}
			var rec Record
			if err := json.Unmarshal(r.Payload, &rec); err != nil {
				m.log.Warn("actions: unreadable record in the log, ignored", "offset", r.Offset, "err", err)
				continue
			}
			key := rec.Action + "\x00" + rec.Episode
			if _, seen := m.episodes[key]; !seen {
				m.order = append(m.order, key)
			}
			m.episodes[key] = rec.State
			m.addRecent(rec)
			switch {
			case rec.State == Intent:
				if _, ok := pending[key]; !ok {
					keys = append(keys, key)
				}
				pending[key] = rec
			case rec.State == Started:
				if p, ok := pending[key]; ok {
					p.SandboxID, p.ContainerID = rec.SandboxID, rec.ContainerID
					pending[key] = p
				}
			case rec.State.Terminal():
				delete(pending, key)
			}
		}
		from = buf[n-1].Offset + 1
	}
	out := make([]Record, 0, len(pending))
	for _, k := range keys {
		if p, ok := pending[k]; ok {
			out = append(out, p)
		}
	}
	m.trim()
	return out, nil
}

// sweep removes the pods of finished episodes that are still in the
// runtime (a removal that failed, or the runner stopped between recording
// a result and removing the pod).
func (m *Manager) sweep() {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.StartRetry.Duration)
	defer cancel()
	var pods []cri.Pod
	for {
		var err error
		pods, err = m.rt.Pods(ctx, map[string]string{LabelManaged: "true", LabelNode: labelValue(m.opt.Node)})
		if err == nil {
			break
		}
		if !cri.IsUnavailable(err) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	m.mu.Lock()
	finished := map[string]bool{}
	for key, st := range m.episodes {
		if st.Terminal() {
			action, episode, _ := strings.Cut(key, "\x00")
			finished[episodeUID(action, episode)] = true
		}
	}
	m.mu.Unlock()
	for _, p := range pods {
		if uid := p.Labels[LabelEpisode]; finished[uid] {
			m.log.Info("action: removing the pod of a finished episode", "pod", p.Name)
			m.removePod(p.ID, uid)
		}
	}
}

// episodeUID is the stable identity of one episode of one action.
func episodeUID(action, episode string) string {
	h := sha256.Sum256([]byte(action + "\x00" + episode))
	return hex.EncodeToString(h[:16])
}

// podName is a DNS label: eddy-<sink>-<uid prefix>.
func podName(sink, uid string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(sink) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return "eddy-" + name + "-" + uid[:10]
}

// append records rec on the actions stream; durable for intents and
// terminal states, buffered for started.
func (m *Manager) append(ctx context.Context, rec *Record) error {
	rec.Node = m.opt.Node
	if rec.Time == 0 {
		rec.Time = m.opt.Clock.Now().UnixMilli()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	d := wal.Durable
	if rec.State == Started {
		d = wal.Buffered
	}
	return m.opt.Log.AppendWith(ctx, d, &wal.Record{Topic: Topic, Payload: b, Client: "$eddy"})
}

// note updates the index, stats and recent list for rec. m.mu held.
func (m *Manager) note(rec Record) {
	key := rec.Action + "\x00" + rec.Episode
	if _, seen := m.episodes[key]; !seen {
		m.order = append(m.order, key)
	}
	m.episodes[key] = rec.State
	m.addRecent(rec)
	st := m.statsOf(rec.Action)
	switch rec.State {
	case Started:
		st.Started++
		m.lat.add(rec.LatencyMs)
		st.lat.add(rec.LatencyMs)
	case Exited:
		if rec.ExitCode != nil && *rec.ExitCode == 0 {
			st.Succeeded++
		} else {
			st.Failed++
		}
	case TimedOut:
		st.TimedOut++
	case Replaced:
		st.Replaced++
	case Done:
		st.Succeeded++
	case Refused:
		st.Refused++
	case Skipped:
		st.Skipped++
	case Failed:
		st.Failed++
	}
	m.trim()
}

func (m *Manager) addRecent(rec Record) {
	rec.Run = nil
	if len(m.recent) >= recentLen {
		copy(m.recent, m.recent[1:])
		m.recent = m.recent[:recentLen-1]
	}
	m.recent = append(m.recent, rec)
}

// trim forgets the oldest finished episodes beyond maxEpisodes.
func (m *Manager) trim() {
	for len(m.order) > maxEpisodes {
		k := m.order[0]
		if !m.episodes[k].Terminal() {
			break
		}
		delete(m.episodes, k)
		m.order = m.order[1:]
	}
}

// Recent returns the latest action records (intents included), oldest
// first.
func (m *Manager) Recent() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.recent...)
}

// Stats are one action's counters.
type Stats struct {
	// Action is the action's id (pipeline/sink).
	Action string `json:"action"`
	// Triggered counts events that matched the trigger.
	Triggered uint64 `json:"triggered"`
	// Deduplicated counts triggers of an episode already acted on.
	Deduplicated uint64 `json:"deduplicated"`
	// Started, Succeeded (exit 0 or done), Failed (non-zero exit or
	// error), TimedOut, Replaced, Refused, Skipped count outcomes.
	Started   uint64 `json:"started"`
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	TimedOut  uint64 `json:"timed_out"`
	Replaced  uint64 `json:"replaced"`
	Refused   uint64 `json:"refused"`
	Skipped   uint64 `json:"skipped"`
	// Running is the number of containers of this action running now.
	Running int `json:"running"`
	// LatencyP50Ms and LatencyP99Ms are trigger-to-started latencies over
	// the last 1024 starts.
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	lat          latencies
}

func (m *Manager) statsOf(action string) *Stats {
	st, ok := m.stats[action]
	if !ok {
		st = &Stats{Action: action}
		m.stats[action] = st
	}
	return st
}

// Stats returns every action's counters, sorted by action.
func (m *Manager) Stats() []Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Stats, 0, len(m.stats))
	for id, st := range m.stats {
		s := *st
		s.lat = latencies{}
		s.Running = len(m.active[id])
		s.LatencyP50Ms, s.LatencyP99Ms = st.lat.quantile(0.5), st.lat.quantile(0.99)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Action < out[j].Action })
	return out
}

// Latency returns the node's trigger-to-started latency quantiles over the
// last 1024 starts, in ms.
func (m *Manager) Latency() (p50, p99 float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lat.quantile(0.5), m.lat.quantile(0.99)
}

// latencies is a ring of the last 1024 samples.
type latencies struct {
	buf  []float64
	next int
}

func (l *latencies) add(v float64) {
	if len(l.buf) < 1024 {
		l.buf = append(l.buf, v)
		return
	}
	l.buf[l.next] = v
	l.next = (l.next + 1) % len(l.buf)
}

func (l *latencies) quantile(q float64) float64 {
	if len(l.buf) == 0 {
		return 0
	}
	s := append([]float64(nil), l.buf...)
	sort.Float64s(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// Triggers that already have a record: is the episode known?
func (m *Manager) seen(key string) bool {
	_, ok := m.episodes[key]
	return ok
}

// eventFields pulls the alert fields of a triggering event.
func eventFields(ev *pipeline.Event) (alertID, state string) {
	if v, ok := ev.Fields["alert_id"].(string); ok {
		alertID = v
	}
	if v, ok := ev.Fields["state"].(string); ok {
		state = v
	}
	return
}
