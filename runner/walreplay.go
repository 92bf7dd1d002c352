package runner

import (
	"context"
	"errors"
	"time"

	"github.com/eddy-edge/eddy/runner/broker"
	"github.com/eddy-edge/eddy/runner/wal"
)

// walAppender also lets the broker replay the log for a subscriber that
// fell behind (broker.Replayer): slow subscribers lag on their own cursor
// instead of holding up publishers.
var _ broker.Replayer = walAppender{}

// Next implements broker.Replayer: every record appended from now on gets
// an offset after what readers can see now.
func (a walAppender) Next() uint64 { return a.log.Last() + 1 }

// Replay implements broker.Replayer. It never waits: at the end of the log
// it returns 0 records.
func (a walAppender) Replay(from uint64, buf []broker.Message) (int, uint64, error) {
	if from == 0 {
		from = 1
	}
	if from > a.log.Last() || len(buf) == 0 {
		if first := a.log.First(); from < first {
			return 0, from, &broker.GapError{From: from, First: first}
		}
		return 0, from, nil
	}
	recs := make([]wal.Record, len(buf))
	n, err := a.log.Read(context.Background(), from, recs)
	var gap *wal.GapError
	if errors.As(err, &gap) {
		return 0, from, &broker.GapError{From: gap.From, First: gap.First}
	}
	if err != nil {
		return 0, from, err
	}
	next := from
	for i, r := range recs[:n] {
		buf[i] = broker.Message{Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain, Client: r.Client,
			Time: time.Unix(0, r.Time)}
		next = r.Offset + 1
	}
	return n, next, nil
}
