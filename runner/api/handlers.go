package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/engine"
)

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, Info{Role: roleOf(r.Context()).String(), ReadOnly: s.health.ReadOnly(),
		AuthRequired: s.opts.RequireAuth, Time: s.clk.Now().UTC()})
	return nil
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) error {
	items := s.pipes.Pipelines()
	if items == nil {
		items = []engine.Status{}
	}
	writeJSON(w, http.StatusOK, PipelineList{Items: items})
	return nil
}

func pipelineID(r *http.Request) string { return r.PathValue("ns") + "/" + r.PathValue("name") }

func (s *Server) status(r *http.Request) (engine.Status, error) {
	id := pipelineID(r)
	st, ok := s.pipes.Pipeline(id)
	if !ok {
		return st, errorf(http.StatusNotFound, "not_found", "no pipeline %s on this runner; list them with GET /api/v1/pipelines (eddy get pipelines)", id)
	}
	return st, nil
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status(r)
	if err != nil {
		return err
	}
	d := PipelineDetail{Status: st, Plan: st.Plan, Firing: []Alert{}}
	if src, ok := s.pipes.Source(st.ID); ok {
		d.Source = string(src)
	}
	for _, a := range alertList(s.alertSrc.Alerts()).Firing {
		if a.Pipeline == st.ID {
			d.Firing = append(d.Firing, a)
		}
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) pipelineStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) applyPipelines(w http.ResponseWriter, r *http.Request) error {
	if err := s.writable(); err != nil {
		return err
	}
	plans, src, err := s.compile(w, r)
	if err != nil {
		return err
	}
	return s.apply(w, r, plans, src, http.StatusOK)
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, plans []*pipeline.Plan, src []byte, status int) error {
	res := ApplyResult{Applied: []string{}}
	for _, p := range plans {
		if err := s.pipes.Apply(r.Context(), p, src); err != nil {
			e := errorf(http.StatusUnprocessableEntity, "apply_failed", "pipeline %s could not start: %v", p.ID(), err)
			if len(res.Applied) > 0 {
				e.Message += fmt.Sprintf(" (already applied: %s)", strings.Join(res.Applied, ", "))
			}
			return e
		}
		res.Applied = append(res.Applied, p.ID())
	}
	writeJSON(w, status, res)
	return nil
}

func (s *Server) putPipeline(w http.ResponseWriter, r *http.Request) error {
	if err := s.writable(); err != nil {
		return err
	}
	plans, src, err := s.compile(w, r)
	if err != nil {
		return err
	}
	id := pipelineID(r)
	if len(plans) != 1 || plans[0].ID() != id {
		var got []string
		for _, p := range plans {
			got = append(got, p.ID())
		}
		return errorf(http.StatusBadRequest, "name_mismatch",
			"PUT %s needs exactly one Pipeline named %s in the body, got %s; POST /api/v1/pipelines applies several", r.URL.Path, id, strings.Join(got, ", "))
	}
	status := http.StatusOK
	if _, ok := s.pipes.Pipeline(id); !ok {
		status = http.StatusCreated
	}
	return s.apply(w, r, plans, src, status)
}

