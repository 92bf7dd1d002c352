package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/eddy-edge/eddy/runner/engine"
)

// sseWriter writes Server-Sent Events, flushing after each one, with a
// deadline per write so that a stuck client ends its own stream instead
// of holding a goroutine forever.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	now     func() time.Time
}

// acquire takes a stream slot, or answers 503 when all are taken.
func (s *Server) acquire() (func(), error) {
	select {
	case s.streams <- struct{}{}:
		return func() { <-s.streams }, nil
	default:
		return nil, errorf(http.StatusServiceUnavailable, "too_many_streams",
			"this runner already serves %d live streams; close a dashboard tab or a `eddy tap`", s.opts.MaxStreams)
	}
}

func (s *Server) startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout, now: time.Now}
	sw.flush()
	return sw
}

func (sw *sseWriter) flush() error {
	// Write deadlines are wall-clock by nature (net.Conn), so they use
	// time.Now rather than the injected clock.
	_ = sw.rc.SetWriteDeadline(sw.now().Add(sw.timeout))
	return sw.rc.Flush()
}

// event writes one event; data must be a single line (compact JSON).
func (sw *sseWriter) event(name string, data []byte) error {
	_ = sw.rc.SetWriteDeadline(sw.now().Add(sw.timeout))
	if _, err := fmt.Fprintf(sw.w, "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	return sw.flush()
}

func (sw *sseWriter) jsonEvent(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return sw.event(name, b)
}

func (sw *sseWriter) ping() error {
	_ = sw.rc.SetWriteDeadline(sw.now().Add(sw.timeout))
	if _, err := fmt.Fprint(sw.w, ": ping\n\n"); err != nil {
		return err
	}
	return sw.flush()
}

// Dropped is the payload of a "dropped" tap event.
type Dropped struct {
	// Dropped is how many outputs this tap skipped so far because the
	// reader was slower than the pipeline.
	Dropped int64 `json:"dropped"`
}

// tap streams a pipeline's output as "output" events (one JSON object
// each). The engine's tap is bounded and never blocks the pipeline; when
// this client is slow, outputs are dropped and a "dropped" event says how
// many.
func (s *Server) tap(w http.ResponseWriter, r *http.Request) error {
	st, err := s.status(r)
	if err != nil {
		return err
	}
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	t, detach, err := s.pipes.Tap(st.ID, s.opts.TapBuffer)
	if err != nil {
		return errorf(http.StatusNotFound, "not_found", "tapping pipeline %s: %v", st.ID, err)
	}
	defer detach()
	sw := s.startSSE(w)
	hb := s.clk.NewTicker(s.opts.Heartbeat)
	defer hb.Stop()
	var reported int64
	for {
		select {
		case <-r.Context().Done():
			return nil
		case b := <-t.C():
			if d := t.Dropped(); d != reported {
				reported = d
				if sw.jsonEvent("dropped", Dropped{d}) != nil {
					return nil
				}
			}
			if sw.event("output", compactLine(b)) != nil {
				return nil
			}
		case <-hb.C():
			if sw.ping() != nil {
				return nil
			}
		}
	}
}

// compactLine makes sure a JSON payload fits on one SSE data line.
func compactLine(b []byte) []byte {
	for _, c := range b {
		if c == '\n' || c == '\r' {
			var out []byte
			if buf, err := json.Marshal(json.RawMessage(b)); err == nil {
				out = buf
			} else {
				q, _ := json.Marshal(string(b))
				out = q
			}
			return out
		}
	}
	return b
}

// alertStream sends a "snapshot" event (an AlertList) and then one "alert"
// event per new notification. It polls Backend.Alerts, so it costs the
// pipelines nothing and holds nothing for a slow client: a client that
// falls behind gets what is new at its next poll.
func (s *Server) alertStream(w http.ResponseWriter, r *http.Request) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	sw := s.startSSE(w)
	recs := s.alertSrc.Alerts()
	if sw.jsonEvent("snapshot", alertList(recs)) != nil {
		return nil
	}
	var last alertMark
	if len(recs) > 0 {
		last = markOf(recs[len(recs)-1])
	}
	poll := s.clk.NewTicker(s.opts.AlertPoll)
	defer poll.Stop()
	hb := s.clk.NewTicker(s.opts.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-poll.C():
			recs := s.alertSrc.Alerts()
			for _, rec := range newAlerts(recs, last) {
				if sw.jsonEvent("alert", alertOf(rec)) != nil {
					return nil
				}
			}
			if len(recs) > 0 {
				last = markOf(recs[len(recs)-1])
			}
		case <-hb.C():
			if sw.ping() != nil {
				return nil
			}
		}
	}
}

// alertMark identifies a notification in the engine's history.
type alertMark struct {
	set            bool
	pipeline       string
	time           int64
	id, state, msg string
}

func markOf(r engine.AlertRecord) alertMark {
	s := func(k string) string { v, _ := r.Fields[k].(string); return v }
	return alertMark{set: true, pipeline: r.Pipeline, time: r.Time.UnixNano(), id: s("alert_id"), state: s("state"), msg: s("message")}
}

// newAlerts returns the records after the last one seen. When the last one
// seen is no longer in the bounded history, everything is new.
func newAlerts(recs []engine.AlertRecord, last alertMark) []engine.AlertRecord {
	if !last.set {
		return recs
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if markOf(recs[i]) == last {
			return recs[i+1:]
		}
	}
	return recs
}
