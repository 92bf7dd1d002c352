package engine

// State is the phase of a pipeline run, in the manner of Kubernetes'
// PodPhase: a typed string that the API, the metrics and the dashboard
// show as is.
type State string

const (
	// StateStarting: built, not yet reading.
	StateStarting State = "starting"
	// StateRunning: reading the log and writing output.
	StateRunning State = "running"
	// StateDegraded: running, but a sink keeps failing with an error a
	// retry can fix (broker busy, disk full, network); the event is
	// retried with backoff, the cursor waits and the lag grows. Status
	// carries the error and the offset the pipeline is blocked on; it goes
	// back to running by itself when the sink recovers, or an operator can
	// skip the record (Engine.Skip).
	StateDegraded State = "degraded"
	// StateStopped: stopped by Stop (or by Close); the checkpoint is kept
	// and Start resumes from it.
	StateStopped State = "stopped"
	// StateFailed: the pipeline hit an error it cannot go on from (the log
	// itself failed); Status carries the error. Start tries again.
	StateFailed State = "failed"
)

// Active reports whether a run in this state is reading the log.
func (s State) Active() bool {
	return s == StateStarting || s == StateRunning || s == StateDegraded
}
