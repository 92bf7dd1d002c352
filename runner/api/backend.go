// Package api is the edge runner's HTTP face: the JSON REST API under
// /api/v1, Server-Sent Event streams of alerts and pipeline output, the
// Prometheus /metrics endpoint, /healthz and /readyz, bearer-token auth, and
// the Go client that the `eddy` CLI uses.
//
// It owns request routing, authentication, error rendering and the mapping
// from runner state to JSON and metrics. It does not own any runner state:
// everything it shows or changes goes through small per-concern interfaces
// (PipelineStore, AlertSource, DeviceSource, BrokerSource, LinkSource,
// Health; *runner.Runner implements them all), and it never starts pipelines, brokers or
// logs of its own. Reading stats happens at request or scrape time, so the
// API costs the pipelines nothing per event.
package api

import (
	"context"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// The API's view of a runner is split by concern, as Prometheus' web API
// takes small retrievers: each handler depends only on the interface of
// its concern. Pipeline ids are "namespace/name" (pipeline.Plan.ID).
// Methods must be safe for concurrent use; they are called from HTTP
// handlers and metric scrapes.

// PipelineStore shows and changes pipelines.
type PipelineStore interface {
	// Pipelines returns every pipeline's status, sorted by id.
	Pipelines() []engine.Status
	// Pipeline returns one pipeline's status (Status.Plan set).
	Pipeline(id string) (engine.Status, bool)
	// Source returns the YAML a pipeline was loaded from, if known.
	Source(id string) ([]byte, bool)
	// Apply runs or replaces a compiled pipeline; src is the YAML it was
	// compiled from, kept for Source.
	Apply(ctx context.Context, plan *pipeline.Plan, src []byte) error
	// Remove stops a pipeline and forgets it and its checkpoint.
	Remove(ctx context.Context, id string) error
	// StartPipeline resumes a stopped pipeline from its checkpoint.
	StartPipeline(ctx context.Context, id string) error
	// StopPipeline stops a pipeline, keeping it and its checkpoint.
	StopPipeline(id string) error
	// Tap attaches a bounded, non-blocking tap to a pipeline's output.
	Tap(id string, buf int) (*engine.Tap, func(), error)
}

// AlertSource gives the alerts pipelines raised.
type AlertSource interface {
	// Alerts returns recent alert notifications, oldest first.
	Alerts() []engine.AlertRecord
}

// DeviceSource gives the devices a runner serves.
type DeviceSource interface {
	// Devices returns the devices and their twins, sorted by id.
	Devices() []*twin.DeviceRecord
}

// BrokerSource gives the embedded broker's and the write-ahead log's state.
type BrokerSource interface {
	// BrokerStats returns the embedded MQTT broker's counters.
	BrokerStats() broker.Stats
	// BrokerClients returns the broker's sessions.
	BrokerClients() []broker.ClientInfo
	// BrokerTopics returns the broker's topics.
	BrokerTopics() []broker.TopicInfo
	// WALStats returns the write-ahead log's counters.
	WALStats() wal.Stats
}

// LinkSource gives the state of the uplink to the hub.
type LinkSource interface {
	// Link returns the state of the uplink to the hub.
	Link() LinkStatus
}

// Health says whether a runner serves and whether it may be changed.
type Health interface {
	// ReadOnly is true on controller-managed edges: pipelines come from the
	// cluster and the API refuses to change them.
	ReadOnly() bool
	// Ready returns nil once the runner accepts and processes messages.
	Ready() error
}

// Backend is a whole runner: every concern above (*runner.Runner
// implements it). Optional capabilities (PipelineControl, ActionSource)
// are detected on it once, when the Server is built.
type Backend interface {
	PipelineStore
	AlertSource
	DeviceSource
	BrokerSource
	LinkSource
	Health
}

// Link states reported by LinkStatus.State.
const (
	LinkNone         = "none"         // no uplink configured (standalone)
	LinkConnected    = "connected"    // connected to the hub
	LinkDisconnected = "disconnected" // configured, currently cut off
)

// LinkStatus is the state of the edge's uplink to the hub.
type LinkStatus struct {
	// State is one of LinkNone, LinkConnected, LinkDisconnected.
	State string `json:"state"`
	// Hub is the hub's address, if any.
	Hub string `json:"hub,omitempty"`
	// Node is this edge's name on the hub.
	Node string `json:"node,omitempty"`
	// Since is when State last changed.
	Since time.Time `json:"since,omitzero"`
	// Pending is how many WAL records the outbox has not passed yet.
	Pending uint64 `json:"pending"`
	// Forwarded is how many records the hub acknowledged.
	Forwarded uint64 `json:"forwarded"`
	// Duplicates is how many acknowledged records the hub already had.
	Duplicates uint64 `json:"duplicates"`
	// Errors is how many forwarding attempts failed (and were retried).
	Errors uint64 `json:"errors"`
	// Reconnects is how many times the link came back.
	Reconnects uint64 `json:"reconnects"`
	// Objects is how many objects the hub gave this node; Problems how
	// many of them are Failed or Rejected.
	Objects  int `json:"objects"`
	Problems int `json:"problems"`
}
