package cri_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/internal/containerdtest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// recorder collects lifecycle events.
type recorder struct {
	mu  sync.Mutex
	evs []cri.LifecycleEvent
}

func (r *recorder) add(ev cri.LifecycleEvent) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

// find returns the first event of typ for the container (or sandbox) id.
func (r *recorder) find(id string, typ cri.LifecycleType) (cri.LifecycleEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.ContainerID == id && ev.Type == typ {
			return ev, true
		}
	}
	return cri.LifecycleEvent{}, false
}

func (r *recorder) count(typ cri.LifecycleType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// watch starts a watcher of rt that records every event, closed with the
// test, and waits until it is connected.
func watch(t *testing.T, rt *cri.Runtime, opts cri.WatchOptions) *recorder {
	t.Helper()
	rec := &recorder{}
	opts.OnEvent = rec.add
	w := cri.NewWatcher(rt, opts)
	w.Start(context.Background())
	t.Cleanup(func() { w.Close() })
	mqtttest.WaitFor(t, "watcher connected", func() bool { return rec.count(cri.RuntimeConnected) == 1 })
	return rec
}

func TestRunAndLifecycle(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	rec := watch(t, rt, cri.WatchOptions{})
	ctx := context.Background()

	logDir := t.TempDir()
	l, err := rt.Run(ctx, cri.RunSpec{Name: "crash", UID: "u1", Image: containerdtest.Busybox, HostNetwork: true,
		Command: []string{"sh", "-c", "echo hello $WHO; exit 3"}, Env: []cri.EnvVar{{Name: "WHO", Value: "eddy"}},
		Labels: map[string]string{"app": "test"}, LogDir: logDir, CPUMillis: 200, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, ctd.Log())
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := rt.Wait(wctx, l.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 3 || st.Reason != "Error" {
		t.Fatalf("exit %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
	log, _ := os.ReadFile(l.LogPath)
	if !strings.Contains(string(log), "hello eddy") {
		t.Fatalf("log %q lacks the output", log)
	}
	mqtttest.WaitFor(t, "exited event", func() bool { _, ok := rec.find(l.ContainerID, cri.Exited); return ok })
	for _, typ := range []cri.LifecycleType{cri.Created, cri.Started} {
		if _, ok := rec.find(l.ContainerID, typ); !ok {
			t.Errorf("no %s event for the container", typ)
		}
	}
	ex, _ := rec.find(l.ContainerID, cri.Exited)
	if ex.ExitCode == nil || *ex.ExitCode != 3 || ex.Pod != "crash" || ex.Namespace != "eddy-actions" || ex.Container != "crash" ||
		ex.Image == "" || ex.Labels["app"] != "test" || ex.Kind != cri.KindContainer || ex.Reason != "Error" {
		t.Errorf("exited event %+v", ex)
	}
	if _, ok := rec.find(l.SandboxID, cri.Started); !ok {
		t.Errorf("no started event for the sandbox")
	}
	if err := rt.RemovePod(ctx, l.SandboxID); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "deleted event", func() bool { ev, ok := rec.find(l.ContainerID, cri.Deleted); return ok && ev.Pod == "crash" })
}

func TestOOMKilled(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	rec := watch(t, rt, cri.WatchOptions{})
	ctx := context.Background()
	l, err := rt.Run(ctx, cri.RunSpec{Name: "hog", UID: "u2", Image: containerdtest.Busybox, HostNetwork: true,
		Command: []string{"sh", "-c", `x=0123456789; while :; do x=$x$x; done`}, MemoryBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "exited event", func() bool { _, ok := rec.find(l.ContainerID, cri.Exited); return ok })
	ex, _ := rec.find(l.ContainerID, cri.Exited)
	if _, ok := rec.find(l.ContainerID, cri.OOMKilled); !ok || ex.Reason != "OOMKilled" || *ex.ExitCode != 137 {
		t.Fatalf("want an oom_killed event and exit 137 OOMKilled, got %+v (oom event %v)", ex, ok)
	}
}

func TestMissingImage(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	_, err := rt.Run(context.Background(), cri.RunSpec{Name: "x", UID: "u", Image: "localhost/nope:1", HostNetwork: true})
	if err == nil || !strings.Contains(err.Error(), "ctr -n k8s.io images import") {
		t.Fatalf("err = %v", err)
	}
}

func TestRuntimeDown(t *testing.T) {
	rt, err := cri.Dial("/nonexistent/c.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = rt.Version(ctx)
	if !cri.IsUnavailable(err) || !strings.Contains(err.Error(), "is containerd running") {
		t.Fatalf("err = %v", err)
	}
	rec := &recorder{}
	w := cri.NewWatcher(rt, cri.WatchOptions{OnEvent: rec.add})
	w.Start(ctx)
	mqtttest.WaitFor(t, "disconnected event", func() bool { return rec.count(cri.RuntimeDisconnected) == 1 })
	w.Close()
}

// TestWatcherReconnects: containerd killed and started again is a
// disconnected and a connected event, and events flow again after.
func TestWatcherReconnects(t *testing.T) {
	ctd := containerdtest.Start(t)
	rt := ctd.Runtime(t)
	rec := watch(t, rt, cri.WatchOptions{MaxBackoff: 200 * time.Millisecond})
	ctx := context.Background()
	// A container that exits while containerd is down: its shim keeps it
	// and the watcher makes up the missed exit after the reconnect.
	during, err := rt.Run(ctx, cri.RunSpec{Name: "during", UID: "during", Image: containerdtest.Busybox, HostNetwork: true,
		Command: []string{"sh", "-c", "sleep 1; exit 4"}})
	if err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "the started event", func() bool { _, ok := rec.find(during.ContainerID, cri.Started); return ok })
	ctd.Kill()
	mqtttest.WaitFor(t, "the disconnected event", func() bool { return rec.count(cri.RuntimeDisconnected) == 1 })
	time.Sleep(1500 * time.Millisecond) // the container exits meanwhile
	ctd.Restart()
	mqtttest.WaitFor(t, "connected again", func() bool { return rec.count(cri.RuntimeConnected) == 2 })
	mqtttest.WaitFor(t, "the missed exit", func() bool { _, ok := rec.find(during.ContainerID, cri.Exited); return ok })
	if ex, _ := rec.find(during.ContainerID, cri.Exited); !ex.Resync || ex.ExitCode == nil || *ex.ExitCode != 4 || ex.Pod != "during" {
		t.Fatalf("resynced exit %+v", ex)
	}
	l, err := rt.Run(ctx, cri.RunSpec{Name: "after", UID: "after", Image: containerdtest.Busybox, HostNetwork: true, Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "the exit after the reconnect", func() bool { _, ok := rec.find(l.ContainerID, cri.Exited); return ok })
	if n := rec.count(cri.RuntimeDisconnected); n != 1 {
		t.Errorf("%d disconnected events, want 1 (one per outage)", n)
	}
}