func (s *Server) deletePipeline(w http.ResponseWriter, r *http.Request) error {
	if err := s.writable(); err != nil {
		return err
	}
	st, err := s.status(r)
	if err != nil {
		return err
	}
	if err := s.pipes.Remove(r.Context(), st.ID); err != nil {
		var nf *engine.NotFoundError
		if errors.As(err, &nf) { // removed by a concurrent request
			return errorf(http.StatusNotFound, "not_found", "no pipeline %s on this runner (removed meanwhile)", st.ID)
		}
		return fmt.Errorf("removing pipeline %s: %w", st.ID, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) startPipeline(w http.ResponseWriter, r *http.Request) error {
	if err := s.writable(); err != nil {
		return err
	}
	st, err := s.status(r)
	if err != nil {
		return err
	}
	if err := s.pipes.StartPipeline(r.Context(), st.ID); err != nil {
		return errorf(http.StatusUnprocessableEntity, "start_failed", "starting pipeline %s: %v", st.ID, err)
	}
	st, _ = s.pipes.Pipeline(st.ID)
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) stopPipeline(w http.ResponseWriter, r *http.Request) error {
	if err := s.writable(); err != nil {
		return err
	}
	st, err := s.status(r)
	if err != nil {
		return err
	}
	if err := s.pipes.StopPipeline(st.ID); err != nil {
		return fmt.Errorf("stopping pipeline %s: %w", st.ID, err)
	}
	st, _ = s.pipes.Pipeline(st.ID)
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) error {
	plans, _, err := s.compile(w, r)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Code == "invalid_pipeline" {
			writeJSON(w, http.StatusOK, ValidateResult{Valid: false, Errors: e.Details})
			return nil
		}
		return err
	}
	res := ValidateResult{Valid: true}
	for _, p := range plans {
		res.Pipelines = append(res.Pipelines, p.ID())
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) explainPipeline(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status(r)
	if err != nil {
		return err
	}
	writeText(w, Explain(st.Plan))
	return nil
}

func (s *Server) explainYAML(w http.ResponseWriter, r *http.Request) error {
	plans, _, err := s.compile(w, r)
	if err != nil {
		return err
	}
	var b strings.Builder
	for i, p := range plans {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(Explain(p))
	}
	writeText(w, b.String())
	return nil
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, s)
}

// Explain renders a compiled plan as text: identity, source, event time
// and key, then each node of the DAG with its inputs and its spec.
func Explain(p *pipeline.Plan) string {
	if p == nil {
		return "no plan\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s  version %d  hash %s\n", p.ID(), p.Version, p.Hash)
	sp := p.Spec
	if sp.EventTime != "" {
		fmt.Fprintf(&b, "event time: %s\n", sp.EventTime)
	} else {
		fmt.Fprintf(&b, "event time: broker arrival time\n")
	}
	if sp.Key != "" {
		fmt.Fprintf(&b, "key: %s\n", sp.Key)
	} else {
		fmt.Fprintf(&b, "key: MQTT topic\n")
	}
	if sp.IdleTimeout != nil {
		fmt.Fprintf(&b, "idle timeout: %s\n", sp.IdleTimeout.Duration)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tROLE\tKIND\tINPUTS\tSPEC")
	for _, n := range p.Nodes {
		var spec any
		switch n.Role {
		case pipeline.RoleSource:
			spec = sp.Source
		case pipeline.RoleStep:
			if st := p.Step(n); st != nil {
				spec = st
			}
		case pipeline.RoleSink, pipeline.RoleLate, pipeline.RoleErrors:
			if sk := p.Sink(n); sk != nil {
				spec = sk
			}
		}
		var js strings.Builder
		enc := json.NewEncoder(&js)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(spec)
		inputs := strings.Join(n.Inputs, ",")
		if inputs == "" {
			inputs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.ID, n.Role, n.Kind, inputs, strings.TrimSpace(js.String()))
		if len(n.Fields) > 0 {
			fmt.Fprintf(tw, "\t\t\t\tfields: %s\n", strings.Join(n.Fields, ", "))
		}
	}
	tw.Flush()
	return b.String()
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, alertList(s.alertSrc.Alerts()))
	return nil
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) error {
	l := DeviceList{Items: s.deviceSrc.Devices()}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].ID < l.Items[j].ID })
	if l.Items == nil {
		l.Items = l.Items[:0]
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) device(w http.ResponseWriter, r *http.Request) error {
	id := pipelineID(r)
	for _, d := range s.deviceSrc.Devices() {
		if d.ID == id {
			writeJSON(w, http.StatusOK, d)
			return nil
		}
	}
	return errorf(http.StatusNotFound, "not_found", "no device %s on this runner; list them with GET /api/v1/devices (eddy get devices)", id)
}

func (s *Server) broker(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, Broker{Stats: brokerStats(s.brokerSrc.BrokerStats()), Clients: clients(s.brokerSrc.BrokerClients()),
		Topics: topics(s.brokerSrc.BrokerTopics())})
	return nil
}

func (s *Server) wal(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, walInfo(s.brokerSrc.WALStats()))
	return nil
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) error {
	l := s.linkSrc.Link()
	if l.State == "" {
		l.State = LinkNone
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}
