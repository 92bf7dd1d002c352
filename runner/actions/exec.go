package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/pipeline"
)

// A pod removal that fails is retried removeAttempts times in all, waiting
// removeBackoff, then twice as long each time (about 8 s in all), while
// the manager runs; what is left then is removed when the runner starts
// next (Manager.sweep).
const (
	removeAttempts = 6
	removeBackoff  = 250 * time.Millisecond
)

// stopGrace is how long a stopped container gets between SIGTERM and
// SIGKILL (timeout, replace, stop actions).
const stopGrace = 2 * time.Second

// execute carries out one run action: start (or, when reconciling after a
// restart, adopt) the container, wait for it, record the result, remove
// the pod.
func (m *Manager) execute(r *run, replaced []*run, reconciling bool) {
	defer m.wg.Done()
	sandbox, uid := m.runOnce(r, replaced, reconciling)
	// The run is over once its result is durable: a forbid trigger after
	// this point may start, while the pod is still being removed.
	m.endRun(r)
	if sandbox != "" {
		m.removePod(sandbox, uid)
	}
}

// runOnce does the work of execute; it returns the pod to remove ("" to
// keep it).
func (m *Manager) runOnce(r *run, replaced []*run, reconciling bool) (removeSandbox, uid string) {
	for _, o := range replaced {
		select {
		case <-o.done:
		case <-r.ctx.Done():
		}
	}
	rec := r.rec
	rec.Run = nil
	uid = episodeUID(rec.Action, rec.Episode)
	var (
		l         cri.Launched
		startedAt time.Time
		found     bool
		err       error
	)
	if reconciling {
		l, startedAt, found, err = m.adopt(r.ctx, uid)
		if err == nil && !found {
			age := m.opt.Clock.Now().Sub(time.Unix(0, r.rec.TriggeredAt))
			if age > m.cfg.StaleIntent.Duration {
				m.result(rec, Failed, fmt.Sprintf("the runner stopped after recording the intent and before the runtime saw it, %v ago (more than actions.staleIntent %v): not started late", age.Round(time.Second), m.cfg.StaleIntent.Duration))
				return "", uid
			}
		}
		if err != nil && context.Cause(r.ctx) == errClosing {
			return "", uid
		}
	}
	if !found {
		l, err = m.start(r.ctx, r.rec.Run, rec, uid)
		if err != nil {
			if errors.Is(context.Cause(r.ctx), errClosing) {
				return "", uid
			}
			m.result(rec, Failed, err.Error())
			return l.SandboxID, uid
		}
		startedAt = m.opt.Clock.Now()
		rec.SandboxID, rec.ContainerID = l.SandboxID, l.ContainerID
		st := rec
		st.State = Started
		st.LatencyMs = float64(startedAt.UnixNano()-r.rec.TriggeredAt) / 1e6
		m.record(st)
	}
	if found && r.rec.ContainerID == "" {
		// Adopted, and the runner stopped before it recorded the start:
		// record it now, so the stream has every start.
		st := rec
		st.State, st.SandboxID, st.ContainerID = Started, l.SandboxID, l.ContainerID
		st.LatencyMs = float64(startedAt.UnixNano()-r.rec.TriggeredAt) / 1e6
		m.record(st)
	}
	rec.SandboxID, rec.ContainerID = l.SandboxID, l.ContainerID

	timeout := time.Duration(r.rec.TimeoutMs) * time.Millisecond
	deadline := startedAt.Add(timeout)
	wctx, cancel := context.WithDeadline(r.ctx, deadline)
	final, err := m.wait(wctx, l.ContainerID)
	// A CRI call cut short by the deadline may return its own
	// DeadlineExceeded before wctx's timer has fired (on a loaded machine
	// the run was recorded as failed, not timed out): past the deadline,
	// an error is the timeout.
	timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded) || (err != nil && !time.Now().Before(deadline))
	cancel()
	state := Exited
	msg := ""
	switch cause := context.Cause(r.ctx); {
	case err == nil:
	case errors.Is(cause, errClosing):
		return "", uid // the pod stays; the next start adopts it
	case errors.Is(cause, errReplaced):
		state, msg = Replaced, errReplaced.Error()
		final = m.stop(l.ContainerID)
	case timedOut:
		state, msg = TimedOut, fmt.Sprintf("still running after timeout %v: stopped", timeout)
		final = m.stop(l.ContainerID)
	default:
		state, msg = Failed, err.Error()
	}
	if final.State == cri.StateExited {
		code := final.ExitCode
		rec.ExitCode, rec.Reason = &code, final.Reason
		if final.StartedAt > 0 && final.FinishedAt >= final.StartedAt {
			rec.DurationMs = (final.FinishedAt - final.StartedAt) / 1e6
		}
	}
	rec.Output = m.output(l.LogPath, uid)
	if m.result(rec, state, msg) {
		return l.SandboxID, uid
	}
	return "", uid
}

