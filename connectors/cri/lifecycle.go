package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/protobuf/proto"

	"github.com/eddy-edge/eddy/clock"
)

// LifecycleType is what happened to a container or pod sandbox.
type LifecycleType string

// Lifecycle event types. RuntimeConnected / RuntimeDisconnected are state
// events of the watcher itself: while disconnected, lifecycle events are
// not seen (containerd does not replay them).
const (
	Created             LifecycleType = "created"
	Started             LifecycleType = "started"
	Exited              LifecycleType = "exited"
	OOMKilled           LifecycleType = "oom_killed"
	Deleted             LifecycleType = "deleted"
	RuntimeConnected    LifecycleType = "runtime_connected"
	RuntimeDisconnected LifecycleType = "runtime_disconnected"
)

// Object kinds of a LifecycleEvent.
const (
	KindContainer = "container"
	KindSandbox   = "sandbox"
)

// LifecycleEvent is one container or pod-sandbox lifecycle change, with the
// CRI metadata that names it. Its JSON form is the record of the
// podlifecycle stream.
type LifecycleEvent struct {
	// Type is what happened.
	Type LifecycleType `json:"event"`
	// Kind is container or sandbox (empty for runtime state events).
	Kind string `json:"kind,omitempty"`
	// Time is when the runtime reported it, unix ms.
	Time int64 `json:"time"`
	// ContainerID is the runtime's container id (the sandbox id for a
	// sandbox).
	ContainerID string `json:"container_id,omitempty"`
	// SandboxID is the pod sandbox the container belongs to.
	SandboxID string `json:"sandbox_id,omitempty"`
	// Pod, Namespace and PodUID are the pod's CRI metadata.
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`
	// Container is the container's name in its pod.
	Container string `json:"container,omitempty"`
	// Image is the container's image.
	Image string `json:"image,omitempty"`
	// RestartCount is the container's CRI attempt number (the kubelet
	// increments it on every restart).
	RestartCount uint32 `json:"restart_count"`
	// ExitCode is set on exited events.
	ExitCode *int32 `json:"exit_code,omitempty"`
	// Reason is the runtime's reason on exit (Completed, Error,
	// OOMKilled) or the error of a runtime_disconnected event.
	Reason string `json:"reason,omitempty"`
	// Labels are the container's (or sandbox's) labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Runtime is the endpoint the event came from.
	Runtime string `json:"runtime,omitempty"`
	// Resync marks an event made up after a reconnect from the runtime's
	// container list: the change happened while the watcher was not
	// subscribed, and Time is when the runtime says it happened.
	Resync bool `json:"resync,omitempty"`
}

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// Endpoint is the runtime's socket (containerd serves CRI and its
	// events service on the same one). Default DefaultEndpoint.
	Endpoint string
	// Namespace is the containerd namespace CRI uses. Default k8s.io.
	Namespace string
	// OnEvent receives every event, in order, from one goroutine. It
	// should not block for long: containerd drops a slow subscriber.
	OnEvent func(LifecycleEvent)
	// Logger receives connection problems. Default: discard.
	Logger *slog.Logger
	// Clock stamps the watcher's own state events. Default: the real clock.
	Clock clock.Clock
	// MaxBackoff caps the reconnect delay. Default 5s.
	MaxBackoff time.Duration
}

// Watcher turns containerd's events into LifecycleEvents. containerd 1.6
// does not implement CRI's GetContainerEvents, so the watcher subscribes to
// containerd's own events service and looks up each container's CRI
// metadata (cached until it is deleted).
type Watcher struct {
	opt WatchOptions
	rt  *Runtime
	ev  eventsapi.EventsClient

	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	cache map[string]LifecycleEvent // id -> metadata template
	// last is the last event type emitted per container id (not
	// sandboxes), to resync after a reconnect. Only the loop goroutine
	// uses it.
	last map[string]LifecycleType
}

// NewWatcher prepares a watcher over rt (whose connection it shares).
func NewWatcher(rt *Runtime, opt WatchOptions) *Watcher {
	if opt.Namespace == "" {
		opt.Namespace = "k8s.io"
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	if opt.OnEvent == nil {
		opt.OnEvent = func(LifecycleEvent) {}
	}
	return &Watcher{opt: opt, rt: rt, ev: eventsapi.NewEventsClient(rt.conn), cache: map[string]LifecycleEvent{}, last: map[string]LifecycleType{}}
}

// Start subscribes in the background and keeps re-subscribing (with
// backoff) until Close. The runtime being down is reported as a
// runtime_disconnected event, not an error.
func (w *Watcher) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.done = make(chan struct{})
	go w.loop(ctx)
}

// Close stops the watcher and waits for it.
func (w *Watcher) Close() error {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
	return nil
}

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	backoff := 100 * time.Millisecond
	connected, everConnected := false, false
	lastErr := ""
	for ctx.Err() == nil {
		err := w.subscribe(ctx, func() {
			connected = true
			backoff = 100 * time.Millisecond
			w.emit(LifecycleEvent{Type: RuntimeConnected})
			if everConnected {
				w.resync(ctx)
			}
			everConnected = true
		})
		if ctx.Err() != nil {
			return
		}
		if connected || lastErr == "" {
			w.opt.Logger.Warn("container runtime events: disconnected; retrying", "endpoint", w.rt.endpoint, "err", err)
			w.emit(LifecycleEvent{Type: RuntimeDisconnected, Reason: err.Error()})
		}
		connected, lastErr = false, err.Error()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.opt.MaxBackoff)
	}
}

// subscribe runs one subscription until it fails. ok is called once the
// runtime accepted it.
func (w *Watcher) subscribe(ctx context.Context, ok func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A subscription does not fail until the first receive; ask for the
	// version first so "connected" means connected.
	if _, err := w.rt.Version(sctx); err != nil {
		return err
	}
	stream, err := w.ev.Subscribe(sctx, &eventsapi.SubscribeRequest{Filters: []string{`namespace==` + w.opt.Namespace}})
	if err != nil {
		return w.rt.wrap("events Subscribe", err)
	}
	ok()
	for {
		env, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("events stream ended")
			}
			return w.rt.wrap("events", err)
		}
		if env.Event == nil {
			continue
		}
		ts := time.Now()
		if env.Timestamp != nil {
			ts = env.Timestamp.AsTime()
		}
		w.handle(ctx, env.Topic, env.Event.GetValue(), ts)
	}
}

func (w *Watcher) handle(ctx context.Context, topic string, raw []byte, ts time.Time) {
	var (
		id   string
		typ  LifecycleType
		exit *int32
	)
	switch topic {
	case "/containers/create":
		var m eventtypes.ContainerCreate
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		id, typ = m.ID, Created
	case "/tasks/start":
		var m eventtypes.TaskStart
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		id, typ = m.ContainerID, Started
	case "/tasks/exit":
		var m eventtypes.TaskExit
		if proto.Unmarshal(raw, &m) != nil || (m.ID != "" && m.ID != m.ContainerID) {
			return // an exec'd process, not the container
		}
		code := int32(m.ExitStatus)
		id, typ, exit = m.ContainerID, Exited, &code
		if m.ExitedAt != nil {
			ts = m.ExitedAt.AsTime()
		}
	case "/tasks/oom":
		var m eventtypes.TaskOOM
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		id, typ = m.ContainerID, OOMKilled
	case "/containers/delete":
		var m eventtypes.ContainerDelete
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		id, typ = m.ID, Deleted
	default:
		return
	}
	ev := w.describe(ctx, id, typ)
	ev.Type, ev.Time, ev.ExitCode = typ, ts.UnixMilli(), exit
	if typ == Exited && ev.Kind == KindContainer {
		// CRI knows the reason (OOMKilled, Error, Completed) once it has
		// handled the same exit event; ask briefly.
		ev.Reason = w.exitReason(ctx, id)
	}
	w.emit(ev)
	if typ == Deleted {
		w.mu.Lock()
		delete(w.cache, id)
		w.mu.Unlock()
	}
}

// describe returns the CRI metadata of a container or sandbox id, from the
// cache or the runtime. CRI registers a container in its own store just
// after containerd announces it, so a miss is retried for a moment.
func (w *Watcher) describe(ctx context.Context, id string, typ LifecycleType) LifecycleEvent {
	w.mu.Lock()
	ev, ok := w.cache[id]
	w.mu.Unlock()
	if ok && typ != Started {
		return ev
	}
	for try := 0; ; try++ {
		if d, ok := w.lookup(ctx, id); ok {
			w.mu.Lock()
			w.cache[id] = d
			w.mu.Unlock()
			return d
		}
		if typ == Deleted || try >= 20 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if ok {
		return ev
	}
	return LifecycleEvent{ContainerID: id, Runtime: w.rt.endpoint}
}

func (w *Watcher) lookup(ctx context.Context, id string) (LifecycleEvent, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := w.rt.Container(ctx, id); err == nil {
		ev := LifecycleEvent{Kind: KindContainer, ContainerID: id, Container: c.Name, Image: c.Image,
			RestartCount: c.Attempt, Labels: c.Labels, Runtime: w.rt.endpoint}
		if ref, err := w.rt.ContainerRef(ctx, id); err == nil {
			ev.SandboxID = ref.SandboxID
		}
		if ev.SandboxID != "" {
			if p, err := w.rt.Pod(ctx, ev.SandboxID); err == nil {
				ev.Pod, ev.Namespace, ev.PodUID = p.Name, p.Namespace, p.UID
			}
		}
		return ev, true
	}
	if p, err := w.rt.Pod(ctx, id); err == nil {
		return LifecycleEvent{Kind: KindSandbox, ContainerID: id, SandboxID: id, Pod: p.Name, Namespace: p.Namespace,
			PodUID: p.UID, RestartCount: p.Attempt, Labels: p.Labels, Runtime: w.rt.endpoint}, true
	}
	return LifecycleEvent{}, false
}

func (w *Watcher) exitReason(ctx context.Context, id string) string {
	// Bounded: the reason is worth a short wait, not a stalled stream. It
	// returns as soon as CRI has recorded the exit (milliseconds when idle);
	// 1s was too short on a loaded machine (CI's race run, load 26 on 2
	// cores: the exited event of TestRunAndLifecycle came without a reason).
	for deadline := time.Now().Add(5 * time.Second); ctx.Err() == nil && time.Now().Before(deadline); {
		c, err := w.rt.Container(ctx, id)
		if err != nil {
			return ""
		}
		if c.State == StateExited {
			return c.Reason
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ""
}

// resync makes up the events missed while disconnected (containerd keeps
// no history): containers that exited, started or were deleted meanwhile,
// compared with the last event emitted for each. Events of the new
// subscription may repeat one of them.
func (w *Watcher) resync(ctx context.Context) {
	refs, err := w.rt.Containers(ctx, "", nil)
	if err != nil {
		w.opt.Logger.Warn("container runtime events: listing containers after a reconnect failed; missed events are lost", "err", err)
		return
	}
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		seen[ref.ID] = true
		prev, known := w.last[ref.ID]
		var typ LifecycleType
		switch {
		case ref.State == StateExited && prev != Exited && prev != OOMKilled:
			typ = Exited
		case ref.State == StateRunning && (!known || prev == Created):
			typ = Started
		default:
			continue
		}
		st, err := w.rt.Container(ctx, ref.ID)
		if err != nil {
			continue
		}
		ev := w.describe(ctx, ref.ID, typ)
		ev.Type, ev.Resync = typ, true
		if typ == Exited {
			code := st.ExitCode
			ev.ExitCode, ev.Reason, ev.Time = &code, st.Reason, st.FinishedAt/int64(time.Millisecond)
		} else {
			ev.Time = st.StartedAt / int64(time.Millisecond)
		}
		w.emit(ev)
	}
	for id, prev := range w.last {
		if !seen[id] && prev != Deleted {
			ev := w.describe(ctx, id, Deleted)
			ev.Type, ev.Resync = Deleted, true
			w.emit(ev)
			w.mu.Lock()
			delete(w.cache, id)
			w.mu.Unlock()
		}
	}
}

func (w *Watcher) emit(ev LifecycleEvent) {
	if ev.Time == 0 {
		ev.Time = w.opt.Clock.Now().UnixMilli()
	}
	if ev.Runtime == "" {
		ev.Runtime = w.rt.endpoint
	}
	if ev.Kind == KindContainer {
		if ev.Type == Deleted {
			delete(w.last, ev.ContainerID)
		} else {
			w.last[ev.ContainerID] = ev.Type
		}
	}
	w.opt.OnEvent(ev)
}
