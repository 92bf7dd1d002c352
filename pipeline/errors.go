package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
)

// PermanentError marks an error that retrying cannot fix for this event:
// a value JSON cannot encode, a rendered topic that is not a valid topic
// name, a value out of range. The engine sends the event to the pipeline's
// errors: sinks with the reason and moves on; every other error from a
// sink is taken as retryable (a busy broker, a full disk, a network) and
// retried with backoff.
type PermanentError struct {
	// Err is the reason.
	Err error
}

// Error returns the reason.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent for the event it happened on; nil stays
// nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is fmt.Errorf marked permanent.
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err (or an error it wraps) is permanent for
// its event. JSON's unsupported values and types (NaN, ±Inf, a channel)
// count as permanent wherever they come from: encoding the same value
// again fails again.
func IsPermanent(err error) bool {
	var pe *PermanentError
	var uv *json.UnsupportedValueError
	var ut *json.UnsupportedTypeError
	return errors.As(err, &pe) || errors.As(err, &uv) || errors.As(err, &ut)
}

// Fields of a dead-letter record, the event an errors: sink receives for
// each event that failed permanently.
const (
	// DeadPipeline is the pipeline's namespace/name.
	DeadPipeline = "pipeline"
	// DeadStep is the id of the step or sink that failed ("source" when the
	// payload could not be decoded).
	DeadStep = "step"
	// DeadError is the reason.
	DeadError = "error"
	// DeadOffset is the log offset of the record the event came from.
	DeadOffset = "offset"
	// DeadTopic is the record's topic.
	DeadTopic = "topic"
	// DeadKey is the event's partition key.
	DeadKey = "key"
	// DeadTime is the event time, RFC 3339.
	DeadTime = "time"
	// DeadEvent is the event's fields as the failing step saw them, with
	// NaN and ±Inf written as the strings "NaN", "+Inf" and "-Inf" so that
	// the record itself always encodes; or, for a payload that could not
	// be decoded, the payload as a string.
	DeadEvent = "event"
)

// deadLetterSchema is what templates and expressions of errors: sinks may
// reference.
var deadLetterSchema = Schema{DeadPipeline: "", DeadStep: "", DeadError: "", DeadOffset: int64(0),
	DeadTopic: "", DeadKey: "", DeadTime: "", DeadEvent: map[string]any{}}
