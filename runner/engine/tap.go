package engine

import (
	"encoding/json"
	"sync/atomic"

	"github.com/eddy-edge/eddy/pipeline"
)

// Tap receives a copy of a pipeline's output, encoded as JSON, for
// debugging (the API's live stream). Its buffer is bounded: when the reader
// is slow, events are dropped from the tap and counted, and the pipeline
// never waits for it.
type Tap struct {
	c       chan []byte
	dropped atomic.Int64
}

// C delivers output events as JSON objects.
func (t *Tap) C() <-chan []byte { return t.c }

// Dropped is how many events the tap skipped because its reader was slow.
func (t *Tap) Dropped() int64 { return t.dropped.Load() }

// Tap attaches a tap with room for buf events to pipeline id. It stays
// attached when the pipeline is replaced or restarted. Call the returned
// function to detach it.
func (e *Engine) Tap(id string, buf int) (*Tap, func(), error) {
	e.mu.Lock()
	s := e.slots[id]
	e.mu.Unlock()
	if s == nil || s.run.Load() == nil {
		return nil, nil, &NotFoundError{ID: id}
	}
	if buf <= 0 {
		buf = 64
	}
	t := &Tap{c: make(chan []byte, buf)}
	s.tapMu.Lock()
	old := s.taps.Load()
	next := []*Tap{t}
	if old != nil {
		next = append(append([]*Tap(nil), (*old)...), t)
	}
	s.taps.Store(&next)
	s.tapMu.Unlock()
	return t, func() {
		s.tapMu.Lock()
		defer s.tapMu.Unlock()
		cur := s.taps.Load()
		if cur == nil {
			return
		}
		var keep []*Tap
		for _, x := range *cur {
			if x != t {
				keep = append(keep, x)
			}
		}
		s.taps.Store(&keep)
	}, nil
}

// tap copies ev to the pipeline's taps, if any; one atomic load otherwise.
func (e *Engine) tap(r *run, ev *pipeline.Event) {
	if r.taps == nil {
		return
	}
	ts := r.taps.Load()
	if ts == nil || len(*ts) == 0 {
		return
	}
	b, err := EncodeEvent(ev)
	if err != nil {
		return
	}
	for _, t := range *ts {
		select {
		case t.c <- b:
		default:
			t.dropped.Add(1)
		}
	}
}

// EncodeEvent returns an event as the JSON object sinks publish: the raw
// payload when the event is unchanged since decoding, else its fields.
func EncodeEvent(ev *pipeline.Event) ([]byte, error) {
	if ev.Raw != nil {
		return ev.Raw, nil
	}
	return json.Marshal(ev.Fields)
}
