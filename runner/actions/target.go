package actions

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/pipeline"
)

// selector is a rendered ActionTarget.
type selector struct {
	namespace, pod, container string
	labels                    map[string]string
}

func (s selector) String() string {
	var parts []string
	for _, kv := range [][2]string{{"namespace", s.namespace}, {"pod", s.pod}, {"container", s.container}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	for k, v := range s.labels {
		parts = append(parts, "label "+k+"="+v)
	}
	return strings.Join(parts, ", ")
}

// target is one container a stop or restart acts on.
type target struct {
	ref                       cri.ContainerRef
	namespace, pod, container string
}

func (t target) String() string { return t.namespace + "/" + t.pod + "/" + t.container }

// stopRestart carries out a stop or restart action. Every selected
// container must be Eddy's own or allowed by actions.foreignTargets;
// otherwise the whole action is refused and nothing is touched.
func (m *Manager) stopRestart(rec Record, sel selector) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.StartRetry.Duration+time.Minute)
	defer cancel()
	targets, err := m.selectTargets(ctx, sel)
	if err != nil {
		m.result(rec, Failed, err.Error())
		return
	}
	if len(targets) == 0 {
		m.result(rec, Failed, fmt.Sprintf("no running container matches the target (%s)", sel))
		return
	}
	var refused []string
	for _, t := range targets {
		if t.ref.Labels[LabelManaged] != "true" && !m.cfg.ForeignAllowed(t.namespace, t.pod, t.container) {
			refused = append(refused, t.String())
		}
	}
	if len(refused) > 0 {
		m.result(rec, Refused, fmt.Sprintf("%s: not started by Eddy and not in this edge's actions.foreignTargets %v; add a namespace/pod/container pattern there to allow it", strings.Join(refused, ", "), m.cfg.ForeignTargets))
		return
	}
	var errs []string
	for _, t := range targets {
		var err error
		if rec.Do == pipeline.ActionRestart {
			err = m.rt.Restart(ctx, t.ref.ID, stopGrace)
		} else {
			err = m.rt.StopContainer(ctx, t.ref.ID, stopGrace)
		}
		if err != nil {
			errs = append(errs, t.String()+": "+err.Error())
			continue
		}
		rec.Targets = append(rec.Targets, t.String())
	}
	if len(errs) > 0 {
		m.result(rec, Failed, strings.Join(errs, "; "))
		return
	}
	m.result(rec, Done, "")
}

// selectTargets lists the running containers the selector matches.
func (m *Manager) selectTargets(ctx context.Context, sel selector) ([]target, error) {
	refs, err := m.rt.Containers(ctx, "", sel.labels)
	if err != nil {
		return nil, err
	}
	pods := map[string]cri.Pod{}
	var out []target
	for _, ref := range refs {
		if ref.State != cri.StateRunning {
			continue
		}
		if sel.container != "" && ref.Name != sel.container {
			continue
		}
		p, ok := pods[ref.SandboxID]
		if !ok {
			if p, err = m.rt.Pod(ctx, ref.SandboxID); err != nil {
				continue
			}
			pods[ref.SandboxID] = p
		}
		if (sel.namespace != "" && p.Namespace != sel.namespace) || (sel.pod != "" && p.Name != sel.pod) {
			continue
		}
		out = append(out, target{ref: ref, namespace: p.Namespace, pod: p.Name, container: ref.Name})
	}
	return out, nil
}
