package actions

import "github.com/eddy-edge/eddy/connectors/cri"

// Topics of the runner's internal streams this package writes (read by
// pipelines as source: {stream: {name: actions}} and {name: podlifecycle}).
const (
	Topic          = "$eddy/streams/actions"
	LifecycleTopic = "$eddy/streams/podlifecycle"
)

// State is where an action episode stands; it is the state field of the
// records on the actions stream.
type State string

// Action states. Intent is recorded (durably) before the runtime is asked
// for anything; every episode ends in exactly one terminal state.
const (
	// Intent: the action was decided and is about to be carried out.
	Intent State = "intent"
	// Started: the container runs (run) .
	Started State = "started"
	// Exited: the container exited by itself; exit_code says how.
	Exited State = "exited"
	// TimedOut: the container ran past its timeout and was stopped.
	TimedOut State = "timed_out"
	// Replaced: a newer trigger of a replace action stopped it.
	Replaced State = "replaced"
	// Done: a stop or restart action acted on its targets.
	Done State = "done"
	// Refused: the edge policy does not allow it; nothing was run.
	Refused State = "refused"
	// Skipped: the concurrency policy (or maxConcurrent) held it back.
	Skipped State = "skipped"
	// Failed: the runtime could not do it (missing image, runtime down
	// past startRetry, runner down past staleIntent, ...); error says why.
	Failed State = "failed"
)

// Terminal reports whether s ends an episode.
func (s State) Terminal() bool { return s != Intent && s != Started }

// Record is one event on the actions stream: an intent, a start or a
// result. Its JSON is what pipelines reading the stream see.
type Record struct {
	// State is what happened.
	State State `json:"state"`
	// Action is the action's id: pipeline namespace/name/sink.
	Action string `json:"action"`
	// Pipeline is the pipeline's namespace/name.
	Pipeline string `json:"pipeline"`
	// Do is run, stop or restart.
	Do string `json:"do"`
	// Episode is what the action runs at most once for.
	Episode string `json:"episode"`
	// AlertID, AlertState and Key come from the triggering event.
	AlertID    string `json:"alert_id,omitempty"`
	AlertState string `json:"alert_state,omitempty"`
	Key        string `json:"key,omitempty"`
	// Image is the image a run action starts.
	Image string `json:"image,omitempty"`
	// Pod is the CRI pod name of a run action's sandbox.
	Pod string `json:"pod,omitempty"`
	// SandboxID and ContainerID are the runtime's ids.
	SandboxID   string `json:"sandbox_id,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	// Targets are the containers a stop or restart acted on.
	Targets []string `json:"targets,omitempty"`
	// ExitCode and Reason on exited, timed_out and replaced.
	ExitCode *int32 `json:"exit_code,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// DurationMs is the container's run time on results.
	DurationMs int64 `json:"duration_ms,omitempty"`
	// LatencyMs is trigger to container started, on started.
	LatencyMs float64 `json:"latency_ms,omitempty"`
	// Error says why on refused, skipped and failed.
	Error string `json:"error,omitempty"`
	// Output is the tail of the container's output on results.
	Output string `json:"output,omitempty"`
	// Node is the edge node.
	Node string `json:"node"`
	// Time is when it was recorded, unix ms.
	Time int64 `json:"time"`
	// Run is the rendered container spec, on intents of run actions: what
	// a restarted runner carries out if the runtime never saw it.
	Run *RunSpec `json:"run,omitempty"`
	// Timeout is the run's timeout in ms, on intents.
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
	// TriggeredAt is when the trigger arrived, unix ns, on intents.
	TriggeredAt int64 `json:"triggered_at,omitempty"`
}

// RunSpec is the rendered container of a run action.
type RunSpec struct {
	Image       string       `json:"image"`
	Command     []string     `json:"command,omitempty"`
	Args        []string     `json:"args,omitempty"`
	Env         []cri.EnvVar `json:"env,omitempty"`
	HostNetwork bool         `json:"host_network"`
	CPUMillis   int64        `json:"cpu_millis,omitempty"`
	MemoryBytes int64        `json:"memory_bytes,omitempty"`
}
