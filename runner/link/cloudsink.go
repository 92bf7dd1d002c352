package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

// CloudSink is the pipeline sink `cloud: {subject: ...}`. It writes each
// event to the WAL under $eddy/up/<subject>, where the link's outbox picks
// it up and forwards it to the hub. Write only queues the record (the WAL
// copies it and commits it with the next group commit); Flush, which the
// engine calls before it checkpoints the pipeline's cursor, waits until
// every queued record is durable, so a crash replays instead of losing.
type CloudSink struct {
	log     wal.Log
	subject *pipeline.Template
	clock   func() int64
	buf     []byte

	mu      sync.Mutex
	pending int
	err     error
	done    *sync.Cond
}

// NewCloudSink returns a cloud sink writing to log. now stamps records
// (unix nanoseconds).
func NewCloudSink(log wal.Log, spec *pipeline.CloudSink, now func() int64) (*CloudSink, error) {
	if log == nil {
		return nil, errors.New("cloud sink needs the runner's WAL")
	}
	t, err := pipeline.ParseTemplate(spec.Subject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	s := &CloudSink{log: log, subject: t, clock: now}
	s.done = sync.NewCond(&s.mu)
	return s, nil
}

// Write queues ev for the outbox. An event JSON cannot encode is a
// permanent error for that event; a full or closed log is retryable.
func (s *CloudSink) Write(ctx context.Context, ev *pipeline.Event) error {
	s.buf = append(s.buf[:0], UpTopicPrefix...)
	s.buf = s.subject.Append(s.buf, ev)
	topic := UpTopicPrefix + sanitizeSubject(string(s.buf[len(UpTopicPrefix):]))
	payload := ev.Raw
	if payload == nil {
		var err error
		if payload, err = json.Marshal(ev.Fields); err != nil {
			return pipeline.Permanentf("cloud sink: encoding event as JSON: %w", err)
		}
	}
	s.mu.Lock()
	if err := s.err; err != nil {
		s.err = nil
		s.mu.Unlock()
		return fmt.Errorf("cloud sink: an earlier record was not written: %w", err)
	}
	s.pending++
	s.mu.Unlock()
	err := s.log.AppendNotify(ctx, wal.Durable, s.committed, &wal.Record{Topic: topic, Payload: payload, Time: s.clock(), QoS: 1})
	if err != nil {
		s.committed(nil) // never queued: done is not called
		return fmt.Errorf("cloud sink: writing to the WAL: %w", err)
	}
	return nil
}

func (s *CloudSink) committed(err error) {
	s.mu.Lock()
	s.pending--
	if err != nil && s.err == nil {
		s.err = err
	}
	if s.pending == 0 {
		s.done.Broadcast()
	}
	s.mu.Unlock()
}

// Flush waits until every record written so far is durable in the WAL.
func (s *CloudSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.pending > 0 {
		s.done.Wait()
	}
	if err := s.err; err != nil {
		s.err = nil
		return fmt.Errorf("cloud sink: %w", err)
	}
	return nil
}

// Close waits for queued records.
func (s *CloudSink) Close() error { return s.Flush(context.Background()) }
