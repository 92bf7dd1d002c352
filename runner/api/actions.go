package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-edge/eddy/runner/actions"
)

// ActionSource is the optional part of a Backend that runs container
// actions (runner/actions). The server serves /api/v1/actions and the
// eddy_action_* metrics only when its Backend has it.
type ActionSource interface {
	// ActionStats returns every action's counters, sorted by action.
	ActionStats() []actions.Stats
	// ActionRecords returns the latest action records, oldest first.
	ActionRecords() []actions.Record
	// ActionRuntime is connected or disconnected ("" before the first
	// attempt or without a lifecycle watcher).
	ActionRuntime() string
}

// ActionList is the body of GET /api/v1/actions.
type ActionList struct {
	// Runtime is the container runtime's state as the lifecycle watcher
	// last saw it.
	Runtime string `json:"runtime"`
	// Actions are the counters of every action that was triggered.
	Actions []actions.Stats `json:"actions"`
	// Recent are the latest records (intents, starts, results), oldest
	// first.
	Recent []actions.Record `json:"recent"`
}

func (s *Server) actionRoutes(add func(method, path string, role Role, h handlerFunc)) {
	a := s.actions
	if a == nil {
		return
	}
	add("GET", "/api/v1/actions", RoleRead, func(w http.ResponseWriter, r *http.Request) error {
		l := ActionList{Runtime: a.ActionRuntime(), Actions: a.ActionStats(), Recent: a.ActionRecords()}
		if l.Actions == nil {
			l.Actions = []actions.Stats{}
		}
		if l.Recent == nil {
			l.Recent = []actions.Record{}
		}
		writeJSON(w, http.StatusOK, l)
		return nil
	})
}

var (
	actionLabels     = []string{"action"}
	descActionOut    = prometheus.NewDesc("eddy_action_outcomes_total", "Action episodes by outcome: started, succeeded (exit 0 or done), failed (non-zero exit or error), timed_out, replaced, refused (edge policy), skipped (concurrency).", []string{"action", "outcome"}, nil)
	descActionTrig   = prometheus.NewDesc("eddy_action_triggers_total", "Events that triggered the action (deduplicated ones not included).", actionLabels, nil)
	descActionDedup  = prometheus.NewDesc("eddy_action_deduplicated_total", "Triggers of an episode already acted on (replays, re-sent alerts).", actionLabels, nil)
	descActionRun    = prometheus.NewDesc("eddy_action_running", "Containers of the action running now.", actionLabels, nil)
	descActionLat    = prometheus.NewDesc("eddy_action_start_latency_seconds", "Trigger-to-container-started latency over the last 1024 starts.", []string{"action", "quantile"}, nil)
	descActionRuntUp = prometheus.NewDesc("eddy_action_runtime_up", "1 while the container runtime's event stream is connected.", nil, nil)
)

// actionCollector exports an ActionSource's counters at scrape time.
type actionCollector struct{ a ActionSource }

func (c actionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActionOut, descActionTrig, descActionDedup, descActionRun, descActionLat, descActionRuntUp} {
		ch <- d
	}
}

func (c actionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.a.ActionStats() {
		for _, o := range []struct {
			name string
			n    uint64
		}{{"started", st.Started}, {"succeeded", st.Succeeded}, {"failed", st.Failed}, {"timed_out", st.TimedOut},
			{"replaced", st.Replaced}, {"refused", st.Refused}, {"skipped", st.Skipped}} {
			ch <- prometheus.MustNewConstMetric(descActionOut, prometheus.CounterValue, float64(o.n), st.Action, o.name)
		}
		ch <- prometheus.MustNewConstMetric(descActionTrig, prometheus.CounterValue, float64(st.Triggered), st.Action)
		ch <- prometheus.MustNewConstMetric(descActionDedup, prometheus.CounterValue, float64(st.Deduplicated), st.Action)
		ch <- prometheus.MustNewConstMetric(descActionRun, prometheus.GaugeValue, float64(st.Running), st.Action)
		ch <- prometheus.MustNewConstMetric(descActionLat, prometheus.GaugeValue, st.LatencyP50Ms/1e3, st.Action, "0.5")
		ch <- prometheus.MustNewConstMetric(descActionLat, prometheus.GaugeValue, st.LatencyP99Ms/1e3, st.Action, "0.99")
	}
	if rt := c.a.ActionRuntime(); rt != "" {
		up := 0.0
		if rt == "connected" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descActionRuntUp, prometheus.GaugeValue, up)
	}
}