// start runs the container, retrying while the runtime is unreachable for
// up to StartRetry. A sandbox name the runtime says is reserved means an
// earlier attempt of this very episode got through: it is adopted, not
// started again.
func (m *Manager) start(ctx context.Context, spec *RunSpec, rec Record, uid string) (cri.Launched, error) {
	if spec == nil {
		return cri.Launched{}, errors.New("the intent carries no container spec")
	}
	labels := map[string]string{LabelManaged: "true", LabelAction: labelValue(rec.Action), LabelEpisode: uid, LabelNode: labelValue(m.opt.Node)}
	if rec.AlertID != "" {
		labels[LabelAlertID] = rec.AlertID
	}
	rs := cri.RunSpec{Name: rec.Pod, Namespace: PodNamespace, UID: uid, Labels: labels, Image: spec.Image,
		Command: spec.Command, Args: spec.Args, Env: spec.Env, HostNetwork: spec.HostNetwork,
		CPUMillis: spec.CPUMillis, MemoryBytes: spec.MemoryBytes, LogDir: filepath.Join(m.logDir, uid)}
	deadline := m.opt.Clock.Now().Add(m.cfg.StartRetry.Duration)
	backoff := 100 * time.Millisecond
	for {
		l, err := m.rt.Run(ctx, rs)
		if err == nil {
			return l, nil
		}
		if strings.Contains(err.Error(), "is reserved for") {
			l, _, found, aerr := m.adopt(ctx, uid)
			if aerr == nil && found {
				return l, nil
			}
		}
		if !cri.IsUnavailable(err) || m.opt.Clock.Now().After(deadline) || ctx.Err() != nil {
			if cri.IsUnavailable(err) {
				err = fmt.Errorf("%w (gave up after actions.startRetry %v)", err, m.cfg.StartRetry.Duration)
			}
			return l, err
		}
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// adopt finds the pod of an episode by its label. A container that was
// created but not started (a crash between the two calls) is started now:
// it never ran. A pod without a container is removed and reported not
// found, so the caller starts afresh.
func (m *Manager) adopt(ctx context.Context, uid string) (l cri.Launched, startedAt time.Time, found bool, err error) {
	for {
		var pods []cri.Pod
		pods, err = m.rt.Pods(ctx, map[string]string{LabelEpisode: uid})
		if cri.IsUnavailable(err) && ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if err != nil || len(pods) == 0 {
			return l, startedAt, false, err
		}
		p := pods[0]
		cs, err := m.rt.Containers(ctx, p.ID, nil)
		if err != nil {
			return l, startedAt, false, err
		}
		if len(cs) == 0 {
			m.removePod(p.ID, uid)
			return l, startedAt, false, nil
		}
		c := cs[0]
		l = cri.Launched{SandboxID: p.ID, ContainerID: c.ID}
		st, err := m.rt.Container(ctx, c.ID)
		if err != nil {
			return l, startedAt, false, err
		}
		l.LogPath = st.LogPath
		if st.State == cri.StateCreated {
			if err := m.rt.StartExisting(ctx, c.ID); err != nil {
				return l, startedAt, false, err
			}
			m.log.Info("action: started a container created before the runner stopped", "pod", p.Name, "container", c.ID)
			return l, m.opt.Clock.Now(), true, nil
		}
		m.log.Info("action: adopted a container started before the runner stopped", "pod", p.Name, "container", c.ID, "state", st.State)
		startedAt = time.Unix(0, st.StartedAt)
		if st.StartedAt == 0 {
			startedAt = m.opt.Clock.Now()
		}
		return l, startedAt, true, nil
	}
}

// wait waits for the container to exit, riding out runtime restarts.
func (m *Manager) wait(ctx context.Context, id string) (cri.ContainerState, error) {
	for {
		st, err := m.rt.Wait(ctx, id)
		if err == nil || !cri.IsUnavailable(err) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stop stops a container and returns its final state.
func (m *Manager) stop(id string) cri.ContainerState {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), stopGrace+10*time.Second)
	defer cancel()
	if err := m.rt.StopContainer(ctx, id, stopGrace); err != nil {
		m.log.Warn("action: stopping the container failed", "container", id, "err", err)
	}
	st, _ := m.rt.Container(ctx, id)
	return st
}

// removePod removes an action's pod and its output directory.
func (m *Manager) removePod(sandboxID, uid string) {
	backoff := removeBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
		err := m.rt.RemovePod(ctx, sandboxID)
		cancel()
		if err == nil {
			os.RemoveAll(filepath.Join(m.logDir, uid))
			return
		}
		if attempt == removeAttempts || m.ctx.Err() != nil {
			m.log.Warn("action: removing the pod failed (it is removed when the runner starts next)",
				"sandbox", sandboxID, "attempts", attempt, "err", err)
			return
		}
		// A shim that is exiting as the container ends answers "ttrpc:
		// closed" for a moment; containerd may be restarting.
		m.log.Debug("action: removing the pod failed; retrying", "sandbox", sandboxID, "in", backoff, "err", err)
		select {
		case <-m.ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// output returns the tail of a container's output, without the CRI log
// prefix (time, stream, tag).
func (m *Manager) output(path, uid string) string {
	if m.cfg.OutputBytes < 0 {
		return ""
	}
	if path == "" {
		return ""
	}
	// containerd copies the container's output to the log file
	// asynchronously: the exit can be seen before the last lines land.
	// Wait (at most 1s) until the file has not grown for 100ms (150ms
	// while it is still empty).
	var last int64 = -1
	stable := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		size := int64(0)
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		if size == last {
			stable++
		} else {
			stable = 0
		}
		last = size
		if stable >= 2 && (size > 0 || stable >= 3) {
			break
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	// Read enough of the tail for OutputBytes of text plus the CRI prefix
	// of each line; the first line read may be cut, so it is dropped.
	seeked := false
	back := int64(m.cfg.OutputBytes)*2 + 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > back {
		_, err := f.Seek(fi.Size()-back, io.SeekStart)
		seeked = err == nil
	}
	b, _ := io.ReadAll(f)
	if seeked {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	var out bytes.Buffer
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.SplitN(line, []byte(" "), 4)
		if len(f) < 4 {
			continue
		}
		out.Write(f[3])
		if string(f[2]) == "F" {
			out.WriteByte('\n')
		}
	}
	s := out.String()
	if len(s) > m.cfg.OutputBytes {
		s = s[len(s)-m.cfg.OutputBytes:]
	}
	return s
}

// result records a terminal state; it reports whether the record is
// durable (only then may the pod go).
func (m *Manager) result(rec Record, state State, msg string) bool {
	rec.State, rec.Error, rec.Time, rec.Run = state, msg, 0, nil
	if state == Failed {
		m.log.Warn("action failed", "action", rec.Action, "episode", rec.Episode, "err", msg)
	} else {
		m.log.Info("action finished", "action", rec.Action, "episode", rec.Episode, "state", state, "exit_code", rec.ExitCode)
	}
	return m.record(rec)
}

// record appends rec (retrying a failing log for a while) and notes it.
func (m *Manager) record(rec Record) bool {
	ctx := context.WithoutCancel(m.ctx)
	var err error
	for try := 0; try < 20; try++ {
		if err = m.append(ctx, &rec); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond << min(try, 5))
	}
	if err != nil {
		m.log.Error("action: recording the result in the log failed; the pod is kept and reconciled at the next start", "action", rec.Action, "state", rec.State, "err", err)
		return false
	}
	m.mu.Lock()
	m.note(rec)
	m.mu.Unlock()
	return true
}

func (m *Manager) endRun(r *run) {
	m.mu.Lock()
	if runs := m.active[r.rec.Action]; runs != nil && runs[r.rec.Episode] == r {
		delete(runs, r.rec.Episode)
		if len(runs) == 0 {
			delete(m.active, r.rec.Action)
		}
	}
	m.running--
	m.mu.Unlock()
	r.cancel(nil)
	close(r.done)
}

// reconcile carries an intent found unfinished at start-up to its end.
func (m *Manager) reconcile(rec Record) {
	defer m.wg.Done()
	if rec.Do != pipeline.ActionRun {
		age := m.opt.Clock.Now().Sub(time.Unix(0, rec.TriggeredAt))
		if age > m.cfg.StaleIntent.Duration {
			m.result(rec, Failed, fmt.Sprintf("the runner stopped while acting, %v ago: not repeated late", age.Round(time.Second)))
			return
		}
		m.result(rec, Failed, "the runner stopped while acting; the targets' state is unknown (see the podlifecycle stream)")
		return
	}
	m.mu.Lock()
	r := m.newRun(rec)
	m.mu.Unlock()
	m.wg.Add(1)
	m.execute(r, nil, true)
}

// labelValue keeps a label value printable and short.
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
